"""params.yaml, validated on load: the whole study, one section per stage.

Every error names the key path, the value and what is allowed, and suggests the nearest valid name
for a typo; loading does no other work, so a bad file fails in well under a second.
"""

import difflib
import inspect
import typing
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models.conditioning import CONDITIONINGS
from models.diffusion import choose
from models.discretizations import DISCRETIZATIONS
from models.networks import NETWORKS
from models.objectives import NOISE_SAMPLING, WEIGHTINGS
from models.parameterizations import PARAMETERIZATIONS
from models.schedules import SCHEDULES
from models.solvers import SOLVERS


class ParamsError(ValueError):
    """A params file that cannot describe a study; the message says where and why."""


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a repeated key (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"repeated key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def keyword_options(function, skip=()):
    """Names a table entry accepts as options: its keyword parameters with defaults."""
    parameters = inspect.signature(function).parameters.values()
    return {p.name for p in parameters if p.default is not p.empty and p.name not in skip}


def check_options(kind, name, options, accepted):
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"{kind} {name!r} does not accept option(s) {unknown}; allowed: {sorted(accepted)}")


AXES = {
    "schedule": ("noise schedule", SCHEDULES),
    "parameterization": ("parameterization", PARAMETERIZATIONS),
    "conditioning": ("time conditioning", CONDITIONINGS),
    "noise_sampling": ("noise sampling", NOISE_SAMPLING),
    "weighting": ("loss weighting", WEIGHTINGS),
    "network": ("network", NETWORKS),
}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Data(Section):
    """The dataset: the embedded digits (default), or MNIST or CIFAR-10 from the files in `root`
    (fetched there first when `download` is true)."""

    dataset: Literal["digits", "mnist", "cifar10"] = "digits"
    root: str | None = None
    download: bool = False
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0

    @model_validator(mode="after")
    def root_for_downloaded_data(self):
        if self.dataset in ("mnist", "cifar10") and self.root is None:
            raise ValueError(f"dataset {self.dataset!r} needs data.root: the folder that holds its files")
        return self


class Features(Section):
    """The FID feature network: a classifier trained on the data, or Inception-v3 from a weights file."""

    kind: Literal["classifier", "inception"] = "classifier"
    num_features: int = Field(64, gt=0)
    steps: int = Field(1500, gt=0)
    weights_path: str | None = None
    seed: int = 0

    @model_validator(mode="after")
    def weights_for_inception(self):
        if self.kind == "inception" and self.weights_path is None:
            raise ValueError("features.kind 'inception' needs features.weights_path (the Inception-v3 weights file)")
        return self


class Configuration(Section):
    """One training configuration: one value per design axis, plus the optimisation settings."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")  # the key under train.configurations
    schedule: str = "edm"
    schedule_options: dict[str, Any] = {}
    parameterization: str = "edm"
    sigma_data: float = Field(0.5, gt=0)
    conditioning: str = "c_noise"
    noise_sampling: str = "log_normal"
    noise_sampling_options: dict[str, Any] = {}
    weighting: str = "edm"
    weighting_options: dict[str, Any] = {}
    network: str = "unet"
    network_options: dict[str, Any] = {}
    steps: int = Field(4000, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(200, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    ema_decay: float | None = Field(0.999, ge=0, lt=1)
    ema_half_life_images: float | None = Field(None, gt=0)
    checkpoint_every: int = Field(500, gt=0)
    seed: int = 0
    mixed_precision: bool = False
    compile: bool = False

    @field_validator(*AXES)
    @classmethod
    def known_entry(cls, name, info):
        kind, table = AXES[info.field_name]
        choose(table, kind, name)
        return name

    @model_validator(mode="after")
    def consistent(self):
        check_options("noise schedule", self.schedule, self.schedule_options, keyword_options(SCHEDULES[self.schedule]))
        check_options("noise sampling", self.noise_sampling, self.noise_sampling_options, keyword_options(NOISE_SAMPLING[self.noise_sampling]))
        check_options("loss weighting", self.weighting, self.weighting_options, keyword_options(WEIGHTINGS[self.weighting]))
        check_options("network", self.network, self.network_options, keyword_options(NETWORKS[self.network], skip={"in_channels", "dim"}))
        discrete = SCHEDULES[self.schedule]().timesteps is not None
        for key, value in (("conditioning", self.conditioning), ("noise_sampling", self.noise_sampling)):
            if value in ("index", "uniform_discrete") and not discrete:
                raise ValueError(f"{key} {value!r} needs a discrete schedule (ddpm), but schedule is {self.schedule!r}")
        if (self.ema_decay is None) == (self.ema_half_life_images is None):
            raise ValueError("give exactly one of ema_decay or ema_half_life_images (set the other to null)")
        return self


class Train(Section):
    """Configurations keyed by name, so that DVC's `foreach` names one stage per configuration
    (train@<name>) and a change to one configuration re-runs only its stages."""

    configurations: dict[str, Configuration] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def name_from_key(cls, data):
        configurations = data.get("configurations") if isinstance(data, dict) else None
        if isinstance(configurations, dict):
            for key, value in configurations.items():
                if isinstance(value, dict) and "name" in value:
                    raise ValueError(f"configuration {key!r} has a 'name' key; its key under train.configurations is its name")
            named = {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in configurations.items()}
            data = {**data, "configurations": named}
        return data


class Entry(Section):
    """A named table entry with its options."""

    name: str
    options: dict[str, Any] = {}


class Evaluate(Section):
    """The sampling grid: every solver x step schedule x NFE budget, from the same initial noise."""

    solvers: list[Entry] = Field(min_length=1)
    step_schedules: list[Entry] = Field(min_length=1)
    nfe: list[int] = Field(min_length=1)
    reference_nfe: int = Field(255, gt=0)
    num_samples: int = Field(2000, gt=1)
    batch_size: int = Field(2000, gt=0)
    seed: int = 0

    @field_validator("solvers")
    @classmethod
    def known_solvers(cls, entries):
        for entry in entries:
            solver = choose(SOLVERS, "solver", entry.name)
            check_options("solver", entry.name, entry.options, solver.options)
        return entries

    @field_validator("step_schedules")
    @classmethod
    def known_step_schedules(cls, entries):
        for entry in entries:
            function = choose(DISCRETIZATIONS, "step schedule", entry.name)
            check_options("step schedule", entry.name, entry.options, keyword_options(function) | {"sigma_min", "sigma_max"})
        return entries

    @model_validator(mode="after")
    def entries_once(self):
        for key, entries in (("solvers", self.solvers), ("step_schedules", self.step_schedules)):
            seen = [(entry.name, sorted(entry.options.items())) for entry in entries]
            for i, entry in enumerate(seen):
                if entry in seen[:i]:
                    raise ValueError(f"evaluate.{key} lists {entry[0]!r} with options {dict(entry[1])} twice; allowed: each entry once")
        if len(set(self.nfe)) != len(self.nfe):
            raise ValueError(f"evaluate.nfe repeats a budget: {self.nfe}; allowed: each budget once")
        return self

    @model_validator(mode="after")
    def budgets_fit_every_solver(self):
        for budget in self.nfe:
            for entry in self.solvers:
                needed = SOLVERS[entry.name].nfe(1)
                if budget < needed:
                    raise ValueError(f"NFE budget {budget} is below what solver {entry.name!r} needs ({needed})")
        return self


class Tracking(Section):
    experiment: str = Field("design-space", min_length=1)


class Study(Section):
    data: Data = Data()
    features: Features = Features()
    train: Train
    evaluate: Evaluate
    mlflow: Tracking = Tracking()


def describe(error, source):
    """One line per problem: file, key path, what is wrong, the value given."""
    lines = []
    for problem in error.errors():
        path = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        message = problem["msg"].removeprefix("Value error, ")
        if problem["type"] == "extra_forbidden":
            message = f"unknown key{allowed_keys(problem['loc'][:-1], problem['loc'][-1])}"
            lines.append(f"{source}: {path}: {message}")
        else:
            lines.append(f"{source}: {path}: {message} (got {problem.get('input')!r})")
    return "\n".join(lines)


def allowed_keys(location, key):
    """The keys the section at `location` accepts, and the nearest one to `key`."""
    model, parts = Study, list(location)
    while parts:
        annotation = model.model_fields[parts.pop(0)].annotation
        if typing.get_origin(annotation) in (list, dict):
            parts.pop(0)  # the list index or the mapping key
            annotation = typing.get_args(annotation)[-1]
        model = annotation
    keys = list(model.model_fields)
    close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.5)
    return f"; allowed: {keys}" + (f"; did you mean {close[0]!r}?" if close else "")


def load_params(path):
    """The validated Study of a params file, or a ParamsError that names every problem."""
    try:
        with open(path) as f:
            raw = yaml.load(f, Loader=UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if raw is None:
        raise ParamsError(f"{path}: the file is empty; expected the sections {list(Study.model_fields)}")
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping of sections {list(Study.model_fields)}, got {type(raw).__name__}")
    try:
        return Study.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(describe(error, path)) from None


def main(argv=None):
    """`python -m flows.params [params.yaml]`: validate a params file; exit 2 with the errors if bad."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "params.yaml"
    try:
        study = load_params(path)
    except ParamsError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"{path}: valid; {len(study.train.configurations)} configurations, {len(study.evaluate.solvers)} solvers, "
          f"{len(study.evaluate.step_schedules)} step schedules, NFE {study.evaluate.nfe}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""params.yaml, validated on load: the whole study, one section per stage.

Every error names the key path, the value and what is allowed, and suggests the nearest valid name
for a typo. Entries and their options are checked against their declarations (models/axes.py); the
one check that needs the models themselves builds each configuration's noise schedule and each step
schedule's grid on it, so that a sigma range outside a model's fails here, not after training.
`load_params` then checks that the files the study reads exist; loading does no other work, so a bad
file fails in well under a second.
"""

import difflib
import math
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models import axes
from models.discretizations import step_schedule  # for the check only (tasks/provenance.py, CHECK_ONLY)
from models.schedules import SCHEDULES  # for the check only (tasks/provenance.py, CHECK_ONLY)
from models.tables import choose


class ParamsError(ValueError):
    """A params file that cannot describe a study; the message says where and why."""


class Problems(ValueError):
    """What a check found: (key path below the checked section, value given there, message) each."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(message for _, _, message in problems))


def refuse(problems):
    """Raise `Problems` if the iterable `problems` yields any."""
    problems = list(problems)
    if problems:
        raise Problems(problems)


def below(key, problems):
    """`problems` of the options at `key`, with `key` put in front of their key paths."""
    return (((key, *at), value, message) for at, value, message in problems)


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


def attempt(function, *args, **options):
    """(function(*args, **options), None), or (None, what it raised as a message)."""
    try:
        return function(*args, **options), None
    except (ValueError, TypeError, ArithmeticError, RuntimeError) as error:
        return None, str(error) or type(error).__name__


def reason(kind, name, refused):
    """A table entry's own error message without its leading "<kind> '<name>': "."""
    return refused.removeprefix(f"{kind} {name!r}: ")


# A configuration's design axes: its key -> (what an entry is called, the declarations, the key of its options).
AXES = {
    "schedule": ("noise schedule", axes.NOISE_SCHEDULES, "schedule_options"),
    "parameterization": ("parameterization", axes.PARAMETERIZATIONS, None),
    "conditioning": ("time conditioning", axes.CONDITIONINGS, None),
    "noise_sampling": ("noise sampling", axes.NOISE_SAMPLING, "noise_sampling_options"),
    "weighting": ("loss weighting", axes.WEIGHTINGS, "weighting_options"),
    "network": ("network", axes.NETWORKS, "network_options"),
}
DISCRETE = sorted(name for name, entry in axes.NOISE_SCHEDULES.items() if entry.discrete)


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
            refuse([(("root",), None, f"dataset {self.dataset!r} needs data.root: the folder that holds its files")])
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
            refuse([(("weights_path",), None, "features.kind 'inception' needs features.weights_path (the Inception-v3 weights file)")])
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
        kind, table, _ = AXES[info.field_name]
        choose(table, kind, name)
        return name

    @model_validator(mode="after")
    def consistent(self):
        refuse(self.problems())
        return self

    def problems(self):
        """Options each entry takes, entries that need a discrete noise schedule on one, a noise
        schedule that builds and spans a range of sigma, one EMA setting."""
        found = []
        for key, (kind, table, options) in AXES.items():
            name, entry = getattr(self, key), table[getattr(self, key)]
            if options:
                found += below(options, axes.option_problems(kind, name, entry, getattr(self, options)))
            if entry.needs_discrete and not axes.NOISE_SCHEDULES[self.schedule].discrete:
                found.append(((key,), name, f"{key} {name!r} needs a discrete schedule ({', '.join(DISCRETE)}), but schedule is {self.schedule!r}"))
        yield from found
        if not any(at[0] == "schedule_options" for at, _, _ in found):
            yield from self.schedule_problems()
        if (self.ema_decay is None) == (self.ema_half_life_images is None):
            given = {"ema_decay": self.ema_decay, "ema_half_life_images": self.ema_half_life_images}
            yield (), given, "give exactly one of ema_decay or ema_half_life_images (set the other to null)"

    def schedule_problems(self):
        """The noise schedule, built with its options, spans a positive range of sigma."""
        at = ("schedule_options",)
        schedule, refused = attempt(self.noise_schedule)
        if refused:
            yield at, self.schedule_options, f"noise schedule {self.schedule!r} does not build with these options: {reason('noise schedule', self.schedule, refused)}"
            return
        low, high = float(schedule.sigma_min), float(schedule.sigma_max)
        if not 0 < low < high < math.inf:
            yield at, self.schedule_options, (f"noise schedule {self.schedule!r} with these options spans sigma "
                                              f"[{low:.6g}, {high:.6g}]; allowed: 0 < sigma_min < sigma_max, finite")

    def noise_schedule(self):
        """The configuration's noise schedule, built with its options."""
        return SCHEDULES[self.schedule](**self.schedule_options)


class Train(Section):
    """Configurations keyed by name, so that DVC's `foreach` names one stage per configuration
    (train@<name>) and a change to one configuration re-runs only its stages."""

    configurations: dict[str, Configuration] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def name_from_key(cls, data):
        configurations = data.get("configurations") if isinstance(data, dict) else None
        if isinstance(configurations, dict):
            refuse((("configurations", key, "name"), value["name"],
                    f"configuration {key!r} has a 'name' key; its key under train.configurations is its name; allowed: no 'name' key")
                   for key, value in configurations.items() if isinstance(value, dict) and "name" in value)
            named = {k: {**v, "name": k} if isinstance(v, dict) else v for k, v in configurations.items()}
            data = {**data, "configurations": named}
        return data

    @model_validator(mode="after")
    def names_unique_ignoring_case(self):
        first = {}
        for name in self.configurations:
            first.setdefault(name.lower(), name)
        refuse((("configurations", name), name,
                f"configuration {name!r} differs from {first[name.lower()]!r} only in case; allowed: names unique ignoring case "
                f"(their checkpoints/ and results/ folders collide on a case-insensitive file system)")
               for name in self.configurations if first[name.lower()] != name)
        return self


class Entry(Section):
    """A named table entry with its options."""

    name: str
    options: dict[str, Any] = {}


class SolverEntry(Entry):
    """A solver declared in `models.axes.SOLVERS`, with options it accepts."""

    @field_validator("name")
    @classmethod
    def known(cls, name):
        choose(axes.SOLVERS, "solver", name)
        return name

    @model_validator(mode="after")
    def accepted_options(self):
        refuse(below("options", axes.option_problems("solver", self.name, axes.SOLVERS[self.name], self.options)))
        return self


class StepScheduleEntry(Entry):
    """A step schedule declared in `models.axes.STEP_SCHEDULES`, with options it accepts (including
    a sigma range: positive and ordered where given; inside each model's, checked by `Study`)."""

    @field_validator("name")
    @classmethod
    def known(cls, name):
        choose(axes.STEP_SCHEDULES, "step schedule", name)
        return name

    @model_validator(mode="after")
    def accepted_options(self):
        refuse(below("options", axes.option_problems("step schedule", self.name, axes.STEP_SCHEDULES[self.name], self.options)))
        return self


class Evaluate(Section):
    """The sampling grid: every solver x step schedule x NFE budget, from the same initial noise."""

    solvers: list[SolverEntry] = Field(min_length=1)
    step_schedules: list[StepScheduleEntry] = Field(min_length=1)
    nfe: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    reference_nfe: int = Field(255, gt=0)
    num_samples: int = Field(2000, gt=1)
    batch_size: int = Field(2000, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def entries_once(self):
        refuse(self.repeats())
        return self

    def repeats(self):
        for key, entries in (("solvers", self.solvers), ("step_schedules", self.step_schedules)):
            seen = [(entry.name, sorted(entry.options.items())) for entry in entries]
            for i, entry in enumerate(seen):
                if entry in seen[:i]:
                    yield (key, i), entries[i].model_dump(), f"evaluate.{key} lists {entry[0]!r} with options {dict(entry[1])} twice; allowed: each entry once"
        for i, budget in enumerate(self.nfe):
            if budget in self.nfe[:i]:
                yield ("nfe", i), budget, f"evaluate.nfe repeats the budget {budget}: {self.nfe}; allowed: each budget once"

    @model_validator(mode="after")
    def budgets_fit_every_solver(self):
        needs = {entry.name: axes.SOLVERS[entry.name].nfe(1) for entry in self.solvers}
        most = max(needs, key=needs.get)
        refuse((("nfe", i), budget, f"NFE budget {budget} is below what solver {most!r} needs ({needs[most]}); allowed: budgets >= {needs[most]}")
               for i, budget in enumerate(self.nfe) if budget < needs[most])
        return self


class Tracking(Section):
    experiment: str = Field("design-space", min_length=1)


class Orchestration(Section):
    """How the study's work is spread; the results do not depend on it (no DVC stage reads it).
    `local`: Prefect's thread pool in one process; `dask`: prefect-dask, on a LocalCluster of
    `dask_workers` processes or on the running Dask scheduler at `dask_address`. Each cell's samples
    are split into `fid_shards` tasks whose features are merged (the same FID as one task)."""

    task_runner: Literal["local", "dask"] = "local"
    dask_workers: int = Field(2, gt=0)
    dask_address: str | None = Field(None, pattern=r"^(tcp|tls|ucx|inproc)://\S+$")
    fid_shards: int = Field(1, gt=0)


class Study(Section):
    data: Data = Data()
    features: Features = Features()
    train: Train
    evaluate: Evaluate
    mlflow: Tracking = Tracking()
    orchestration: Orchestration = Orchestration()

    @model_validator(mode="after")
    def step_schedules_fit_every_model(self):
        refuse(self.step_schedule_problems())
        return self

    def step_schedule_problems(self):
        """Each step schedule, with its options, builds a grid for every configuration's noise
        schedule: a sigma range inside the model's, option values the step schedule takes."""
        for i, entry in enumerate(self.evaluate.step_schedules):
            for config in self.train.configurations.values():
                _, refused = attempt(step_schedule, entry.name, 2, config.noise_schedule(), **entry.options)
                if refused:
                    yield (("evaluate", "step_schedules", i, "options"), entry.options,
                           f"step schedule {entry.name!r} gives no grid with these options for configuration {config.name!r} "
                           f"(noise schedule {config.schedule!r}): {reason('step schedule', entry.name, refused)}")
                    break


def missing_files(study):
    """The files a study reads that are not there, as (key path, value, message): data.root of a
    dataset read from files (a folder, which download may create) and Inception's weights file.
    Relative paths are relative to the current directory, where stages run and open them."""
    data, features = study.data, study.features
    if data.dataset in ("mnist", "cifar10"):
        root = Path(data.root)
        if root.exists() and not root.is_dir():
            yield ("data", "root"), data.root, f"{str(root.resolve())!r} is not a folder; allowed: a folder for the {data.dataset} files"
        elif not root.exists() and not data.download:
            yield ("data", "root"), data.root, (f"no folder {str(root.resolve())!r}; allowed: an existing folder with the "
                                                f"{data.dataset} files, or data.download: true to fetch them into it")
    if features.kind == "inception":
        weights = Path(features.weights_path)
        if not weights.is_file():
            yield ("features", "weights_path"), features.weights_path, (
                f"no file {str(weights.resolve())!r}; allowed: an existing Inception-v3 weights file (see README)")


def dotted(location):
    return ".".join(str(part) for part in location) or "(top level)"


def line(source, location, message, value):
    """One problem: file, key path, what is wrong, the value given."""
    return f"{source}: {dotted(location)}: {message} (got {value!r})"


def describe(error, source):
    """One line per problem: file, key path, what is wrong, the value given."""
    lines = []
    for problem in error.errors():
        cause = problem.get("ctx", {}).get("error")
        if isinstance(cause, Problems):
            lines.extend(line(source, (*problem["loc"], *key), message, value) for key, value, message in cause.problems)
        elif problem["type"] == "missing":
            lines.append(f"{source}: {dotted(problem['loc'])}: Field required; this key has no default")
        elif problem["type"] == "extra_forbidden":
            lines.append(f"{source}: {dotted(problem['loc'])}: unknown key{allowed_keys(problem['loc'][:-1], problem['loc'][-1])}")
        else:
            lines.append(line(source, problem["loc"], problem["msg"].removeprefix("Value error, "), problem.get("input")))
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


def load_params(path, overrides=None):
    """The validated Study of a params file with `overrides` ({"dotted.key": value}, as `dvc exp
    run -S` sets them) applied, or a ParamsError that names every problem, including files the study
    reads that are missing (`missing_files`)."""
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
    for key, value in (overrides or {}).items():
        override(raw, key, value, path)
    try:
        study = Study.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(describe(error, path)) from None
    missing = [line(path, key, message, value) for key, value, message in missing_files(study)]
    if missing:
        raise ParamsError("\n".join(missing))
    return study


def override(raw, key, value, path):
    """Set `raw[a][b][c] = value` for key "a.b.c", creating sections that are absent."""
    *sections, last = key.split(".")
    node = raw
    for depth, part in enumerate(sections):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ParamsError(f"{path}: override {key}={value!r}: {'.'.join(sections[:depth + 1])} is not a section (got {node!r})")
    node[last] = value


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

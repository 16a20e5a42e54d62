"""The schema of params.yaml: the whole study, one section per stage (read from a file by
`flows.params_file.load_params`).

An entry of a design axis is a name or {name, options}, checked against its declaration
(models/axes.py: names, option types and ranges, rules); the rules between fields are validators
that name the key path of each problem. The one check that needs the models themselves builds each
configuration's noise schedule and each step schedule's grid on it, so that a sigma range outside a
model's fails here, not after training.
"""

import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models import axes
from models.axes import Problems, refuse
from models.noise_schedules import NOISE_SCHEDULES  # for the check only (tasks/provenance.py, CHECK_ONLY)
from models.step_schedules import step_schedule  # for the check only (tasks/provenance.py, CHECK_ONLY)
from models.tables import choose


def built(kind, name, function, *args, **options):
    """(function(*args, **options), None), or (None, why it refused, without its "<kind> '<name>': ")."""
    try:
        return function(*args, **options), None
    except (ValueError, TypeError, ArithmeticError, RuntimeError) as error:
        return None, (str(error) or type(error).__name__).removeprefix(f"{kind} {name!r}: ")


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def default(name):
    return Field(name, validate_default=True)


def inherited(configurations, name, seen=()):
    """The raw settings of configuration `name` with those it does not give taken from its parent's
    (recursively); an unknown parent or a cycle is refused with its key path."""
    given = configurations[name]
    parent = given.get("parent")
    if parent is None:
        return given
    at = ("configurations", name, "parent")
    if parent not in configurations or not isinstance(configurations[parent], dict):
        refuse(
            [
                (
                    at,
                    parent,
                    f"configuration {name!r} names parent {parent!r}, which is not a configuration; allowed: {sorted(configurations)}",
                )
            ]
        )
    if parent in seen + (name,):
        refuse([(at, parent, f"configuration {name!r}: parents form a cycle {' -> '.join((*seen, name, parent))}; allowed: a tree")])
    own = {key: value for key, value in inherited(configurations, parent, seen + (name,)).items() if key not in DESIGN}
    return {**own, **given}


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


AXES = ("noise_schedule", "parameterization", "conditioning", "noise_sampling", "weighting", "network")
VARIED = (*AXES, "steps", "seed")  # what an ablation may vary: a design axis, how long it trains, or its seed (a replicate)
Varied = Literal[VARIED]
DESIGN = frozenset({"parent", "varies", "grid"})  # where a configuration sits in the study; not what it computes


class Configuration(Section):
    """One training configuration: one entry per design axis (`AXES`), plus the optimisation settings;
    in an ablation, the `parent` it varies from and the axes it `varies` (`Train`), and the name of
    its evaluation `grid` (`Evaluate.grids`; null: the default grid)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")  # the key under train.configurations
    parent: str | None = None
    varies: list[Varied] = []
    grid: str | None = None
    noise_schedule: axes.NoiseScheduleChoice = default("edm")
    parameterization: axes.ParameterizationChoice = default("edm")
    conditioning: axes.ConditioningChoice = default("c_noise")
    noise_sampling: axes.NoiseSamplingChoice = default("log_normal")
    weighting: axes.WeightingChoice = default("edm")
    network: axes.NetworkChoice = default("unet")
    sigma_data: float = Field(0.5, gt=0)
    steps: int = Field(4000, gt=0)
    batch_size: int = Field(128, gt=0)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(200, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    ema_decay: float | None = Field(0.999, ge=0, lt=1)
    ema_half_life_images: float | None = Field(None, gt=0)
    ema_rampup: float | None = Field(None, gt=0)  # EDM's ramp-up: the half-life at most this share of the images seen so far
    checkpoint_every: int = Field(500, gt=0)
    seed: int = 0
    mixed_precision: bool = False
    compile: bool = False

    @field_validator("varies", mode="before")
    @classmethod
    def one_axis(cls, varies):
        return [varies] if isinstance(varies, str) else varies

    @model_validator(mode="after")
    def consistent(self):
        refuse(self.problems())
        return self

    def settings(self):
        """Every setting that shapes the trained model (not its place in the design), as JSON."""
        return self.model_dump(mode="json", exclude=DESIGN | {"name"})

    def entry(self, key):
        """The label of its entry of a design axis (`name[options]`), or the value of another setting."""
        value = getattr(self, key)
        return value.label if isinstance(value, axes.Choice) else str(value)

    def differences(self, other):
        """The settings in which this configuration differs from `other`."""
        mine, theirs = self.settings(), other.settings()
        return {key for key in mine if mine[key] != theirs[key]}

    def problems(self):
        """Entries that need a discrete noise schedule, or one trained with t uniform, on one; a noise
        schedule that builds and spans a range of sigma; one EMA setting."""
        discrete = sorted(name for name, entry in axes.NOISE_SCHEDULES.items() if entry.discrete)
        uniform = sorted(name for name, entry in axes.NOISE_SCHEDULES.items() if entry.uniform_time)
        schedule = self.noise_schedule
        for key, entry in ((key, getattr(self, key)) for key in AXES):
            if entry.entry.needs_discrete and not schedule.entry.discrete:
                why = f"needs a discrete schedule ({', '.join(discrete)}), but noise_schedule is {schedule.name!r}"
                yield (key,), entry.name, f"{key} {entry.name!r} {why}"
            if entry.entry.needs_uniform_time and not schedule.entry.uniform_time:
                why = (
                    f"draws t uniformly in the noise schedule's own time, a published recipe only where the schedule's paper trains so "
                    f"({', '.join(uniform)}), but no paper trains noise_schedule {schedule.name!r} with t uniform (README, the noise "
                    "sampling table); allowed: one of those schedules, or noise_sampling log_normal or logit_normal"
                )
                yield (key,), entry.name, f"{key} {entry.name!r} {why}"
        name, at, options = schedule.name, ("noise_schedule", "options"), schedule.options
        schedule, refused = built("noise schedule", name, self.build_noise_schedule)
        if refused:
            yield at, options, f"noise schedule {name!r} does not build with these options: {refused}"
        elif not 0 < schedule.sigma_min < schedule.sigma_max < math.inf:
            spans = f"[{schedule.sigma_min:.6g}, {schedule.sigma_max:.6g}]"
            yield at, options, f"noise schedule {name!r} with these options spans sigma {spans}; allowed: 0 < sigma_min < sigma_max, finite"
        if (self.ema_decay is None) == (self.ema_half_life_images is None):
            given = {"ema_decay": self.ema_decay, "ema_half_life_images": self.ema_half_life_images}
            yield (), given, "give exactly one of ema_decay or ema_half_life_images (set the other to null)"
        if self.ema_rampup is not None and self.ema_half_life_images is None:
            yield ("ema_rampup",), self.ema_rampup, "ema_rampup ramps up ema_half_life_images; allowed: null with ema_decay"

    def build_noise_schedule(self):
        return NOISE_SCHEDULES[self.noise_schedule.name](**self.noise_schedule.options)


class Train(Section):
    """Configurations keyed by name. An ablation (Karras et al. 2022, Table 2): a configuration that
    names a `parent` takes every setting it does not give from it, and differs from it in exactly
    the axes it `varies` (one axis; several where entries only make sense together, e.g. DDPM's
    discrete schedule with its timestep index)."""

    configurations: dict[str, Configuration] = Field(min_length=1)

    @model_validator(mode="before")
    @classmethod
    def name_from_key(cls, data):
        configurations = data.get("configurations") if isinstance(data, dict) else None
        if isinstance(configurations, dict):
            why = "has a 'name' key; its key under train.configurations is its name; allowed: no 'name' key"
            named = [(key, value) for key, value in configurations.items() if isinstance(value, dict) and "name" in value]
            refuse((("configurations", key, "name"), value["name"], f"configuration {key!r} {why}") for key, value in named)
            named = {k: {**inherited(configurations, k), "name": k} if isinstance(v, dict) else v for k, v in configurations.items()}
            data = {**data, "configurations": named}
        return data

    @model_validator(mode="after")
    def ablations_vary_their_axes(self):
        refuse(self.ablation_problems())
        return self

    def ablation_problems(self):
        """Each configuration with a parent declares what it varies and differs from the parent in exactly that."""
        for name, config in self.configurations.items():
            if config.parent is None:
                if config.varies:
                    yield (
                        ("configurations", name, "varies"),
                        config.varies,
                        f"configuration {name!r} varies {config.varies} but has no parent",
                    )
                continue
            if not config.varies:
                why = f"allowed: the axes it changes from {config.parent!r}, from {list(VARIED)}"
                yield (
                    ("configurations", name, "varies"),
                    None,
                    f"configuration {name!r} has a parent but does not say which axis it varies; {why}",
                )
                continue
            differences = config.differences(self.configurations[config.parent])
            if differences != set(config.varies):
                also = sorted(differences - set(config.varies))
                same = sorted(set(config.varies) - differences)
                why = "; ".join([f"it also changes {also}" for _ in also[:1]] + [f"it has the parent's {same}" for _ in same[:1]])
                yield (
                    ("configurations", name),
                    config.varies,
                    f"configuration {name!r} must differ from its parent {config.parent!r} in exactly {config.varies}: {why}",
                )

    def ablations(self):
        """(parent, varied axes) -> the parent and the configurations that vary those axes from it, in params order."""
        groups = {}
        for config in self.configurations.values():
            if config.parent is not None:
                groups.setdefault((config.parent, tuple(config.varies)), [config.parent]).append(config.name)
        return groups

    @model_validator(mode="after")
    def names_unique_ignoring_case(self):
        first = {}
        for name in self.configurations:
            first.setdefault(name.lower(), name)
        why = "allowed: names unique ignoring case (their checkpoints/ and results/ folders collide on a case-insensitive file system)"
        clashes = [name for name in self.configurations if first[name.lower()] != name]
        refuse(
            (("configurations", name), name, f"configuration {name!r} differs from {first[name.lower()]!r} only in case; {why}")
            for name in clashes
        )
        return self


class Grid(Section):
    """A sampling grid: every clipping x solver x step schedule x NFE budget, from the same initial
    noise, and per clipping the reference (Heun at `reference_nfe`)."""

    solvers: list[axes.SolverChoice] = Field(min_length=1)
    step_schedules: list[axes.StepScheduleChoice] = Field(min_length=1)
    nfe: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    reference_nfe: int = Field(255, gt=0)
    clipping: list[axes.ClippingChoice] = Field(["none"], min_length=1, validate_default=True)

    @model_validator(mode="after")
    def consistent(self):
        refuse(self.problems())
        return self

    def problems(self):
        """Each entry and budget once; every budget affords every solver's smallest grid."""
        for key in ("solvers", "step_schedules", "clipping"):
            labels = [entry.label for entry in getattr(self, key)]
            for i, label in enumerate(labels):
                if label in labels[:i]:
                    yield (key, i), label, f"{key} lists {label!r} twice; allowed: each entry once"
        needs = {entry.name: entry.entry.nfe(1) for entry in self.solvers}
        most = max(needs, key=needs.get)
        for i, budget in enumerate(self.nfe):
            if budget in self.nfe[:i]:
                yield ("nfe", i), budget, f"nfe repeats the budget {budget}: {self.nfe}; allowed: each budget once"
            if budget < needs[most]:
                yield (
                    ("nfe", i),
                    budget,
                    f"NFE budget {budget} is below what solver {most!r} needs ({needs[most]}); allowed: budgets >= {needs[most]}",
                )


GRID = tuple(Grid.model_fields)


ODE_SAMPLES = 256  # evaluate.ode_samples by default


class Evaluate(Grid):
    """The default grid, the other `grids` by name (each: the keys of the default grid it changes),
    and the sampling settings every cell shares."""

    grids: dict[str, dict] = {}
    num_samples: int = Field(2000, gt=1)
    batch_size: int = Field(2000, gt=0)
    seed: int = 0
    ode_samples: int = Field(ODE_SAMPLES, gt=0)  # the first samples of a cell whose distance to the converged ODE solution is measured
    bootstrap: int = Field(100, ge=2)  # resamples of the generated features behind each FID's standard error

    @model_validator(mode="before")
    @classmethod
    def ode_samples_by_default(cls, data):
        """Not given: ODE_SAMPLES, or every sample when there are fewer."""
        if isinstance(data, dict) and "ode_samples" not in data and isinstance(data.get("num_samples"), int):
            return {**data, "ode_samples": min(ODE_SAMPLES, max(data["num_samples"], 1))}
        return data

    @model_validator(mode="after")
    def ode_samples_are_samples(self):
        if self.ode_samples > self.num_samples:
            why = f"ode_samples {self.ode_samples} exceeds num_samples {self.num_samples}; allowed: at most num_samples"
            refuse([(("ode_samples",), self.ode_samples, why)])
        return self

    @model_validator(mode="after")
    def grids_build(self):
        def problems():
            for name, changes in self.grids.items():
                unknown = sorted(set(changes) - set(GRID))
                if unknown:
                    yield ("grids", name), changes, f"grid {name!r} changes {unknown}; allowed: keys of a grid {list(GRID)}"
                    continue
                try:
                    self.grid(name)
                except ValidationError as error:
                    for e in error.errors():
                        at, cause = ("grids", name, *e["loc"]), e.get("ctx", {}).get("error")
                        if isinstance(cause, Problems):
                            yield from (((*at, *key), value, message) for key, value, message in cause.problems)
                        else:
                            yield at, e.get("input"), e["msg"].removeprefix("Value error, ")

        refuse(problems())
        return self

    def grid(self, name=None):
        """The grid `name` of `grids` (the default grid changed in its keys), or the default grid."""
        default = self.model_dump(include=set(GRID))
        return Grid.model_validate(default if name is None else {**default, **self.grids[name]})


class Tracking(Section):
    experiment: str = Field("design-space", min_length=1)


class Orchestration(Section):
    """How the study's work is spread; the results do not depend on it (no DVC stage reads it).
    `local`: Prefect's thread pool in one process, `parallel` configurations at once (null: one per
    CPU core); `dask`: prefect-dask, on a LocalCluster of
    `dask_workers` processes or on the running Dask scheduler at `dask_address`. Each cell's samples
    are split into `fid_shards` tasks whose features are merged (the same FID as one task)."""

    task_runner: Literal["local", "dask"] = "local"
    parallel: int | None = Field(None, gt=0)
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
    def grids_fit_every_model(self):
        refuse(self.grid_problems())
        return self

    def grid_problems(self):
        """Each configuration's grid exists, and each of its step schedules, with its options, builds
        a grid for the configuration's noise schedule: a sigma range inside the model's, option values
        the step schedule takes."""
        grids = self.evaluate.grids
        for config in self.train.configurations.values():
            if config.grid is not None and config.grid not in grids:
                why = f"allowed: a key of evaluate.grids {sorted(grids)}, or null for the default grid"
                yield (
                    ("train", "configurations", config.name, "grid"),
                    config.grid,
                    f"configuration {config.name!r}: no grid {config.grid!r}; {why}",
                )
        for name in (None, *grids):
            at = ("evaluate", "grids", name) if name is not None and "step_schedules" in grids[name] else ("evaluate",)
            for i, entry in enumerate(self.evaluate.grid(name).step_schedules):
                for config in (c for c in self.train.configurations.values() if c.grid == name):
                    grid = (step_schedule, entry.name, 2, config.build_noise_schedule())
                    _, refused = built("step schedule", entry.name, *grid, **entry.options)
                    if refused:
                        on = f"for configuration {config.name!r} (noise schedule {config.noise_schedule.name!r})"
                        yield (
                            (*at, "step_schedules", i, "options"),
                            entry.options,
                            f"step schedule {entry.name!r} gives no grid with these options {on}: {refused}",
                        )
                        break

    def grid(self, config):
        """The sampling grid of configuration `config`."""
        return self.evaluate.grid(config.grid)

    def configuration(self, name):
        """The configuration `name`, or a clear error with the names there are."""
        return choose(self.train.configurations, "configuration in train.configurations", name)


if __name__ == "__main__":  # python -m flows.params [FILE]: check a params file
    from .params_file import check

    raise SystemExit(check())

"""The schema of params.yaml: the whole study, one section per stage (read from a file by
`schema.params_file.load_params`); the train section's configurations are `schema.configurations`.

An entry of a design axis is a name or {name, options}, checked against its declaration
(models/axes.py: names, option types and ranges, rules); the rules between fields are validators
that name the key path of each problem. The one check that needs the models themselves builds each
step schedule's grid on each configuration's noise schedule, so that a sigma range outside a
model's fails here, not after training.
"""

from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from models import choices
from models.options import Problems, refuse
from models.step_schedules import step_schedule  # for the check only (tasks/compute/provenance.py, CHECK_ONLY)
from models.tables import choose

from .configurations import Section, Train, built
from .datasets import DATASET_ENTRIES


class Data(Section):
    """The dataset, an entry of `schema.datasets.DATASET_ENTRIES`: the embedded digits (default), or
    one read from the files in `root` (fetched there first when `download` is true); the digits are
    split by `test_fraction` and `seed`, the others have their published test sets."""

    dataset: str = "digits"
    root: str | None = None
    download: bool = False
    test_fraction: float = Field(0.2, gt=0, lt=1)
    seed: int = 0

    @field_validator("dataset")
    @classmethod
    def known(cls, dataset):
        choose(DATASET_ENTRIES, "dataset", dataset)
        return dataset

    @property
    def entry(self):
        return DATASET_ENTRIES[self.dataset]

    @model_validator(mode="after")
    def root_for_data_from_files(self):
        if self.entry.files and self.root is None:
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


class Grid(Section):
    """A sampling grid: every clipping x solver x step schedule x NFE budget, from the same initial
    noise, and per clipping the reference (Heun at `reference_nfe`)."""

    solvers: list[choices.SolverChoice] = Field(min_length=1)
    step_schedules: list[choices.StepScheduleChoice] = Field(min_length=1)
    nfe: list[Annotated[int, Field(gt=0)]] = Field(min_length=1)
    reference_nfe: int = Field(255, gt=0)
    clipping: list[choices.ClippingChoice] = Field(["none"], min_length=1, validate_default=True)

    @model_validator(mode="after")
    def consistent(self):
        refuse(self.problems())
        return self

    def problems(self):
        """Each entry and budget once; a fitted step schedule used with deterministic solvers only;
        every budget affords every solver's smallest grid."""
        for key in ("solvers", "step_schedules", "clipping"):
            labels = [entry.label for entry in getattr(self, key)]
            for i, label in enumerate(labels):
                if label in labels[:i]:
                    yield (key, i), label, f"{key} lists {label!r} twice; allowed: each entry once"
        for i, schedule in enumerate(self.step_schedules):
            for solver in self.solvers:
                if schedule.entry.fitted and schedule.used_with(solver) and solver.entry.draws_noise(solver.options):
                    yield (
                        ("step_schedules", i),
                        schedule.name,
                        f"step schedule {schedule.name!r} is fitted to the ODE of a deterministic solver, and solver {solver.label!r} "
                        f"draws noise; allowed: the step schedule's `solvers:` naming deterministic solvers only",
                    )
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
                fixed = not entry.entry.fitted  # a fitted one spans the model's range
                for config in (c for c in self.train.configurations.values() if c.grid == name and fixed):
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

    def compared(self):
        """The configurations sampled on the default grid: the solver comparison."""
        return [name for name, config in self.train.configurations.items() if config.grid is None]

    def configuration(self, name):
        """The configuration `name`, or a clear error with the names there are."""
        return choose(self.train.configurations, "configuration in train.configurations", name)

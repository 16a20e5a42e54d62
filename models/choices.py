"""An entry of a design-axis table named with its options as params.yaml gives it (`name` or {name,
options}), checked against its declaration in `models.axes`: `Choice`, one class per axis."""

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from .axes import (
    CLIPPING_ENTRIES,
    CONDITIONING_ENTRIES,
    NETWORK_ENTRIES,
    NOISE_SAMPLING_ENTRIES,
    NOISE_SCHEDULE_ENTRIES,
    PARAMETERIZATION_ENTRIES,
    SOLVER_ENTRIES,
    STEP_SCHEDULE_ENTRIES,
    WEIGHTING_ENTRIES,
)
from .options import option_problems, refuse
from .tables import choose


class Choice(BaseModel):
    """An entry of a design-axis table with its options: `name`, or {name, options}."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ClassVar[str]
    table: ClassVar[dict]
    name: str
    options: dict[str, Any] = {}

    @model_validator(mode="before")
    @classmethod
    def bare_name(cls, data):
        return {"name": data} if isinstance(data, str) else data

    @field_validator("name")
    @classmethod
    def known(cls, name):
        choose(cls.table, cls.kind, name)
        return name

    @model_validator(mode="after")
    def accepted_options(self):
        refuse((("options", *at), value, message) for at, value, message in option_problems(self.kind, self.name, self.entry, self.options))
        return self

    @property
    def entry(self):
        return self.table[self.name]

    @property
    def label(self):
        """`name`, or `name[key=value,...]` with options: one label per entry and options."""
        return f"{self.name}[{','.join(f'{k}={v}' for k, v in sorted(self.options.items()))}]" if self.options else self.name


def choice(kind, table):
    """The Choice of one design axis: `kind` names it in messages, `table` holds its declarations."""
    return type(
        f"{kind.title().replace(' ', '')}Choice", (Choice,), {"kind": kind, "table": table, "__doc__": f"A {kind} with its options."}
    )


NoiseScheduleChoice = choice("noise schedule", NOISE_SCHEDULE_ENTRIES)
ParameterizationChoice = choice("parameterization", PARAMETERIZATION_ENTRIES)
ConditioningChoice = choice("time conditioning", CONDITIONING_ENTRIES)
NoiseSamplingChoice = choice("noise sampling", NOISE_SAMPLING_ENTRIES)
WeightingChoice = choice("loss weighting", WEIGHTING_ENTRIES)
NetworkChoice = choice("network", NETWORK_ENTRIES)
SolverChoice = choice("solver", SOLVER_ENTRIES)


class StepScheduleChoice(choice("step schedule", STEP_SCHEDULE_ENTRIES)):
    """A step schedule with its options, and `solvers`: the solvers of a grid it is used with (null:
    every one)."""

    solvers: list[str] | None = None

    @field_validator("solvers")
    @classmethod
    def known_solvers(cls, solvers):
        for name in solvers or ():
            choose(SOLVER_ENTRIES, "solver", name)
        return solvers

    def used_with(self, solver):
        return self.solvers is None or solver.name in self.solvers


ClippingChoice = choice("clipping", CLIPPING_ENTRIES)

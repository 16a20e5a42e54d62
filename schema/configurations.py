"""The train section of params.yaml: each training configuration, one entry per design axis (a
name or {name, options}, checked against its declaration in models/axes.py) plus the optimisation
settings, and the rules between them; configurations keyed by name, an ablation (`schema.ablation`)
among them. The one check that needs the models themselves builds each configuration's noise
schedule, so that a sigma range outside what it spans fails here, not after training."""

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models import axes, choices
from models.noise_schedules import NOISE_SCHEDULES  # for the check only (tasks/compute/provenance.py, CHECK_ONLY)
from models.options import refuse

from .ablation import DESIGN, ablation_problems, ablations, inherited


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


AXES = ("noise_schedule", "parameterization", "conditioning", "noise_sampling", "weighting", "network")
VARIED = (*AXES, "steps", "seed")  # what an ablation may vary: a design axis, how long it trains, or its seed (a replicate)
Varied = Literal[VARIED]


class Configuration(Section):
    """One training configuration: one entry per design axis (`AXES`), plus the optimisation settings;
    in an ablation, the `parent` it varies from and the axes it `varies` (`Train`), and the name of
    its evaluation `grid` (`Evaluate.grids`; null: the default grid)."""

    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")  # the key under train.configurations
    parent: str | None = None
    varies: list[Varied] = []
    grid: str | None = None
    noise_schedule: choices.NoiseScheduleChoice = default("edm")
    parameterization: choices.ParameterizationChoice = default("edm")
    conditioning: choices.ConditioningChoice = default("c_noise")
    noise_sampling: choices.NoiseSamplingChoice = default("log_normal")
    weighting: choices.WeightingChoice = default("edm")
    network: choices.NetworkChoice = default("unet")
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
        return value.label if isinstance(value, choices.Choice) else str(value)

    def differences(self, other):
        """The settings in which this configuration differs from `other`."""
        mine, theirs = self.settings(), other.settings()
        return {key for key in mine if mine[key] != theirs[key]}

    def problems(self):
        """Entries that need a discrete noise schedule, or one trained with t uniform, on one; a noise
        schedule that builds and spans a range of sigma; one EMA setting."""
        discrete = sorted(name for name, entry in axes.NOISE_SCHEDULE_ENTRIES.items() if entry.discrete)
        uniform = sorted(name for name, entry in axes.NOISE_SCHEDULE_ENTRIES.items() if entry.uniform_time)
        schedule = self.noise_schedule
        for key, entry in ((key, getattr(self, key)) for key in AXES):
            if entry.entry.needs_discrete and not schedule.entry.discrete:
                why = f"needs a discrete schedule ({', '.join(discrete)}), but noise_schedule is {schedule.name!r}"
                yield (key,), entry.name, f"{key} {entry.name!r} {why}"
            if entry.entry.needs_uniform_time and not schedule.entry.uniform_time:
                why = (
                    f"draws t uniformly in the noise schedule's own time, a published recipe only where the schedule's paper trains so "
                    f"({', '.join(uniform)}), but no paper trains noise_schedule {schedule.name!r} with t uniform (docs/axes.md, noise "
                    "sampling); allowed: one of those schedules, or noise_sampling log_normal or logit_normal"
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
        return ablation_problems(self.configurations, VARIED)

    def ablations(self):
        """(parent, varied axes) -> the parent and the configurations that vary those axes from it, in params order."""
        return ablations(self.configurations)

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

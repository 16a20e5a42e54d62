"""The design space, declared: every entry of every design-axis table with the options it accepts
(type and range) and the rules it needs, apart from the implementations; and `Choice`, an entry
named with its options as params.yaml gives it (`name` or {name, options}), checked against them.

The params schema is built from these declarations, and every stage imports the schema; so that a
stage depends only on the code it computes with (tasks/provenance.py), nothing here imports an
implementation. An option left out takes the implementation's own default (its keyword argument, the
paper's value); tests hold each table's names and options to its implementation's.
"""

from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .tables import choose


def option(description=None, **constraints):
    """An option's declaration: its constraints (pydantic's ge, gt, le, lt, ...), and no default of its own."""
    return Field(None, description=description, **constraints)


class Options(BaseModel):
    """The options of one entry, checked strictly (an integer is a number, but true is not); each
    pair (low, high) of `ordered` must be in order where both are given."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    ordered: ClassVar[tuple[tuple[str, str], ...]] = ()

    @model_validator(mode="after")
    def in_order(self):
        for low, high in self.ordered:
            if getattr(self, low) is not None and getattr(self, high) is not None and not getattr(self, low) < getattr(self, high):
                raise ValueError(f"{low} must be below {high}")
        return self


class SigmaRange(Options):
    """sigma_min and sigma_max: positive, finite and ordered where given."""

    sigma_min: float = option(gt=0, allow_inf_nan=False)
    sigma_max: float = option(gt=0, allow_inf_nan=False)
    ordered = (("sigma_min", "sigma_max"),)


@dataclass(frozen=True, kw_only=True)
class Entry:
    """One entry of a design-axis table: the paper, its options and whether it needs a discrete
    noise schedule (DDPM's timesteps) or one whose paper trains with t uniform in its own time."""

    paper: str = ""
    options: type[Options] = Options
    needs_discrete: bool = False
    needs_uniform_time: bool = False


@dataclass(frozen=True, kw_only=True)
class NoiseScheduleEntry(Entry):
    discrete: bool = False  # trained on timesteps t = 1..T
    uniform_time: bool = True  # its paper trains with t uniform in its own time (EDM's time is sigma: no paper does)


@dataclass(frozen=True, kw_only=True)
class SolverEntry(Entry):
    """order: convergence order in theory; stochastic: draws noise with its default options;
    noise_options: the options whose positive value makes it draw noise (eta, s_churn);
    calls_per_step / final_calls: denoiser calls of an inner step and of the step into sigma = 0."""

    order: int
    stochastic: bool
    noise_options: tuple[str, ...] = ()
    calls_per_step: int = 1
    final_calls: int = 1

    def draws_noise(self, options):
        """Whether it draws noise with `options`: as declared, unless they set one of its noise_options."""
        given = [options[key] for key in self.noise_options if key in options]
        return any(value > 0 for value in given) if given else self.stochastic

    def nfe(self, num_steps):
        """Exact denoiser calls on a grid of `num_steps` steps that ends at sigma = 0."""
        return self.calls_per_step * (num_steps - 1) + self.final_calls


# --- Training: noise schedules, parameterizations, conditionings, noise sampling, weightings, networks


class DDPMOptions(Options):
    beta_start: float = option(gt=0, lt=1)
    beta_end: float = option(gt=0, lt=1)
    timesteps: int = option(ge=2)


class VPLinearOptions(Options):
    beta_min: float = option(ge=0)
    beta_max: float = option(gt=0)
    t_min: float = option(gt=0, le=1)
    t_max: float = option(gt=0, le=1)
    ordered = (("beta_min", "beta_max"), ("t_min", "t_max"))


class VPCosineOptions(Options):
    s: float = option(gt=0)
    t_min: float = option(gt=0, lt=1)
    t_max: float = option(gt=0, lt=1)
    ordered = (("t_min", "t_max"),)


class LearnedOptions(SigmaRange):
    hidden: int = option(gt=0)


NOISE_SCHEDULES = {
    "ddpm": NoiseScheduleEntry(paper="Ho et al. 2020", options=DDPMOptions, discrete=True),
    "vp_linear": NoiseScheduleEntry(paper="Song et al. 2021", options=VPLinearOptions),
    "vp_cosine": NoiseScheduleEntry(paper="Nichol & Dhariwal 2021", options=VPCosineOptions),
    "ve": NoiseScheduleEntry(paper="Song et al. 2021 (SMLD)", options=SigmaRange),
    "edm": NoiseScheduleEntry(paper="Karras et al. 2022", options=SigmaRange, uniform_time=False),
    "flow": NoiseScheduleEntry(paper="Lipman et al. 2023; Liu et al. 2023", options=SigmaRange),
    "learned": NoiseScheduleEntry(paper="Kingma et al. 2021 (VDM)", options=LearnedOptions),
}

PARAMETERIZATIONS = {
    "eps": Entry(paper="Ho et al. 2020"),
    "x0": Entry(),
    "v": Entry(paper="Salimans & Ho 2022"),
    "edm": Entry(paper="Karras et al. 2022"),
    "flow": Entry(paper="Lipman et al. 2023"),
}

CONDITIONINGS = {
    "index": Entry(paper="Ho et al. 2020", needs_discrete=True),
    "time": Entry(paper="Song et al. 2021"),
    "c_noise": Entry(paper="Karras et al. 2022"),
}


class LogNormalOptions(Options):
    p_mean: float = option()
    p_std: float = option(gt=0)


class LogitNormalOptions(Options):
    m: float = option()
    s: float = option(gt=0)


NOISE_SAMPLING = {
    "uniform_discrete": Entry(paper="Ho et al. 2020", needs_discrete=True),
    "uniform": Entry(paper="Song et al. 2021; Nichol & Dhariwal 2021; Kingma et al. 2021; Lipman et al. 2023", needs_uniform_time=True),
    "log_normal": Entry(paper="Karras et al. 2022", options=LogNormalOptions),
    "logit_normal": Entry(paper="Esser et al. 2024", options=LogitNormalOptions),
}


class MinSNROptions(Options):
    gamma: float = option(gt=0)


WEIGHTINGS = {
    "simple": Entry(paper="Ho et al. 2020"),
    "snr": Entry(),
    "min_snr": Entry(paper="Hang et al. 2023", options=MinSNROptions),
    "edm": Entry(paper="Karras et al. 2022"),
    "snr_plus_one": Entry(paper="Salimans & Ho 2022"),
    "truncated_snr": Entry(paper="Salimans & Ho 2022"),
}


class NetworkOptions(Options):
    """Options every network takes; its input size comes from the data, not from params."""

    embedding: Literal["positional", "fourier"] = option()
    embedding_dim: int = option("a positive even integer", gt=0, multiple_of=2)
    dropout: float = option(ge=0, lt=1)


class UNetOptions(NetworkOptions):
    channels: int = option(gt=0)
    channel_mult: list[Annotated[int, Field(gt=0)]] = option("a non-empty list of positive integers", min_length=1)
    num_blocks: int = option(gt=0)
    attention: bool = option()
    groups: int = option(gt=0)


class MLPOptions(NetworkOptions):
    hidden: int = option(gt=0)
    depth: int = option(gt=0)


NETWORKS = {
    "unet": Entry(paper="Ho et al. 2020; Song et al. 2021; Karras et al. 2022", options=UNetOptions),
    "mlp": Entry(options=MLPOptions),
}

# --- Sampling: solvers and step schedules


class DDPMSamplerOptions(Options):
    variance: Literal["large", "small"] = option()


class EtaOptions(Options):
    eta: float = option(ge=0, le=1)


class HeunOptions(Options):
    s_churn: float = option(ge=0)
    s_tmin: float = option(ge=0)
    s_tmax: float = option(ge=0)
    s_noise: float = option(ge=0)


class DPMSolver3Options(Options):
    r1: float = option(gt=0, lt=1)
    r2: float = option(gt=0, lt=1)
    ordered = (("r1", "r2"),)


class IPNDMOptions(Options):
    max_order: int = option(ge=1, le=4)


class DEISOptions(Options):
    max_order: int = option(ge=1, le=3)
    lower_order_final: bool = option()


class UniPCOptions(Options):
    variant: Literal["bh1", "bh2"] = option()


SOLVERS = {
    "ddpm": SolverEntry(paper="Ho et al. 2020", order=1, stochastic=True, options=DDPMSamplerOptions),
    "ddim": SolverEntry(paper="Song et al. 2021", order=1, stochastic=False, noise_options=("eta",), options=EtaOptions),
    "euler": SolverEntry(paper="Euler; Karras et al. 2022", order=1, stochastic=False),
    "euler_ancestral": SolverEntry(
        paper="k-diffusion (DDIM, eta = 1)", order=1, stochastic=True, noise_options=("eta",), options=EtaOptions
    ),
    "midpoint": SolverEntry(paper="Runge-Kutta midpoint rule", order=2, stochastic=False, calls_per_step=2, final_calls=2),
    "heun": SolverEntry(
        paper="Karras et al. 2022", order=2, stochastic=False, noise_options=("s_churn",), calls_per_step=2, options=HeunOptions
    ),
    "dpm_solver_1": SolverEntry(paper="Lu et al. 2022", order=1, stochastic=False),
    "dpm_solver_2": SolverEntry(paper="Lu et al. 2022", order=2, stochastic=False, calls_per_step=2),
    "dpm_solver_3": SolverEntry(paper="Lu et al. 2022", order=3, stochastic=False, calls_per_step=3, options=DPMSolver3Options),
    "dpmpp_2m": SolverEntry(paper="Lu et al. 2022b", order=2, stochastic=False),
    "ipndm": SolverEntry(paper="Zhang & Chen 2023", order=2, stochastic=False, options=IPNDMOptions),
    "deis": SolverEntry(paper="Zhang & Chen 2023", order=2, stochastic=False, options=DEISOptions),
    "unipc": SolverEntry(paper="Zhao et al. 2023", order=3, stochastic=False, options=UniPCOptions),
}


class KarrasOptions(SigmaRange):
    rho: float = option(gt=0)


class TimeUniformOptions(SigmaRange):
    spacing: Literal["linspace", "leading", "trailing"] = option()


STEP_SCHEDULES = {
    "karras": Entry(paper="Karras et al. 2022", options=KarrasOptions),
    "time_uniform": Entry(paper="Song et al. 2021; Lin et al. 2024", options=TimeUniformOptions),
    "time_quadratic": Entry(paper="Song et al. 2021", options=SigmaRange),
    "logsnr_uniform": Entry(paper="Lu et al. 2022", options=SigmaRange),
}


class DynamicThresholdOptions(Options):
    percentile: float = option(gt=0, le=1)


CLIPPINGS = {
    "none": Entry(),
    "clip": Entry(paper="Ho et al. 2020 (diffusers' clip_sample)"),
    "dynamic_threshold": Entry(paper="Saharia et al. 2022 (Imagen)", options=DynamicThresholdOptions),
}

# --- Checking options against a declaration


NOUNS = {int: "integer", float: "number", str: "string", list: "list"}
BOUNDS = {Ge: "<=", Gt: "<", Le: "<=", Lt: "<"}


def requirement(name, field):
    """What an option must be, in words: its description, or its type and range (e.g. 'a number
    with 0 <= eta <= 1', "one of 'bh1', 'bh2'", 'a positive, finite number')."""
    if field.description:
        return field.description
    if get_origin(field.annotation) is Literal:
        return f"one of {', '.join(repr(value) for value in get_args(field.annotation))}"
    if field.annotation is bool:
        return "true or false"
    lower = next((m for m in field.metadata if isinstance(m, Ge | Gt)), None)
    upper = next((m for m in field.metadata if isinstance(m, Le | Lt)), None)
    positive = isinstance(lower, Gt) and lower.gt == 0 and upper is None
    finite = any(getattr(m, "allow_inf_nan", True) is False for m in field.metadata)
    described = ", ".join(["positive"] * positive + ["finite"] * finite) + " " + NOUNS[get_origin(field.annotation) or field.annotation]
    words = ("an " if described.lstrip()[0] in "aeiou" else "a ") + described.lstrip()
    if positive or (lower is None and upper is None):
        return words
    low = f"{lower.ge if isinstance(lower, Ge) else lower.gt} {BOUNDS[type(lower)]} " if lower else ""
    high = f" {BOUNDS[type(upper)]} {upper.le if isinstance(upper, Le) else upper.lt}" if upper else ""
    return f"{words} with {low}{name}{high}"


def option_problems(kind, name, entry, options):
    """(key path below the options, value, message) of each option that `entry` (`kind` `name`) does not
    accept: an unknown name, a value of the wrong type or range, a broken rule between options."""
    try:
        entry.options.model_validate(options)
    except ValidationError as error:
        fields = entry.options.model_fields
        unknown = sorted(str(e["loc"][0]) for e in error.errors() if e["type"] == "extra_forbidden")
        if unknown:
            yield (), options, f"{kind} {name!r} does not accept option(s) {unknown}; allowed: {sorted(fields)}"
        for e in error.errors():
            if e["type"] == "extra_forbidden":
                continue
            if e["loc"]:
                key = e["loc"][0]
                yield (key,), options[key], f"{kind} {name!r}: option {key} must be {requirement(key, fields[key])}"
            else:
                yield (), options, f"{kind} {name!r}: {e['msg'].removeprefix('Value error, ')}"


def check_options(kind, name, entry, options):
    """Raise a ValueError that names every problem of `options` for `entry`, if it has any."""
    problems = [f"{message} (got {value!r})" for _, value, message in option_problems(kind, name, entry, options)]
    if problems:
        raise ValueError("; ".join(problems))


class Problems(ValueError):
    """What a check found: (key path below the checked model, value given there, message) each; a
    pydantic validator raises it so that every message keeps its exact key path."""

    def __init__(self, problems):
        self.problems = problems
        super().__init__("; ".join(message for _, _, message in problems))


def refuse(problems):
    """Raise `Problems` if the iterable `problems` yields any."""
    problems = list(problems)
    if problems:
        raise Problems(problems)


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


NoiseScheduleChoice = choice("noise schedule", NOISE_SCHEDULES)
ParameterizationChoice = choice("parameterization", PARAMETERIZATIONS)
ConditioningChoice = choice("time conditioning", CONDITIONINGS)
NoiseSamplingChoice = choice("noise sampling", NOISE_SAMPLING)
WeightingChoice = choice("loss weighting", WEIGHTINGS)
NetworkChoice = choice("network", NETWORKS)
SolverChoice = choice("solver", SOLVERS)
StepScheduleChoice = choice("step schedule", STEP_SCHEDULES)
ClippingChoice = choice("clipping", CLIPPINGS)

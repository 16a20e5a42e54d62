"""The design space, declared: every entry of every design-axis table with the options it accepts
(type and range) and the rules it needs, apart from the implementations (an entry named with its
options as params.yaml gives it: `models.choices`).

The params schema is built from these declarations, and every stage imports the schema; so that a
stage depends only on the code it computes with (tasks/compute/provenance.py), nothing here imports an
implementation. An option left out takes the implementation's own default (its keyword argument, the
paper's value); tests hold each table's names and options to its implementation's.
"""

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import Field

from .options import Options, option


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
class StepScheduleEntry(Entry):
    fitted: bool = False  # computed for each model and solver from the model itself (`models.optimized_schedules`)


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


NOISE_SCHEDULE_ENTRIES = {
    "ddpm": NoiseScheduleEntry(paper="Ho et al. 2020", options=DDPMOptions, discrete=True),
    "vp_linear": NoiseScheduleEntry(paper="Song et al. 2021", options=VPLinearOptions),
    "vp_cosine": NoiseScheduleEntry(paper="Nichol & Dhariwal 2021", options=VPCosineOptions),
    "ve": NoiseScheduleEntry(paper="Song et al. 2021 (SMLD)", options=SigmaRange),
    "edm": NoiseScheduleEntry(paper="Karras et al. 2022", options=SigmaRange, uniform_time=False),
    "flow": NoiseScheduleEntry(paper="Lipman et al. 2023; Liu et al. 2023", options=SigmaRange),
    "learned": NoiseScheduleEntry(paper="Kingma et al. 2021 (VDM)", options=LearnedOptions),
}

PARAMETERIZATION_ENTRIES = {
    "eps": Entry(paper="Ho et al. 2020"),
    "x0": Entry(),
    "v": Entry(paper="Salimans & Ho 2022"),
    "edm": Entry(paper="Karras et al. 2022"),
    "flow": Entry(paper="Lipman et al. 2023"),
}

CONDITIONING_ENTRIES = {
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


NOISE_SAMPLING_ENTRIES = {
    "uniform_discrete": Entry(paper="Ho et al. 2020", needs_discrete=True),
    "uniform": Entry(paper="Song et al. 2021; Nichol & Dhariwal 2021; Kingma et al. 2021; Lipman et al. 2023", needs_uniform_time=True),
    "log_normal": Entry(paper="Karras et al. 2022", options=LogNormalOptions),
    "logit_normal": Entry(paper="Esser et al. 2024", options=LogitNormalOptions),
}


class MinSNROptions(Options):
    gamma: float = option(gt=0)


WEIGHTING_ENTRIES = {
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


NETWORK_ENTRIES = {
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


SOLVER_ENTRIES = {
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


class AYSGaussianOptions(SigmaRange):
    c: float = option(gt=0)


class OptimizedOptions(Options):
    method: Literal["search", "gits"] = option()
    calibration: int = option(gt=0)
    candidates: int = option("an integer >= 2", ge=2)
    evaluations: int = option("an integer >= 32", ge=32)


STEP_SCHEDULE_ENTRIES = {
    "karras": StepScheduleEntry(paper="Karras et al. 2022", options=KarrasOptions),
    "time_uniform": StepScheduleEntry(paper="Song et al. 2021; Lin et al. 2024", options=TimeUniformOptions),
    "time_quadratic": StepScheduleEntry(paper="Song et al. 2021", options=SigmaRange),
    "logsnr_uniform": StepScheduleEntry(paper="Lu et al. 2022", options=SigmaRange),
    "ays_gaussian": StepScheduleEntry(paper="Sabour et al. 2024 (Align Your Steps, Thm. 3.1)", options=AYSGaussianOptions),
    "optimized": StepScheduleEntry(
        paper="Pei et al. 2025 (Optimal Stepsize); Chen et al. 2024 (GITS)", options=OptimizedOptions, fitted=True
    ),
}


class DynamicThresholdOptions(Options):
    percentile: float = option(gt=0, le=1)


CLIPPING_ENTRIES = {
    "none": Entry(),
    "clip": Entry(paper="Ho et al. 2020 (diffusers' clip_sample)"),
    "dynamic_threshold": Entry(paper="Saharia et al. 2022 (Imagen)", options=DynamicThresholdOptions),
}

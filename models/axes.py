"""The design space, declared: every entry of every design-axis table with the options it accepts
(type and range) and the rules it needs, apart from the implementations (an entry named with its
options as params.yaml gives it: `models.choices`).

The params schema is built from these declarations, and every stage imports the schema; so that a
stage depends only on the code it computes with (tasks/compute/provenance.py), nothing here imports an
implementation. An option left out takes the implementation's own default (its keyword argument, the
paper's value); tests hold each table's names and options to its implementation's.
"""

from dataclasses import dataclass, field
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
    """One entry of a design-axis table: the paper, its options, whether it needs a discrete noise
    schedule (DDPM's timesteps) or one whose paper trains with t uniform in its own time, and in a
    line what it is."""

    paper: str = ""
    options: type[Options] = Options
    needs_discrete: bool = False
    needs_uniform_time: bool = False
    summary: str = field(default="", repr=False, compare=False)  # what it is, for docs/axes.md; not in a cell's identity


@dataclass(frozen=True, kw_only=True)
class NoiseScheduleEntry(Entry):
    scaling: Literal["vp", "ve", "flow"] = "vp"  # how x_t scales with EDM sigma: 1/sqrt(1 + s^2), 1 or 1/(1 + s)
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
    "ddpm": NoiseScheduleEntry(
        paper="Ho et al. 2020",
        options=DDPMOptions,
        discrete=True,
        summary="discrete: betas linear 1e-4 .. 0.02, T = 1000, `abar_t = prod(1 - beta_s)`",
    ),
    "vp_linear": NoiseScheduleEntry(
        paper="Song et al. 2021",
        options=VPLinearOptions,
        summary="the continuous limit of DDPM: `log abar = -(0.1 t + 9.95 t^2)`, t in [1e-3, 1]",
    ),
    "vp_cosine": NoiseScheduleEntry(
        paper="Nichol & Dhariwal 2021",
        options=VPCosineOptions,
        summary="`abar = f(t) / f(0)`, `f = cos((t + s) / (1 + s) pi / 2)^2`, s = 0.008",
    ),
    "ve": NoiseScheduleEntry(
        scaling="ve", paper="Song et al. 2021 (SMLD)", options=SigmaRange, summary="`sigma = 0.01 (50 / 0.01)^t`, alpha = 1"
    ),
    "edm": NoiseScheduleEntry(
        scaling="ve", paper="Karras et al. 2022", options=SigmaRange, uniform_time=False, summary="`sigma(t) = t`, alpha = 1"
    ),
    "flow": NoiseScheduleEntry(
        scaling="flow",
        paper="Lipman et al. 2023; Liu et al. 2023",
        options=SigmaRange,
        summary="cond-OT `x_t = (1 - t) x0 + t eps` (the lecture's t -> 1 - t)",
    ),
    "learned": NoiseScheduleEntry(
        paper="Kingma et al. 2021 (VDM)",
        options=LearnedOptions,
        summary="VP with `gamma = -lambda` a monotone network between fixed end points, trained to minimise the loss variance",
    ),
}

PARAMETERIZATION_ENTRIES = {
    "eps": Entry(paper="Ho et al. 2020", summary="predicts the noise: c_skip 1, c_out -s, c_in alpha"),
    "x0": Entry(summary="predicts the clean data: c_skip 0, c_out 1, c_in alpha"),
    "v": Entry(
        paper="Salimans & Ho 2022",
        summary="predicts `alpha_t eps - sigma_t x0`: c_skip 1 / (1 + s^2), c_out -s / (alpha (1 + s^2)), c_in alpha",
    ),
    "edm": Entry(
        paper="Karras et al. 2022",
        summary="EDM preconditioning: c_skip sd^2 / (s^2 + sd^2), c_out s sd / sqrt(s^2 + sd^2), c_in 1 / sqrt(s^2 + sd^2)",
    ),
    "flow": Entry(
        paper="Lipman et al. 2023", summary="predicts the velocity `x0 - eps`: c_skip 1 / (1 + s), c_out s / (1 + s), c_in alpha"
    ),
}

CONDITIONING_ENTRIES = {
    "index": Entry(paper="Ho et al. 2020", needs_discrete=True, summary="DDPM's timestep index t - 1"),
    "time": Entry(paper="Song et al. 2021", summary="the time, 1000 t / t_max"),
    "c_noise": Entry(paper="Karras et al. 2022", summary="`c_noise = log(sigma) / 4`"),
}


class LogNormalOptions(Options):
    p_mean: float = option()
    p_std: float = option(gt=0)


class LogitNormalOptions(Options):
    m: float = option()
    s: float = option(gt=0)


NOISE_SAMPLING_ENTRIES = {
    "uniform_discrete": Entry(paper="Ho et al. 2020", needs_discrete=True, summary="the timestep t uniform on 1 .. T (Alg. 1)"),
    "uniform": Entry(
        paper="Song et al. 2021; Nichol & Dhariwal 2021; Kingma et al. 2021; Lipman et al. 2023",
        needs_uniform_time=True,
        summary="t uniform in the schedule's own time: the schedule's own recipe",
    ),
    "log_normal": Entry(
        paper="Karras et al. 2022",
        options=LogNormalOptions,
        summary=(
            "log sigma ~ N(`p_mean`, `p_std`^2), by default N(-1.2, 1.2^2): median sigma 0.30 (Sec. 5); clamped to the schedule's range"
        ),
    ),
    "logit_normal": Entry(
        paper="Esser et al. 2024",
        options=LogitNormalOptions,
        summary=(
            "rectified flow's t = sigmoid(u), u ~ N(`m`, `s`^2), by default N(0, 1) (SD3, eq. 19); its "
            "sigma is t / (1 - t), so log sigma = u: median sigma 1; clamped to the schedule's range"
        ),
    ),
}


class MinSNROptions(Options):
    gamma: float = option(gt=0)


WEIGHTING_ENTRIES = {
    "simple": Entry(paper="Ho et al. 2020", summary="w = 1 / c_out^2: uniform in the parameterization's own target"),
    "snr": Entry(summary="w = SNR = 1 / sigma^2 (the eps loss)"),
    "min_snr": Entry(paper="Hang et al. 2023", options=MinSNROptions, summary="w = min(SNR, gamma), gamma = 5"),
    "edm": Entry(paper="Karras et al. 2022", summary="w = (sigma^2 + sd^2) / (sigma sd)^2"),
    "snr_plus_one": Entry(paper="Salimans & Ho 2022", summary="w = SNR + 1 (the v loss)"),
    "truncated_snr": Entry(paper="Salimans & Ho 2022", summary="w = max(SNR, 1)"),
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
    "unet": Entry(
        paper="Ho et al. 2020; Song et al. 2021; Karras et al. 2022",
        options=UNetOptions,
        summary=(
            "a small DDPM-style U-Net: residual blocks with GroupNorm, self-attention at the lowest "
            "resolution, dropout, a zero-initialised output; by default 100,433 parameters on 8x8 "
            "digits"
        ),
    ),
    "mlp": Entry(options=MLPOptions, summary="an MLP for vectors such as 2-D toy data"),
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
    "ddpm": SolverEntry(
        paper="Ho et al. 2020",
        order=1,
        stochastic=True,
        options=DDPMSamplerOptions,
        summary="ancestral sampling (Alg. 2); `variance` large (beta_t) or small (the posterior's beta_tilde)",
    ),
    "ddim": SolverEntry(
        paper="Song et al. 2021",
        order=1,
        stochastic=False,
        noise_options=("eta",),
        options=EtaOptions,
        summary="DDIM (the lecture's Alg. 1); with eta = 0 it is Euler in sigma-space",
    ),
    "euler": SolverEntry(
        paper="Euler; Karras et al. 2022", order=1, stochastic=False, summary="Euler in sigma-space: = ddim(eta = 0) = dpm_solver_1"
    ),
    "euler_ancestral": SolverEntry(
        paper="k-diffusion (DDIM, eta = 1)",
        order=1,
        stochastic=True,
        noise_options=("eta",),
        options=EtaOptions,
        summary="= ddim with eta = 1 = ddpm(variance = small)",
    ),
    "midpoint": SolverEntry(
        paper="Runge-Kutta midpoint rule",
        order=2,
        stochastic=False,
        calls_per_step=2,
        final_calls=2,
        summary="the explicit midpoint rule, two calls per step",
    ),
    "heun": SolverEntry(
        paper="Karras et al. 2022",
        order=2,
        stochastic=False,
        noise_options=("s_churn",),
        calls_per_step=2,
        options=HeunOptions,
        summary="EDM's Alg. 2 (stochastic with s_churn > 0); Euler on the step into sigma = 0",
    ),
    "dpm_solver_1": SolverEntry(paper="Lu et al. 2022", order=1, stochastic=False, summary="DPM-Solver-1: = Euler"),
    "dpm_solver_2": SolverEntry(
        paper="Lu et al. 2022", order=2, stochastic=False, calls_per_step=2, summary="DPM-Solver-2, Alg. 1 with r1 = 1/2"
    ),
    "dpm_solver_3": SolverEntry(
        paper="Lu et al. 2022", order=3, stochastic=False, calls_per_step=3, options=DPMSolver3Options, summary="DPM-Solver-3, Alg. 2"
    ),
    "dpmpp_2m": SolverEntry(
        paper="Lu et al. 2022b",
        order=2,
        stochastic=False,
        summary="DPM-Solver++(2M): multistep in data prediction, first order on its first step",
    ),
    "ipndm": SolverEntry(
        paper="Zhang & Chen 2023",
        order=2,
        stochastic=False,
        options=IPNDMOptions,
        summary="improved PNDM: Adams-Bashforth steps up to `max_order` after an Euler start; order 2 on non-uniform grids",
    ),
    "deis": SolverEntry(
        paper="Zhang & Chen 2023",
        order=2,
        stochastic=False,
        options=DEISOptions,
        summary=(
            "rhoAB-DEIS (log-rho): dx/dsigma integrated against the Lagrange polynomial of the last noise predictions; Euler into sigma = 0"
        ),
    ),
    "unipc": SolverEntry(
        paper="Zhao et al. 2023",
        order=3,
        stochastic=False,
        options=UniPCOptions,
        summary="UniPC-2 (bh2): the predictor UniP-2 and the corrector UniC, which raises its order by one",
    ),
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
    "karras": StepScheduleEntry(paper="Karras et al. 2022", options=KarrasOptions, summary="uniform in sigma^(1/rho) (eq. 5)"),
    "time_uniform": StepScheduleEntry(
        paper="Song et al. 2021; Lin et al. 2024",
        options=TimeUniformOptions,
        summary="uniform in the model's own time t; for DDPM the lecture's [1000, 900, ..., 100]",
    ),
    "time_quadratic": StepScheduleEntry(paper="Song et al. 2021", options=SigmaRange, summary="quadratic in t, dense at low noise (DDIM)"),
    "logsnr_uniform": StepScheduleEntry(paper="Lu et al. 2022", options=SigmaRange, summary="uniform in log-SNR = -log(sigma)"),
    "ays_gaussian": StepScheduleEntry(
        paper="Sabour et al. 2024 (Align Your Steps, Thm. 3.1)",
        options=AYSGaussianOptions,
        summary=(
            "Align Your Steps' optimum for Gaussian data of standard deviation c: uniform in "
            "arctan(sigma / c) (ComfyUI's `kl_optimal` is c = 1)"
        ),
    ),
    "optimized": StepScheduleEntry(
        paper="Pei et al. 2025 (Optimal Stepsize); Chen et al. 2024 (GITS)",
        options=OptimizedOptions,
        fitted=True,
        summary=(
            "fitted to the model and the solver at each budget: a search on the solver's own end-point "
            "error against the model's converged ODE solution, or GITS's dynamic programming"
        ),
    ),
}


class DynamicThresholdOptions(Options):
    percentile: float = option(gt=0, le=1)


CLIPPING_ENTRIES = {
    "none": Entry(summary="D as it is"),
    "clip": Entry(paper="Ho et al. 2020 (diffusers' clip_sample)", summary="clamp D to [-1, 1]"),
    "dynamic_threshold": Entry(
        paper="Saharia et al. 2022 (Imagen)",
        options=DynamicThresholdOptions,
        summary="s = the `percentile` of \\|D\\| per sample, at least 1; clamp to [-s, s], divide by s",
    ),
}

"""Sampling-time step schedules: grids of decreasing sigmas that end at 0.

Every entry has one signature, `f(num_steps, noise_schedule, sigma_min, sigma_max, **options)`, and
returns `num_steps` sigmas from sigma_max down to the low end; `step_schedule` checks the range
against the model's, snaps the grid to the timesteps of a discrete model, and appends sigma = 0.
"""

import math

import torch

from . import axes
from .options import check_options


def karras(num_steps, noise_schedule, sigma_min, sigma_max, *, rho=7.0):
    """EDM (Karras et al. 2022, eq. 5): uniform in sigma^(1/rho)."""
    i = torch.arange(num_steps, dtype=torch.float64)
    ramp = i / max(num_steps - 1, 1)
    return (sigma_max ** (1 / rho) + ramp * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def time_range(noise_schedule, sigma_min, sigma_max):
    """The model times of sigma_min and sigma_max: its own t_min/t_max at the ends of its range, so
    that no round trip through `time` moves the grid's ends."""

    def time(sigma, end_sigma, end_t):
        return end_t if sigma == end_sigma else float(noise_schedule.time(torch.tensor(sigma, dtype=torch.float64)))

    return time(sigma_min, noise_schedule.sigma_min, noise_schedule.t_min), time(sigma_max, noise_schedule.sigma_max, noise_schedule.t_max)


def time_uniform(num_steps, noise_schedule, sigma_min, sigma_max, *, spacing="linspace"):
    """Uniform in the model's own time t (DDIM's subsequence, e.g. [1000, 900, ..., 100]).

    Spacings of Lin et al. 2024, Table 2: "linspace" spans [t_low, t_high]; "trailing" starts at
    t_high and steps down by span/N; "leading" steps up from t_low by span/N. For a discrete model
    the span counts one extra timestep, so that "trailing" with T = 1000, N = 10 is 1000, 900, ..., 100.
    """
    t_low, t_high = time_range(noise_schedule, sigma_min, sigma_max)
    span = t_high - t_low + (1 if noise_schedule.timesteps is not None else 0)
    t = SPACINGS[spacing](torch.arange(num_steps, dtype=torch.float64), num_steps, t_low, t_high, span)
    return noise_schedule.edm_sigma(t.clamp(t_low, t_high)).to(torch.float64)


SPACINGS = {
    "linspace": lambda i, n, low, high, span: high - (high - low) * i / max(n - 1, 1),
    "trailing": lambda i, n, low, high, span: high - span * i / n,
    "leading": lambda i, n, low, high, span: low + span * (n - 1 - i) / n,
}


def time_quadratic(num_steps, noise_schedule, sigma_min, sigma_max):
    """Quadratic in the model's time (DDIM, Song et al. 2021, App. D.2): dense at low noise."""
    t_low, t_high = time_range(noise_schedule, sigma_min, sigma_max)
    ramp = 1 - torch.arange(num_steps, dtype=torch.float64) / max(num_steps - 1, 1)
    return noise_schedule.edm_sigma(t_low + (t_high - t_low) * ramp**2).to(torch.float64)


def logsnr_uniform(num_steps, noise_schedule, sigma_min, sigma_max):
    """Uniform in log-SNR lambda = -log(sigma) (DPM-Solver's recommendation, Lu et al. 2022, Sec. 3.4)."""
    ramp = torch.arange(num_steps, dtype=torch.float64) / max(num_steps - 1, 1)
    log_max, log_min = (torch.tensor(s, dtype=torch.float64).log() for s in (sigma_max, sigma_min))
    return torch.exp(torch.lerp(log_max, log_min, ramp))


def ays_gaussian(num_steps, noise_schedule, sigma_min, sigma_max, *, c=0.5):
    """Align Your Steps' optimum for Gaussian data of standard deviation c (Sabour et al. 2024, Thm.
    3.1): uniform in arctan(sigma / c); c defaults to sigma_data = 0.5, the data's standard deviation
    EDM assumes (ComfyUI's "kl_optimal" takes c = 1)."""
    ramp = torch.arange(num_steps, dtype=torch.float64) / max(num_steps - 1, 1)
    high, low = math.atan(sigma_max / c), math.atan(sigma_min / c)
    return c * torch.tan(high + ramp * (low - high))


STEP_SCHEDULES = {
    "karras": karras,
    "time_uniform": time_uniform,
    "time_quadratic": time_quadratic,
    "logsnr_uniform": logsnr_uniform,
    "ays_gaussian": ays_gaussian,
}


def snap(sigmas, discrete_sigmas):
    """Nearest timestep of a discrete model (in log-sigma), duplicates removed, order kept."""
    log_table = discrete_sigmas.log()
    nearest = (sigmas.log()[:, None] - log_table[None]).abs().argmin(1)
    return discrete_sigmas[torch.unique_consecutive(nearest)]


def step_schedule(name, num_steps, noise_schedule, *, sigma_min=None, sigma_max=None, **options):
    """A grid of at most `num_steps` steps from sigma_max to 0 (float64), in the model's range.

    sigma_min/sigma_max default to the model's; asking beyond its range is an error. A discrete
    model's grid is snapped to its timesteps, which may merge steps: the grid then has fewer.
    """
    if name in axes.STEP_SCHEDULE_ENTRIES and axes.STEP_SCHEDULE_ENTRIES[name].fitted:
        raise ValueError(f"step schedule {name!r} is fitted to a model and solver: models.optimized_schedules.optimized_step_schedule")
    if name not in STEP_SCHEDULES:
        raise ValueError(f"unknown step schedule {name!r}; allowed: {sorted(STEP_SCHEDULES)}")
    check_options("step schedule", name, axes.STEP_SCHEDULE_ENTRIES[name], options)
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"step schedule {name!r}: num_steps={num_steps!r}; allowed: an integer >= 1")
    low, high = noise_schedule.sigma_min, noise_schedule.sigma_max
    sigma_min = low if sigma_min is None else sigma_min
    sigma_max = high if sigma_max is None else sigma_max
    for key, value in (("sigma_min", sigma_min), ("sigma_max", sigma_max)):
        if not low * (1 - 1e-9) <= value <= high * (1 + 1e-9):
            raise ValueError(f"step schedule {name!r}: {key}={value:.6g} is outside the model's range [{low:.6g}, {high:.6g}]")
    if not sigma_min < sigma_max:
        raise ValueError(f"step schedule {name!r}: sigma_min={sigma_min:.6g} must be below sigma_max={sigma_max:.6g}")
    sigmas = STEP_SCHEDULES[name](num_steps, noise_schedule, sigma_min, sigma_max, **options).clamp(sigma_min, sigma_max)
    if noise_schedule.timesteps is not None:
        sigmas = snap(sigmas, noise_schedule.discrete_sigmas)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


def sigmas_for_budget(solver, nfe_budget, name, noise_schedule, **options):
    """The finest grid of step schedule `name` whose cost under `solver` fits in `nfe_budget`.

    Returns (sigmas, nfe actually spent). On a discrete model snapping can merge steps, so the
    search asks for more steps until the grid no longer fits or holds every timestep.
    """
    if solver.nfe(1) > nfe_budget:
        raise ValueError(f"solver {solver.name!r} needs at least {solver.nfe(1)} NFE; budget is {nfe_budget}")
    best, num_steps = None, 1
    while True:
        sigmas = step_schedule(name, num_steps, noise_schedule, **options)
        if solver.nfe(len(sigmas) - 1) > nfe_budget:
            break
        best = sigmas
        if len(sigmas) - 1 == noise_schedule.timesteps:
            break
        num_steps += 1
    return best, solver.nfe(len(best) - 1)

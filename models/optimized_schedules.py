"""Step schedules optimized for one model and one solver: the grid of N steps whose samples land
closest to the model's own converged ODE solution (a teacher) from calibration noise.

Two methods, one signature (`METHODS`):
- "search" (the default): a derivative-free search of the grid on the end-point error of the solver
  itself against the teacher, as Optimal Stepsize (Pei et al. 2025) and Align Your Steps (Sabour et
  al. 2024) minimize, from the best of a few Karras grids: of its log-sigma drops by COBYQA when 5
  steps or fewer are free, else by Powell of a monotone piecewise-linear map of the step index to log
  sigma, free at its low end.
- "gits": GITS (Chen et al. 2024): the cost of one Euler step between any two sigmas of a fine
  candidate grid, against the teacher's trajectory, and the cheapest path of N steps through it by
  dynamic programming (`cheapest_path`), whatever the solver.
"""

import functools
import math

import numpy as np
import torch
from scipy.optimize import minimize

from .solvers import SOLVERS
from .step_schedules import karras, snap

SEARCH_BINS = 8  # at most: the free log-sigma increments of the search (`piecewise`), whatever the number of steps
MODEL_BINS = 5  # at most: the increments of a grid the search fits by a quadratic model (COBYQA, `increments`)
TEACHER_STEPS = 128  # at least: EDM's Heun at NFE 255, the study's converged reference (params.yaml)


def teacher(denoiser, x, noise_schedule, candidates):
    """(candidate sigmas ending at 0, the teacher's states at each [len, B, ...]): EDM's Heun from x
    (at sigma_max) on a Karras grid of `candidates` sigmas, each interval in as many steps as make
    `TEACHER_STEPS` in all, and the step into 0."""
    substeps = math.ceil(TEACHER_STEPS / (candidates - 1))
    fine = karras((candidates - 1) * substeps + 1, noise_schedule, noise_schedule.sigma_min, noise_schedule.sigma_max)
    states, heun = [x], SOLVERS["heun"]
    for first in range(0, len(fine) - 1, substeps):
        states.append(heun(denoiser, states[-1], fine[first : first + substeps + 1]))
    states.append(heun(denoiser, states[-1], torch.cat([fine[-1:], fine.new_zeros(1)])))  # the step into sigma = 0
    return torch.cat([fine[::substeps], fine.new_zeros(1)]), torch.stack(states)


def distance(x, target):
    """Root-mean-square distance per sample and pixel (`tasks.compute.cells.ode_error`'s)."""
    return (x.double() - target.double()).pow(2).mean().sqrt().item()


def cheapest_path(cost, num_steps):
    """The path 0 = i_0 < i_1 < ... < i_N = M - 1 of N = `num_steps` steps through an M x M matrix of
    step costs (cost[i, j], i < j) whose summed cost is least: dynamic programming over (steps taken,
    node), GITS (Chen et al. 2024, Sec. 4.2)."""
    size = cost.shape[0]
    if not 1 <= num_steps <= size - 1:
        raise ValueError(f"cheapest_path: num_steps={num_steps}; allowed: 1 .. {size - 1} on {size} candidates")
    best = np.full((num_steps + 1, size), np.inf)
    previous = np.zeros((num_steps + 1, size), dtype=int)
    best[0, 0] = 0.0
    for step in range(1, num_steps + 1):
        for j in range(1, size):
            totals = best[step - 1, :j] + cost[:j, j]
            previous[step, j] = int(np.argmin(totals))
            best[step, j] = totals[previous[step, j]]
    path = [size - 1]
    for step in range(num_steps, 0, -1):
        path.append(previous[step, path[-1]])
    return path[::-1]


def gits(denoiser, solver, x, noise_schedule, num_steps, candidates, evaluations):
    """GITS: cost[i, j] = distance of one Euler step from the teacher's state at candidate i to
    candidate j, to the teacher's state there; the cheapest path of `num_steps` steps."""
    sigmas, states = teacher(denoiser, x, noise_schedule, candidates)
    size = len(sigmas)
    cost = np.full((size, size), np.inf)
    for i in range(size - 1):
        denoised = denoiser(states[i], torch.full((len(x),), sigmas[i].item(), dtype=x.dtype, device=x.device))
        for j in range(i + 1, size):
            euler = states[i] + ((sigmas[j] - sigmas[i]) / sigmas[i]).item() * (states[i] - denoised)
            cost[i, j] = distance(euler, states[j])
    return sigmas[cheapest_path(cost, num_steps)]


def piecewise(parameters, sigma_max, log_range, num_steps):
    """The grid of a search point: the first len - 1 parameters are log masses of equal bins of the
    step index's ramp (a piecewise-linear, increasing map onto the log-sigma drop), the last the log of
    the drop, at most the model's `log_range`; sigma_max first, 0 appended."""
    masses = np.exp(parameters[:-1] - parameters[:-1].max())
    knots = np.concatenate([[0.0], np.cumsum(masses) / masses.sum()])
    ramp = np.interp(np.arange(num_steps) / (num_steps - 1), np.linspace(0, 1, len(knots)), knots)
    drop = min(math.exp(parameters[-1]), log_range)
    return torch.tensor(np.append(sigma_max * np.exp(-drop * ramp), 0.0), dtype=torch.float64)


def increments(parameters, sigma_max, log_range, num_steps):
    """The grid of a search point of `MODEL_BINS` or fewer bins: the parameters are the logs of the
    log-sigma drops of the steps (scaled down to the model's `log_range` where they exceed it), one per
    free sigma and none redundant; sigma_max first, 0 appended."""
    drops = np.exp(parameters) * min(1.0, log_range / np.exp(parameters).sum())
    return torch.tensor(np.append(sigma_max * np.exp(-np.concatenate([[0.0], np.cumsum(drops)])), 0.0), dtype=torch.float64)


def search(denoiser, solver, x, noise_schedule, num_steps, candidates, evaluations):
    """The grid that minimizes the solver's end-point distance to the teacher, by Powell's method over
    `piecewise`'s parameters (num_steps - 1 bins, `SEARCH_BINS` at most), from the best of Karras
    grids at rho 1, 3, 7 ending at 5 low ends of the model's range, within `evaluations` solver runs.
    A grid of `MODEL_BINS` steps or fewer, every sigma free, is searched over `increments` by COBYQA
    (Ragonneau & Zhang 2023), whose quadratic model of the few parameters reaches the optimum in far
    fewer runs than Powell's line searches."""
    target = teacher(denoiser, x, noise_schedule, 2)[1][-1]
    log_max, log_min = math.log(noise_schedule.sigma_max), math.log(noise_schedule.sigma_min)
    log_range, bins = log_max - log_min, min(num_steps - 1, SEARCH_BINS)

    def error(parameters, to_sigmas):
        sigmas = to_sigmas(parameters, noise_schedule.sigma_max, log_range, num_steps)
        return distance(solver(denoiser, x, sigmas), target) if (sigmas[:-1].diff() < 0).all() else math.inf

    def start(rho, low):
        ramp = karras(bins + 1, noise_schedule, math.exp(low), noise_schedule.sigma_max, rho=rho).log()
        return np.append(np.log(-ramp.diff().numpy()), math.log(log_max - low))

    starts = [start(rho, log_min + f * log_range) for rho in (1.0, 3.0, 7.0) for f in (0.0, 0.1, 0.2, 0.3, 0.4)]
    if bins <= MODEL_BINS:  # num_steps - 1 free sigmas: their log drops, the last of start's parameters dropped
        starts = [point[:-1] for point in starts]
        to_sigmas, method, options = increments, "COBYQA", dict(initial_tr_radius=0.5, final_tr_radius=1e-3)
    else:
        to_sigmas, method, options = piecewise, "Powell", dict(xtol=1e-3, ftol=1e-4)
    errors = [error(point, to_sigmas) for point in starts]
    first = starts[int(np.argmin(errors))]
    found = minimize(error, first, args=(to_sigmas,), method=method, options=dict(maxfev=evaluations - len(starts), **options))
    return to_sigmas(found.x if found.fun <= min(errors) else first, noise_schedule.sigma_max, log_range, num_steps)


METHODS = {"search": search, "gits": gits}


@torch.no_grad()
def optimized_step_schedule(
    denoiser, noise_schedule, num_steps, *, solver, calibration, solver_options=None, method="search", candidates=32, evaluations=120
):
    """A grid of `num_steps` steps from the model's sigma_max to 0 (float64) optimized for `solver`
    (a name of `models.solvers.SOLVERS`, deterministic with its `solver_options`) on the denoiser
    D(x; sigma) of the solver contract, from `calibration`: unit-variance noise [B, ...] that no
    evaluation sees.

    method "search" (`search`, within `evaluations` solver runs) or "gits" (`gits`, on `candidates`
    sigmas, at least num_steps + 1). A discrete model's grid is snapped to its timesteps. The grid
    works with any sampler that takes sigmas: k-diffusion's `sample_*`, or diffusers' schedulers
    with custom `sigmas` (without the final 0 where they append it).
    """
    if method not in METHODS:
        raise ValueError(f"optimized step schedule: unknown method {method!r}; allowed: {sorted(METHODS)}")
    if SOLVERS[solver].declared.draws_noise(solver_options or {}):
        raise ValueError(f"optimized step schedule: solver {solver!r} draws noise; allowed: a deterministic solver")
    if num_steps == 1:
        return torch.tensor([noise_schedule.sigma_max, 0.0], dtype=torch.float64)
    x = calibration.to(torch.float64) * noise_schedule.sigma_max
    dtype = calibration.dtype

    def model(x, sigma):
        return denoiser(x.to(dtype), sigma.to(dtype)).to(torch.float64)

    run = functools.partial(SOLVERS[solver], **(solver_options or {}))
    sigmas = METHODS[method](model, run, x, noise_schedule, num_steps, candidates, evaluations)
    if noise_schedule.timesteps is not None:
        sigmas = torch.cat([snap(sigmas[:-1], noise_schedule.discrete_sigmas), sigmas.new_zeros(1)])
    return sigmas


FITTED_SCHEDULES = {"optimized": optimized_step_schedule}  # the fitted entries of `models.axes.STEP_SCHEDULE_ENTRIES`

"""Sample a trained model with one (solver, step schedule, NFE budget) cell, from initial noise that
every cell shares so that comparisons are paired."""

import copy
import time

import torch

from models.discretizations import grid_for_budget
from models.solvers import SOLVERS


def initial_noise(count, sample_shape, seed):
    """The unit-variance noise every cell starts from (scaled by its own sigma_max)."""
    return torch.randn(count, *sample_shape, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def sample(model, solver, step_schedule, budget, noise, *, seed, batch_size, device="cpu", solver_options=None, schedule_options=None):
    """Samples [N, ...] of one cell, the NFE actually spent, and the sampling seconds.

    Noise for stochastic solvers comes from a generator seeded with `seed`, batch after batch.
    """
    schedule = copy.deepcopy(model.schedule).cpu()  # grids are computed on the CPU, in float64
    sigmas, nfe = grid_for_budget(SOLVERS[solver], budget, step_schedule, schedule, **(schedule_options or {}))
    generator = torch.Generator(device=device).manual_seed(seed)
    start, batches = time.perf_counter(), []
    for chunk in noise.split(batch_size):
        x = chunk.to(device) * sigmas[0].item()
        batches.append(SOLVERS[solver](model, x, sigmas, generator=generator, **(solver_options or {})).cpu())
    return torch.cat(batches), nfe, time.perf_counter() - start


"""Sample a trained model with one (solver, step schedule, NFE budget) cell, from initial noise that
every cell shares so that comparisons are paired."""

import copy
import time

import numpy as np
import torch

from models.discretizations import grid_for_budget
from models.solvers import SOLVERS


def initial_noise(count, sample_shape, seed):
    """The unit-variance noise every cell starts from (scaled by its own sigma_max)."""
    return torch.randn(count, *sample_shape, generator=torch.Generator().manual_seed(seed))


def batch_generator(seed, index, device):
    """The generator of batch `index`'s solver noise: an independent stream per (seed, batch), so
    that a shard of batches draws what the same batches draw in one pass."""
    return torch.Generator(device=device).manual_seed(int(np.random.SeedSequence([seed, index]).generate_state(1)[0]))


@torch.no_grad()
def sample(model, solver, step_schedule, budget, noise, *, seed, batch_size, first_batch=0, device="cpu", solver_options=None,
           schedule_options=None):
    """Samples [N, ...] of one cell, the NFE actually spent, and the sampling seconds. `noise` is
    cut into batches numbered from `first_batch`; stochastic solvers draw from `batch_generator`."""
    schedule = copy.deepcopy(model.schedule).cpu()  # grids are computed on the CPU, in float64
    sigmas, nfe = grid_for_budget(SOLVERS[solver], budget, step_schedule, schedule, **(schedule_options or {}))
    start, batches = time.perf_counter(), []
    for index, chunk in enumerate(noise.split(batch_size), start=first_batch):
        x = chunk.to(device) * sigmas[0].item()
        generator = batch_generator(seed, index, device)
        batches.append(SOLVERS[solver](model, x, sigmas, generator=generator, **(solver_options or {})).cpu())
    return torch.cat(batches), nfe, time.perf_counter() - start


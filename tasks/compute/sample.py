"""Sample a trained model with one (solver, step schedule, NFE budget) cell, from initial noise that
every cell shares so that comparisons are paired; the random streams of an evaluation."""

import copy
import time

import numpy as np
import torch

from models.clipping import Clipped
from models.solvers import SOLVERS
from models.step_schedules import sigmas_for_budget

STREAMS = ("initial noise", "solver noise", "bootstrap", "calibration")  # the random streams of an evaluation


def stream_seed(seed, stream):
    """The seed of one of an evaluation's random `STREAMS`, spawned from `seed` by NumPy's SeedSequence
    (a spawn key per stream), so that no two streams draw the same numbers."""
    return int(np.random.SeedSequence(seed, spawn_key=(STREAMS.index(stream),)).generate_state(1, np.uint64)[0])


def stream_noise(count, sample_shape, seed, stream):
    """Unit-variance noise [count, *sample_shape] from the random `stream` of `seed`: the "initial
    noise" every cell starts from (scaled by its own sigma_max), or the "calibration" noise a fitted
    step schedule is fitted on (`models.optimized_schedules`), which no cell starts from."""
    return torch.randn(count, *sample_shape, generator=torch.Generator().manual_seed(stream_seed(seed, stream)))


def sample_generators(seed, first, count):
    """The generators of the solver noise of samples first .. first + count - 1: a CPU stream per
    sample, seeded by its own word of the seed's SeedSequence, so that a sample draws the same noise
    whatever its batch, shard or device."""
    seeds = np.random.SeedSequence(seed).generate_state(first + count, dtype=np.uint64)[first:]
    return [torch.Generator().manual_seed(int(s)) for s in seeds]


def cpu_noise_schedule(model):
    """A copy of the model's noise schedule on the CPU (a learned one is a module: moving the model's
    own would take it off the model's device)."""
    return copy.deepcopy(model.noise_schedule).cpu()


def sigmas_for(model, solver, step_schedule, budget, **options):
    """(sigmas, NFE spent) of the finest grid of `step_schedule` with its `options` that `solver`
    affords in `budget`, on the model's noise schedule (on the CPU, in float64)."""
    return sigmas_for_budget(SOLVERS[solver], budget, step_schedule, cpu_noise_schedule(model), **options)


@torch.no_grad()
def sample(
    model,
    solver,
    sigmas,
    noise,
    *,
    seed,
    batch_size,
    first=0,
    device="cpu",
    solver_options=None,
    clipping="none",
    clipping_options=None,
):
    """Samples [N, ...] of one cell on the grid `sigmas`, the NFE spent, and the sampling seconds.
    `noise` holds the initial noise of samples first .. first + N - 1, sampled in batches of
    `batch_size`; stochastic solvers draw from `sample_generators`; the denoiser's outputs go through
    `clipping` (`models.clipping`)."""
    denoiser = Clipped(model, clipping, **(clipping_options or {}))
    start, batches = time.perf_counter(), []
    for offset, chunk in zip(range(first, first + len(noise), batch_size), noise.split(batch_size)):
        x = chunk.to(device) * sigmas[0].item()
        generators = sample_generators(seed, offset, len(chunk))
        batches.append(SOLVERS[solver](denoiser, x, sigmas, generator=generators, **(solver_options or {})).cpu())
    return torch.cat(batches), SOLVERS[solver].nfe(len(sigmas) - 1), time.perf_counter() - start

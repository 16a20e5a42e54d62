"""What noise levels training sees: the density of log sigma that a configuration's objective draws
from its trained model's noise schedule (a learned schedule's as trained), beside the range of sigma
that sampling covers."""

import math

import torch

from .sample import cpu_noise_schedule
from .train import objective_of

DRAWS = 200_000
LOG_SIGMA_RANGE = (math.log(1e-3), math.log(300.0))  # the histogram's range: every schedule's sigma range inside it
BINS = 120


@torch.no_grad()
def training_noise_levels(model, config, seed=0):
    """{edges, density, sigma_min, sigma_max}: the histogram (density per unit of log sigma, `BINS`
    bins over `LOG_SIGMA_RANGE`) of log sigma over `DRAWS` noise levels drawn by `config`'s noise
    sampling from `model`'s noise schedule, and the schedule's sigma range (where sampling starts and ends)."""
    schedule = cpu_noise_schedule(model).double()
    t = objective_of(config).draw_times(DRAWS, schedule, torch.Generator().manual_seed(seed))
    log_sigma = schedule.edm_sigma(t).log().float()
    density = torch.histogram(log_sigma, bins=BINS, range=LOG_SIGMA_RANGE, density=True)
    return dict(edges=density.bin_edges.tolist(), density=density.hist.tolist(), sigma_min=schedule.sigma_min, sigma_max=schedule.sigma_max)

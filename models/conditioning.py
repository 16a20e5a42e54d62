"""Time conditioning: the scalar the network is told about the noise level, from EDM sigma.

Chosen independently of the parameterization. Each entry maps (sigma, noise_schedule) to a [B] tensor.
"""

import torch


def index(sigma, noise_schedule):
    """The discrete timestep index t - 1 in 0..T-1 of DDPM (Ho et al. 2020); fractional between timesteps."""
    if noise_schedule.timesteps is None:
        raise ValueError(f"time conditioning 'index' needs a discrete schedule (ddpm), got {type(noise_schedule).__name__}")
    return noise_schedule.time(sigma) - 1


def time(sigma, noise_schedule):
    """Continuous time t scaled to [0, 1000] as in Song et al. 2021 (t * 999 for DDPM++)."""
    return 1000 * noise_schedule.time(sigma) / noise_schedule.t_max


def c_noise(sigma, noise_schedule):
    """EDM's c_noise(sigma) = log(sigma)/4 (Karras et al. 2022, Table 1)."""
    return torch.log(sigma) / 4


CONDITIONINGS = {"index": index, "time": time, "c_noise": c_noise}

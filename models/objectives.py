"""Training objectives: how noise levels are drawn and how the loss is weighted.

Noise sampling draws the model's time t (each entry `f(n, schedule, generator, **options)`).
Weighting is a weight w(sigma) on the x0-space loss |D(x; sigma) - x0|^2; every
(parameterization, weighting) pair is the same x0-space loss times this effective weight
(Kingma & Gao 2023). Each entry is `w(s, c_out, sigma_data, **options)`.
"""

import torch


def _ends(schedule):
    return torch.tensor([schedule.t_min, schedule.t_max], dtype=torch.float64)


def uniform_discrete(n, schedule, generator):
    """t uniform on the timesteps 1..T (Ho et al. 2020)."""
    if schedule.timesteps is None:
        raise ValueError(f"noise sampling 'uniform_discrete' needs a discrete schedule (ddpm), got {type(schedule).__name__}")
    return torch.randint(1, schedule.timesteps + 1, (n,), generator=generator).to(torch.float64)


def uniform(n, schedule, generator):
    """t uniform on [t_min, t_max] (Song et al. 2021; Kingma et al. 2021)."""
    low, high = _ends(schedule)
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def log_normal(n, schedule, generator, *, p_mean=-1.2, p_std=1.2):
    """log(sigma) ~ N(P_mean, P_std^2) (Karras et al. 2022, Sec. 5), kept inside the schedule's range."""
    sigma = torch.exp(p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64))
    return schedule.time(sigma.clamp(schedule.sigma_min, schedule.sigma_max)).detach()


def logit_normal(n, schedule, generator, *, m=0.0, s=1.0):
    """t = sigmoid(m + s n) on [t_min, t_max] (Esser et al. 2024, Sec. 3.1)."""
    low, high = _ends(schedule)
    return low + (high - low) * torch.sigmoid(m + s * torch.randn(n, generator=generator, dtype=torch.float64))


NOISE_SAMPLING = {"uniform_discrete": uniform_discrete, "uniform": uniform, "log_normal": log_normal, "logit_normal": logit_normal}


def simple(s, c_out, sigma_data):
    """Uniform in the parameterization's own target: |F - target|^2 = |D - x0|^2 / c_out^2 (Ho et al. 2020)."""
    return 1 / c_out**2


def snr(s, c_out, sigma_data):
    """SNR = 1/sigma^2: the x0 loss weighted like the eps loss."""
    return 1 / s**2


def min_snr(s, c_out, sigma_data, *, gamma=5.0):
    """min(SNR, gamma) (Hang et al. 2023)."""
    return torch.clamp(1 / s**2, max=gamma)


def edm(s, c_out, sigma_data):
    """lambda(sigma) = (sigma^2 + sigma_data^2)/(sigma sigma_data)^2 (Karras et al. 2022, Table 1)."""
    return (s**2 + sigma_data**2) / (s * sigma_data) ** 2


def snr_plus_one(s, c_out, sigma_data):
    """SNR + 1: the v-prediction loss in x0-space (Salimans & Ho 2022)."""
    return 1 / s**2 + 1


def truncated_snr(s, c_out, sigma_data):
    """max(SNR, 1) (Salimans & Ho 2022)."""
    return torch.clamp(1 / s**2, min=1.0)


WEIGHTINGS = {"simple": simple, "snr": snr, "min_snr": min_snr, "edm": edm, "snr_plus_one": snr_plus_one, "truncated_snr": truncated_snr}

"""Training objectives: how noise levels are drawn, how the loss is weighted, and the loss itself.

Noise sampling draws the model's time t (each entry `f(n, noise_schedule, generator, **options)`):
the distribution of noise levels its paper defines, whatever the schedule (log-normal and
logit-normal are distributions of log sigma; uniform is uniform in a schedule's own time, refused
where no paper trains so).
Weighting is a weight w(sigma) on the x0-space loss |D(x; sigma) - x0|^2; every
(parameterization, weighting) pair is the same x0-space loss times this effective weight
(Kingma & Gao 2023). Each entry is `w(s, c_out, sigma_data, **options)`. `Objective` is a
configuration's loss: a noise level drawn, a noisy sample made, the weighted regression on the
parameterization's target.
"""

import torch

from .broadcast import per_sample
from .parameterizations import target
from .tables import choose


def _ends(noise_schedule):
    return torch.tensor([noise_schedule.t_min, noise_schedule.t_max], dtype=torch.float64)


def _in_range(sigma, noise_schedule):
    """The schedule's time t of EDM sigmas, each clamped into the schedule's range of sigma."""
    return noise_schedule.time(sigma.clamp(noise_schedule.sigma_min, noise_schedule.sigma_max)).detach()


def uniform_discrete(n, noise_schedule, generator):
    """t uniform on the timesteps 1..T (Ho et al. 2020)."""
    if noise_schedule.timesteps is None:
        raise ValueError(f"noise sampling 'uniform_discrete' needs a discrete schedule (ddpm), got {type(noise_schedule).__name__}")
    return torch.randint(1, noise_schedule.timesteps + 1, (n,), generator=generator).to(torch.float64)


def uniform(n, noise_schedule, generator):
    """t uniform on [t_min, t_max] in the schedule's own time (Song et al. 2021; Nichol & Dhariwal 2021;
    Kingma et al. 2021; Lipman et al. 2023): a recipe only where the schedule's paper trains so; in
    EDM's schedule t is sigma, and sigma uniform on [0.002, 80] is no paper's recipe (refused)."""
    if not noise_schedule.uniform_time:
        raise ValueError(
            f"noise sampling 'uniform' draws t uniformly in the schedule's own time, no paper's recipe on {type(noise_schedule).__name__}, "
            "whose time is sigma"
        )
    low, high = _ends(noise_schedule)
    return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)


def log_normal(n, noise_schedule, generator, *, p_mean=-1.2, p_std=1.2):
    """log(sigma) ~ N(P_mean, P_std^2) (Karras et al. 2022, Sec. 5), kept inside the noise schedule's range."""
    return _in_range(torch.exp(p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64)), noise_schedule)


def logit_normal(n, noise_schedule, generator, *, m=0.0, s=1.0):
    """Rectified flow's time t = sigmoid(m + s n) (Esser et al. 2024, Sec. 3.1, eq. 19): since its sigma
    is t / (1 - t), log(sigma) = logit(t) ~ N(m, s^2), drawn so on every schedule (median sigma e^m),
    kept inside the noise schedule's range."""
    return _in_range(torch.exp(m + s * torch.randn(n, generator=generator, dtype=torch.float64)), noise_schedule)


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


class Objective:
    """loss(model, x0, generator) -> per-sample loss [B] and its effective x0-space weight [B].

    loss = w(sigma) |D(x; sigma) - x0|^2 = w(sigma) c_out^2 |F - target|^2, averaged over
    dimensions, times the noise schedule's importance weight (1 unless it is learned).
    """

    def __init__(self, noise_sampling="log_normal", weighting="edm", sampling_options=None, weighting_options=None):
        self.noise_sampling, self.weighting = noise_sampling, weighting
        self._sample = choose(NOISE_SAMPLING, "noise sampling", noise_sampling)
        self._weight = choose(WEIGHTINGS, "loss weighting", weighting)
        self.sampling_options, self.weighting_options = sampling_options or {}, weighting_options or {}

    def weight(self, model, s):
        """The effective weight on the x0-space loss at EDM sigma s."""
        _, c_out, _ = model.coefficients(s)
        return self._weight(s, c_out, model.sigma_data, **self.weighting_options)

    def draw_times(self, n, noise_schedule, generator=None):
        """The model's times t of `n` noise levels, drawn as the noise sampling defines."""
        return self._sample(n, noise_schedule, generator, **self.sampling_options)

    def __call__(self, model, x0, generator=None):
        t = self.draw_times(x0.shape[0], model.noise_schedule, generator).to(x0.device)
        sigma = model.noise_schedule.edm_sigma(t.to(x0.dtype)).to(x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device if generator else x0.device).to(
            x0.device
        )
        x = x0 + per_sample(sigma, x0) * noise
        F, (c_skip, c_out), s = model.output(x, sigma)
        w = self._weight(s, c_out, model.sigma_data, **self.weighting_options)
        loss = (w * c_out**2 * (F - target(x0, x, c_skip, c_out)) ** 2).flatten(1).mean(1)
        return loss * model.noise_schedule.importance(t.to(x0.dtype)).to(x0.dtype), w.flatten()

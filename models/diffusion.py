"""One training configuration as a model: network x schedule x parameterization x conditioning.

`DiffusionModel(x, sigma)` is the denoiser D(x; sigma) of the solver contract, whatever the
configuration, and `Objective` is its training loss.
"""

import torch
from torch import nn

from .conditioning import CONDITIONINGS
from .objectives import NOISE_SAMPLING, WEIGHTINGS
from .parameterizations import PARAMETERIZATIONS
from .tables import choose


def per_sample(sigma, x):
    """sigma of shape [B] broadcast over x's trailing dimensions."""
    return sigma.reshape(-1, *([1] * (x.dim() - 1))).to(x.dtype)


class DiffusionModel(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c) in EDM's sigma-space (Karras et al. 2022, eq. 7)."""

    def __init__(self, network, schedule, parameterization="edm", conditioning="c_noise", sigma_data=0.5):
        super().__init__()
        self.network, self.schedule, self.sigma_data = network, schedule, sigma_data
        self.parameterization, self.conditioning = parameterization, conditioning
        self._coefficients = choose(PARAMETERIZATIONS, "parameterization", parameterization)
        self._condition = choose(CONDITIONINGS, "time conditioning", conditioning)
        self._condition(torch.tensor([schedule.sigma_max], dtype=torch.float64), schedule)  # refuse now, not mid-training

    def coefficients(self, s):
        """(c_skip, c_out, c_in) at EDM sigma s (any shape)."""
        return self._coefficients(s, self.schedule.scale(s), self.sigma_data)

    def output(self, x, sigma):
        """The network output F, its coefficients and the broadcast sigma."""
        s = per_sample(sigma, x)
        c_skip, c_out, c_in = self.coefficients(s)
        F = self.network(c_in * x, self._condition(sigma, self.schedule).to(x.dtype))
        return F, (c_skip, c_out), s

    def forward(self, x, sigma):
        F, (c_skip, c_out), _ = self.output(x, sigma)
        return c_skip * x + c_out * F


class Objective:
    """loss(model, x0, generator) -> per-sample loss [B] and its effective x0-space weight [B].

    loss = w(sigma) |D(x; sigma) - x0|^2 = w(sigma) c_out^2 |F - target|^2, averaged over
    dimensions, times the schedule's importance weight (1 unless the schedule is learned).
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

    def __call__(self, model, x0, generator=None):
        t = self._sample(x0.shape[0], model.schedule, generator, **self.sampling_options).to(x0.device)
        sigma = model.schedule.edm_sigma(t.to(x0.dtype)).to(x0.dtype)
        noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=generator.device if generator else x0.device).to(x0.device)
        x = x0 + per_sample(sigma, x0) * noise
        F, (c_skip, c_out), s = model.output(x, sigma)
        target = (x0 - c_skip * x) / c_out
        w = self._weight(s, c_out, model.sigma_data, **self.weighting_options)
        loss = (w * c_out**2 * (F - target) ** 2).flatten(1).mean(1)
        return loss * model.schedule.importance(t.to(x0.dtype)).to(x0.dtype), w.flatten()

"""One training configuration as a model: network x noise schedule x parameterization x conditioning.

`DiffusionModel(x, sigma)` is the denoiser D(x; sigma) of the solver contract, whatever the
configuration; `models.objectives.Objective` is its training loss.
"""

import torch
from torch import nn

from .broadcast import per_sample
from .conditioning import CONDITIONINGS
from .parameterizations import PARAMETERIZATIONS
from .tables import choose


class DiffusionModel(nn.Module):
    """D(x; sigma) = c_skip x + c_out F(c_in x; c) in EDM's sigma-space (Karras et al. 2022, eq. 7)."""

    def __init__(self, network, noise_schedule, parameterization="edm", conditioning="c_noise", sigma_data=0.5):
        super().__init__()
        self.network, self.noise_schedule, self.sigma_data = network, noise_schedule, sigma_data
        self.parameterization, self.conditioning = parameterization, conditioning
        self._coefficients = choose(PARAMETERIZATIONS, "parameterization", parameterization)
        self._condition = choose(CONDITIONINGS, "time conditioning", conditioning)
        self._condition(torch.tensor([noise_schedule.sigma_max], dtype=torch.float64), noise_schedule)  # refuse now, not mid-training

    def coefficients(self, s):
        """(c_skip, c_out, c_in) at EDM sigma s (any shape)."""
        return self._coefficients(s, self.noise_schedule.scale(s), self.sigma_data)

    def output(self, x, sigma):
        """The network output F, its coefficients and the broadcast sigma."""
        s = per_sample(sigma, x)
        c_skip, c_out, c_in = self.coefficients(s)
        F = self.network(c_in * x, self._condition(sigma, self.noise_schedule).to(x.dtype))
        return F, (c_skip, c_out), s

    def forward(self, x, sigma):
        F, (c_skip, c_out), _ = self.output(x, sigma)
        return c_skip * x + c_out * F

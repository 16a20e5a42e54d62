"""A Gaussian mixture whose denoiser E[x0 | x; sigma] is exact: the oracle model of the study.

p(x0) = sum_k w_k N(x0; mu_k, s_k^2 I). Noised in EDM's sigma-space, x = x0 + sigma n has
p(x; sigma) = sum_k w_k N(x; mu_k, (s_k^2 + sigma^2) I), and Tweedie's formula gives
E[x0 | x] = sum_k r_k(x) (mu_k + s_k^2 / (s_k^2 + sigma^2) (x - mu_k)) with responsibilities r_k.
"""

import math

import numpy as np
import torch


class GaussianMixture:
    """Isotropic Gaussian mixture in `dim` dimensions; samples may have any shape with numel = dim."""

    def __init__(self, means, stds, weights):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.stds = torch.as_tensor(stds, dtype=torch.float64)
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        self.dim = self.means.shape[1]

    @classmethod
    def ring(cls, components=8, radius=1.0, std=0.15, dim=2):
        """`components` modes on a circle in the first two coordinates, with unequal weights."""
        angles = torch.arange(components, dtype=torch.float64) * 2 * math.pi / components
        means = torch.zeros(components, dim, dtype=torch.float64)
        means[:, 0], means[:, 1] = radius * torch.cos(angles), radius * torch.sin(angles)
        return cls(means, torch.full((components,), std), torch.arange(1, components + 1, dtype=torch.float64))

    def sample_with_components(self, n, generator=None, dtype=torch.float32):
        """n points [n, dim] and their components [n]: each draws its component by weight, then its offset."""
        components = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        noise = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        return (self.means[components] + self.stds[components, None] * noise).to(dtype), components

    def sample(self, n, generator=None, dtype=torch.float32):
        return self.sample_with_components(n, generator, dtype)[0]

    def denoiser(self, x, sigma):
        """E[x0 | x; sigma] for x of shape [B, ...] and sigma of shape [B] (the solver contract)."""
        flat = x.reshape(x.shape[0], -1).to(torch.float64)
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1, 1)
        means, stds, weights = (v.to(x.device) for v in (self.means, self.stds, self.weights))
        variances = stds**2 + sigma**2  # [B, K]
        squared = ((flat[:, None, :] - means[None]) ** 2).sum(-1)  # [B, K]
        log_r = torch.log(weights) - 0.5 * squared / variances - 0.5 * self.dim * torch.log(variances)
        r = torch.softmax(log_r, dim=1)
        shrink = stds**2 / variances  # [B, K]
        posterior_means = means[None] + shrink[..., None] * (flat[:, None, :] - means[None])
        return (r[..., None] * posterior_means).sum(1).reshape(x.shape).to(x.dtype)

    def flow(self, x, sigma_from, sigma_to, rtol=1e-12, atol=1e-12):
        """Reference solution of the probability-flow ODE dx/dsigma = (x - D)/sigma from sigma_from
        to sigma_to > 0, by DOP853 in u = log(sigma) (Hairer et al.), float64."""
        from scipy.integrate import solve_ivp  # imported here: every stage imports this module, few solve the ODE

        shape = x.shape

        def rhs(u, y):
            state = torch.from_numpy(y).reshape(shape)
            sigma = torch.full((shape[0],), math.exp(u), dtype=torch.float64)
            return (state - self.denoiser(state, sigma)).numpy().ravel()

        y0 = x.detach().to(torch.float64).cpu().numpy().ravel()
        solution = solve_ivp(rhs, (math.log(sigma_from), math.log(sigma_to)), y0, method="DOP853", rtol=rtol, atol=atol)
        if not solution.success:
            raise RuntimeError(f"reference ODE solve failed: {solution.message}")
        return torch.from_numpy(np.ascontiguousarray(solution.y[:, -1])).reshape(shape)

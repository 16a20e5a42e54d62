"""Ancestral samplers: DDPM and DDIM, written in sigma-space where x = x0 + sigma n.

A VP model's x_t is x / sqrt(1 + sigma^2), so abar = 1 / (1 + sigma^2) and every VP formula below
is the paper's formula divided by sqrt(abar_{t-1}).
"""

import math

from .contract import noise_like, steps


def ddpm(denoise, x, sigmas, *, generator=None, variance="large"):
    """Ancestral sampling of Ho et al. 2020, Alg. 2: x_{t-1} = mu_tilde(x_t, x0_hat) + sigma_t z.

    mu_tilde is the posterior mean (eq. 7); variance "large" is sigma_t^2 = beta_t (the forward
    step's variance, 1 - abar_t / abar_{t-1} between grid points), "small" is beta_tilde_t (the
    posterior's). No noise is added on the step into sigma = 0.
    """
    for sigma, sigma_next in steps(sigmas):
        x0 = denoise(x, sigma)
        x = x0 + (sigma_next / sigma) ** 2 * (x - x0)  # posterior mean
        if sigma_next > 0:
            if variance == "small":
                std = sigma_next * math.sqrt(1 - (sigma_next / sigma) ** 2)
            else:
                std = math.sqrt((sigma**2 - sigma_next**2) * (1 + sigma_next**2) / (1 + sigma**2))
            x = x + std * noise_like(x, generator)
    return x


def ddim(denoise, x, sigmas, *, generator=None, eta=0.0):
    """DDIM (Song et al. 2021, eq. 12; the lecture's Algorithm 1 for eta = 0).

    sigma_up is DDIM's sigma_t(eta) in sigma-space; eta = 1 on consecutive DDPM steps is DDPM with
    the posterior variance. Also k-diffusion's Euler ancestral, which is the same update.
    """
    for sigma, sigma_next in steps(sigmas):
        x0 = denoise(x, sigma)  # predicted x0
        eps = (x - x0) / sigma  # predicted noise
        sigma_up = eta * sigma_next * math.sqrt(1 - (sigma_next / sigma) ** 2)
        sigma_down = math.sqrt(sigma_next**2 - sigma_up**2)
        x = x0 + sigma_down * eps  # direction pointing to x_t
        if sigma_up > 0:
            x = x + sigma_up * noise_like(x, generator)  # random noise
    return x

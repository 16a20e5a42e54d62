"""Classic one-step ODE solvers of dx/dsigma = (x - D)/sigma: Euler, midpoint, and EDM's Heun."""

import math

from .contract import derivative, noise_like, steps


def euler(denoise, x, sigmas, *, generator=None):
    """Euler's method (the lecture's 'classic ODE solver 1'; Karras et al. 2022, Alg. 1 without line 7)."""
    for sigma, sigma_next in steps(sigmas):
        x = x + (sigma_next - sigma) * derivative(denoise, x, sigma)
    return x


def midpoint(denoise, x, sigmas, *, generator=None):
    """Explicit midpoint rule, a 2nd-order Runge-Kutta method with the midpoint at (sigma + sigma_next)/2."""
    for sigma, sigma_next in steps(sigmas):
        sigma_mid = (sigma + sigma_next) / 2
        x_mid = x + (sigma_mid - sigma) * derivative(denoise, x, sigma)
        x = x + (sigma_next - sigma) * derivative(denoise, x_mid, sigma_mid)
    return x


def heun(denoise, x, sigmas, *, generator=None, s_churn=0.0, s_tmin=0.0, s_tmax=math.inf, s_noise=1.0):
    """Heun's 2nd-order method with EDM's stochastic churn (Karras et al. 2022, Alg. 2).

    Euler on the step into sigma = 0, where the derivative is undefined.
    """
    num_steps = len(sigmas) - 1
    for sigma, sigma_next in steps(sigmas):
        # Increase noise temporarily.
        gamma = min(s_churn / num_steps, math.sqrt(2) - 1) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (1 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat**2 - sigma**2) * s_noise * noise_like(x, generator)
        # Euler step.
        d = derivative(denoise, x, sigma_hat)
        x_next = x + (sigma_next - sigma_hat) * d
        # Apply 2nd order correction.
        if sigma_next > 0:
            d_next = derivative(denoise, x_next, sigma_next)
            x_next = x + (sigma_next - sigma_hat) * (d + d_next) / 2
        x = x_next
    return x

"""DPM-Solver (Lu et al. 2022) and DPM-Solver++(2M) (Lu et al. 2022b) in sigma-space.

In sigma-space alpha = 1 and sigma is EDM's sigma, so lambda = -log(sigma) and a step has
h = lambda_next - lambda = log(sigma / sigma_next). The step into sigma = 0 has h = +inf: there
every exponential integrator reduces to its first-order form, x = D(x; sigma), one call.
"""

import math

from .contract import steps


def noise_prediction(denoise, x, sigma):
    """eps_theta(x; sigma) = (x - D(x; sigma)) / sigma."""
    return (x - denoise(x, sigma)) / sigma


def phi(h):
    """(e^h - 1)/h - 1, the second-order coefficient of DPM-Solver."""
    return math.expm1(h) / h - 1


def dpm_solver_1(denoise, x, sigmas, *, generator=None):
    """DPM-Solver-1 (Lu et al. 2022, eq. 3.7): x_n = (alpha_n/alpha) x - sigma_n (e^h - 1) eps."""
    for sigma, sigma_next in steps(sigmas):
        eps = noise_prediction(denoise, x, sigma)
        x = x - sigma_next * math.expm1(math.log(sigma / sigma_next)) * eps if sigma_next > 0 else x - sigma * eps
    return x


def dpm_solver_2(denoise, x, sigmas, *, generator=None):
    """DPM-Solver-2 (Lu et al. 2022, Alg. 1, r1 = 1/2); the intermediate point is at lambda + h/2."""
    for sigma, sigma_next in steps(sigmas):
        eps = noise_prediction(denoise, x, sigma)
        if sigma_next == 0:
            x = x - sigma * eps
            continue
        h = math.log(sigma / sigma_next)
        sigma_s = sigma * math.exp(-h / 2)
        u = x - sigma_s * math.expm1(h / 2) * eps
        x = x - sigma_next * math.expm1(h) * noise_prediction(denoise, u, sigma_s)
    return x


def dpm_solver_3(denoise, x, sigmas, *, generator=None, r1=1 / 3, r2=2 / 3):
    """DPM-Solver-3 (Lu et al. 2022, Alg. 2); intermediate points at lambda + r1 h and lambda + r2 h."""
    for sigma, sigma_next in steps(sigmas):
        eps = noise_prediction(denoise, x, sigma)
        if sigma_next == 0:
            x = x - sigma * eps
            continue
        h = math.log(sigma / sigma_next)
        sigma_1, sigma_2 = sigma * math.exp(-r1 * h), sigma * math.exp(-r2 * h)
        u1 = x - sigma_1 * math.expm1(r1 * h) * eps
        d1 = noise_prediction(denoise, u1, sigma_1) - eps
        u2 = x - sigma_2 * math.expm1(r2 * h) * eps - sigma_2 * r2 / r1 * phi(r2 * h) * d1
        d2 = noise_prediction(denoise, u2, sigma_2) - eps
        x = x - sigma_next * math.expm1(h) * eps - sigma_next / r2 * phi(h) * d2
    return x


def dpmpp_2m(denoise, x, sigmas, *, generator=None):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2): multistep, data prediction.

    First order on the first step (no history) and on the step into sigma = 0.
    """
    x0_prev, h_prev = None, None
    for sigma, sigma_next in steps(sigmas):
        x0 = denoise(x, sigma)
        if sigma_next == 0:
            x = x0
            continue
        h = math.log(sigma / sigma_next)
        if x0_prev is None:
            d = x0
        else:
            r = h_prev / h
            d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
        x = (sigma_next / sigma) * x - math.expm1(-h) * d
        x0_prev, h_prev = x0, h
    return x

"""DPM-Solver (Lu et al. 2022) and DPM-Solver++(2M) (Lu et al. 2022b) in sigma-space.

In sigma-space alpha = 1 and sigma is EDM's sigma, so lambda = -log(sigma) and a step has
h = lambda_next - lambda = log(sigma / sigma_next); eps = (x - D(x; sigma)) / sigma is the ODE's
derivative (`contract.derivative`). The step into sigma = 0 has h = +inf: there every exponential
integrator reduces to its first-order form, `contract.to_zero`.
"""

import math

from .contract import derivative, steps, to_zero


def phi(h):
    """(e^h - 1)/h - 1, the second-order coefficient of DPM-Solver."""
    return math.expm1(h) / h - 1


def singlestep(denoise, x, sigmas, update):
    """The loop of DPM-Solver's single-step methods: eps at the start of each step, then
    `update(x, eps, sigma, sigma_next, h)` across it, the step into sigma = 0 first order."""
    for sigma, sigma_next in steps(sigmas):
        eps = derivative(denoise, x, sigma)
        x = update(x, eps, sigma, sigma_next, math.log(sigma / sigma_next)) if sigma_next > 0 else to_zero(x, sigma, eps)
    return x


def dpm_solver_1(denoise, x, sigmas, *, generator=None):
    """DPM-Solver-1 (Lu et al. 2022, eq. 3.7): x_n = (alpha_n/alpha) x - sigma_n (e^h - 1) eps."""

    def update(x, eps, sigma, sigma_next, h):
        return x - sigma_next * math.expm1(h) * eps

    return singlestep(denoise, x, sigmas, update)


def dpm_solver_2(denoise, x, sigmas, *, generator=None):
    """DPM-Solver-2 (Lu et al. 2022, Alg. 1, r1 = 1/2); the intermediate point is at lambda + h/2."""

    def update(x, eps, sigma, sigma_next, h):
        sigma_s = sigma * math.exp(-h / 2)
        u = x - sigma_s * math.expm1(h / 2) * eps
        return x - sigma_next * math.expm1(h) * derivative(denoise, u, sigma_s)

    return singlestep(denoise, x, sigmas, update)


def dpm_solver_3(denoise, x, sigmas, *, generator=None, r1=1 / 3, r2=2 / 3):
    """DPM-Solver-3 (Lu et al. 2022, Alg. 2); intermediate points at lambda + r1 h and lambda + r2 h."""

    def update(x, eps, sigma, sigma_next, h):
        sigma_1, sigma_2 = sigma * math.exp(-r1 * h), sigma * math.exp(-r2 * h)
        u1 = x - sigma_1 * math.expm1(r1 * h) * eps
        d1 = derivative(denoise, u1, sigma_1) - eps
        u2 = x - sigma_2 * math.expm1(r2 * h) * eps - sigma_2 * r2 / r1 * phi(r2 * h) * d1
        d2 = derivative(denoise, u2, sigma_2) - eps
        return x - sigma_next * math.expm1(h) * eps - sigma_next / r2 * phi(h) * d2

    return singlestep(denoise, x, sigmas, update)


def dpmpp_2m(denoise, x, sigmas, *, generator=None):
    """DPM-Solver++(2M) (Lu et al. 2022b, Alg. 2): multistep, data prediction.

    First order on the first step (no history) and on the step into sigma = 0.
    """
    x0_prev, h_prev = None, None
    for sigma, sigma_next in steps(sigmas):
        x0 = denoise(x, sigma)
        if sigma_next == 0:  # `to_zero` in data prediction: x = D(x; sigma)
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

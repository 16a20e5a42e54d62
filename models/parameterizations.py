"""Parameterizations: how the network output F becomes the denoiser D(x; sigma).

In EDM's form (Karras et al. 2022, eq. 7 and Table 1) every parameterization is
D(x; sigma) = c_skip x + c_out F(c_in x; c_noise), with x in sigma-space, and its regression
target is (x0 - c_skip x) / c_out (eq. 8). Each entry below is its three coefficients, from EDM
sigma `s`, the schedule's scaling `alpha` (x_t = alpha x) and `sigma_data`. The network of
eps/x0/v/flow sees the schedule's own x_t (c_in = alpha); EDM's sees unit-variance input.
"""

import torch


def eps(s, alpha, sigma_data):
    """Noise prediction (Ho et al. 2020): x0 = x - s F."""
    return torch.ones_like(s), -s, alpha


def x0(s, alpha, sigma_data):
    """Data prediction: x0 = F."""
    return torch.zeros_like(s), torch.ones_like(s), alpha


def v(s, alpha, sigma_data):
    """Velocity v = alpha_t eps - sigma_t x0 (Salimans & Ho 2022): x0 = (alpha_t x_t - sigma_t v)/(alpha_t^2 + sigma_t^2)."""
    return 1 / (1 + s**2), -s / (alpha * (1 + s**2)), alpha


def edm(s, alpha, sigma_data):
    """EDM preconditioning (Karras et al. 2022, Table 1)."""
    return sigma_data**2 / (s**2 + sigma_data**2), s * sigma_data / torch.sqrt(s**2 + sigma_data**2), 1 / torch.sqrt(s**2 + sigma_data**2)


def flow(s, alpha, sigma_data):
    """Flow-matching velocity u = x0 - eps (data minus noise; Lipman et al. 2023): x0 = (x_t + sigma_t u)/(alpha_t + sigma_t)."""
    return 1 / (1 + s), s / (1 + s), alpha


PARAMETERIZATIONS = {"eps": eps, "x0": x0, "v": v, "edm": edm, "flow": flow}


def target(x0_, x, c_skip, c_out):
    """The regression target of the network output F for data x0 seen as x (Karras et al. 2022, eq. 8):
    F = (x0 - c_skip x) / c_out, so that D = c_skip x + c_out F = x0."""
    return (x0_ - c_skip * x) / c_out

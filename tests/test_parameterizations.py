"""Parameterizations (`models.parameterizations`): D = c_skip x + c_out F recovers x0 from the
target, the targets are the papers' eps, x0, v, flow velocity and EDM's F, and EDM's target has
unit variance."""

import math

import pytest
import torch

from models.noise_schedules import NOISE_SCHEDULES
from models.parameterizations import PARAMETERIZATIONS, target
from tests.conftest import noise_schedule

CLOSE = {"rtol": 1e-10, "atol": 1e-10}
SIGMA_DATA = [0.5, 1.0]


def draws(seed=0, n=512, dim=3):
    """x0, noise [n, dim] and EDM sigma s [n, 1] log-uniform in [0.002, 80], float64."""
    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    noise = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    u = torch.rand(n, 1, generator=generator, dtype=torch.float64)
    s = torch.exp(math.log(0.002) + u * (math.log(80.0) - math.log(0.002)))
    return x0, noise, s


def edm_table_1(s, sigma_data):
    """Karras et al. 2022, Table 1: (c_skip, c_out, c_in)."""
    total = s**2 + sigma_data**2
    return sigma_data**2 / total, s * sigma_data / torch.sqrt(total), 1 / torch.sqrt(total)


def textbook_target(name, x0, noise, s, alpha, sigma_data):
    """eps; x0; v = alpha_t eps - sigma_t x0 with sigma_t = alpha s (Salimans & Ho 2022); flow u = x0 - eps;
    EDM's F = (x0 - c_skip x)/c_out (Karras et al. 2022, eq. 8)."""
    if name == "eps":
        return noise
    if name == "x0":
        return x0
    if name == "v":
        return alpha * noise - (alpha * s) * x0
    if name == "flow":
        return x0 - noise
    c_skip, c_out, _ = edm_table_1(s, sigma_data)
    return (x0 - c_skip * (x0 + s * noise)) / c_out


def test_every_parameterization_is_covered():
    assert set(PARAMETERIZATIONS) == {"eps", "x0", "v", "edm", "flow"}


@pytest.mark.parametrize("sigma_data", SIGMA_DATA)
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("name", list(PARAMETERIZATIONS))
def test_denoiser_of_target_is_x0(name, schedule_name, sigma_data):
    x0, noise, s = draws()
    alpha = noise_schedule(schedule_name).scale(s)
    x = x0 + s * noise
    c_skip, c_out, _ = PARAMETERIZATIONS[name](s, alpha, sigma_data)
    F = target(x0, x, c_skip, c_out)
    torch.testing.assert_close(c_skip * x + c_out * F, x0, **CLOSE)


@pytest.mark.parametrize("sigma_data", SIGMA_DATA)
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("name", list(PARAMETERIZATIONS))
def test_target_is_the_textbook_definition(name, schedule_name, sigma_data):
    x0, noise, s = draws(seed=1)
    alpha = noise_schedule(schedule_name).scale(s)
    expected = textbook_target(name, x0, noise, s, alpha, sigma_data)
    c_skip, c_out, _ = PARAMETERIZATIONS[name](s, alpha, sigma_data)
    torch.testing.assert_close(target(x0, x0 + s * noise, c_skip, c_out), expected, **CLOSE)


@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("name", ["eps", "x0", "v", "flow"])
def test_network_sees_the_schedules_x_t(name, schedule_name):
    """c_in = alpha: c_in x = alpha x0 + alpha s eps = alpha_t x0 + sigma_t eps."""
    _, _, s = draws()
    alpha = noise_schedule(schedule_name).scale(s)
    _, _, c_in = PARAMETERIZATIONS[name](s, alpha, 0.5)
    torch.testing.assert_close(c_in, alpha, rtol=1e-15, atol=0.0)


@pytest.mark.parametrize("sigma_data", SIGMA_DATA)
def test_edm_coefficients_are_table_1(sigma_data):
    _, _, s = draws()
    alpha = torch.ones_like(s)
    for got, expected in zip(PARAMETERIZATIONS["edm"](s, alpha, sigma_data), edm_table_1(s, sigma_data)):
        torch.testing.assert_close(got, expected, rtol=1e-14, atol=0.0)


@pytest.mark.parametrize("sigma_data", SIGMA_DATA)
@pytest.mark.parametrize("sigma", [0.002, 0.1, 0.5, 2.0, 80.0])
def test_edm_input_and_target_have_unit_variance(sigma, sigma_data):
    """Karras et al. 2022, App. B.6: for x0 ~ N(0, sigma_data^2), c_in x and the target have unit variance."""
    generator = torch.Generator().manual_seed(2)
    x0 = sigma_data * torch.randn(200_000, generator=generator, dtype=torch.float64)
    noise = torch.randn(200_000, generator=generator, dtype=torch.float64)
    s = torch.tensor(sigma, dtype=torch.float64)
    c_skip, c_out, c_in = PARAMETERIZATIONS["edm"](s, torch.ones_like(s), sigma_data)
    assert target(x0, x0 + s * noise, c_skip, c_out).var().item() == pytest.approx(1.0, rel=0.02)
    assert (c_in * (x0 + s * noise)).var().item() == pytest.approx(1.0, rel=0.02)

"""Training noise schedules (`models.noise_schedules`): the time <-> sigma maps and their inverses, the
scalings, each paper's closed form, and a learned VDM schedule that stays monotone while it trains."""

import math

import pytest
import torch

from models import axes
from models.diffusion import DiffusionModel
from models.gaussian_mixture import GaussianMixture
from models.networks import MLP
from models.noise_schedules import NOISE_SCHEDULES, LearnedVP
from models.objectives import Objective
from models.training import train_step
from tests.conftest import noise_schedule

ROUND_TRIP = {"rtol": 1e-9, "atol": 1e-12}
EXACT = {"rtol": 1e-12, "atol": 0.0}


def time_grid(schedule, n=10001):
    return torch.linspace(schedule.t_min, schedule.t_max, n, dtype=torch.float64)


def sigma_grid(schedule, n=1000):
    """n sigmas log-spaced over [sigma_min, sigma_max], both ends exact."""
    log_ends = math.log(schedule.sigma_min), math.log(schedule.sigma_max)
    sigmas = torch.exp(torch.linspace(*log_ends, n, dtype=torch.float64))
    sigmas[0], sigmas[-1] = schedule.sigma_min, schedule.sigma_max
    return sigmas


# --- 1. Every schedule: monotone, finite, invertible ----------------------------------------------


@pytest.mark.parametrize("name", list(NOISE_SCHEDULES))
def test_log_snr_strictly_decreasing(name):
    schedule = noise_schedule(name)
    with torch.no_grad():
        log_snr = schedule.log_snr(time_grid(schedule))
    assert torch.isfinite(log_snr).all()
    assert (log_snr[1:] < log_snr[:-1]).all()


@pytest.mark.parametrize("name", list(NOISE_SCHEDULES))
def test_edm_sigma_positive_and_finite_at_both_ends(name):
    schedule = noise_schedule(name)
    with torch.no_grad():
        ends = schedule.edm_sigma(torch.tensor([schedule.t_min, schedule.t_max], dtype=torch.float64))
    assert torch.isfinite(ends).all() and (ends > 0).all(), ends
    assert ends.tolist() == pytest.approx([schedule.sigma_min, schedule.sigma_max], rel=1e-15)


@pytest.mark.parametrize("name", list(NOISE_SCHEDULES))
def test_time_inverts_edm_sigma(name):
    schedule = noise_schedule(name)
    t = time_grid(schedule)
    with torch.no_grad():
        torch.testing.assert_close(schedule.time(schedule.edm_sigma(t)), t, **ROUND_TRIP)


@pytest.mark.parametrize("name", list(NOISE_SCHEDULES))
def test_edm_sigma_inverts_time(name):
    schedule = noise_schedule(name)
    sigmas = sigma_grid(schedule)
    with torch.no_grad():
        torch.testing.assert_close(schedule.edm_sigma(schedule.time(sigmas)), sigmas, **ROUND_TRIP)


@pytest.mark.parametrize("name", list(NOISE_SCHEDULES))
def test_time_inverts_log_snr(name):
    schedule = noise_schedule(name)
    t = time_grid(schedule)
    with torch.no_grad():
        torch.testing.assert_close(schedule.time(torch.exp(-schedule.log_snr(t))), t, **ROUND_TRIP)


@pytest.mark.parametrize("name", list(NOISE_SCHEDULES))
def test_scaling_and_sigma_over_alpha_is_edm_sigma(name):
    schedule = noise_schedule(name)
    t = time_grid(schedule, 1001)
    assert schedule.scaling == axes.NOISE_SCHEDULE_ENTRIES[name].scaling  # as declared
    with torch.no_grad():
        alpha, sigma, edm_sigma = schedule.alpha(t), schedule.sigma(t), schedule.edm_sigma(t)
        torch.testing.assert_close(sigma / alpha, edm_sigma, **EXACT)
        if schedule.scaling == "vp":
            torch.testing.assert_close(alpha**2 + sigma**2, torch.ones_like(t), **EXACT)


@pytest.mark.parametrize("name", [name for name in NOISE_SCHEDULES if name != "learned"])
def test_importance_is_one_for_a_fixed_schedule(name):
    schedule = noise_schedule(name)
    t = time_grid(schedule, 101)
    assert torch.equal(schedule.importance(t), torch.ones_like(t))


@pytest.mark.parametrize("name", [name for name in NOISE_SCHEDULES if name != "ddpm"])
def test_continuous_schedule_has_no_discrete_sigmas(name):
    schedule = noise_schedule(name)
    assert schedule.timesteps is None and schedule.discrete_sigmas is None


# --- 2. Each paper's closed form ------------------------------------------------------------------


def test_ddpm_alpha_bar_is_cumprod_of_one_minus_betas():
    """Ho et al. 2020: beta_t linear in 1e-4..0.02 over T = 1000, alpha_bar_t = prod_{s <= t} (1 - beta_s)."""
    schedule = NOISE_SCHEDULES["ddpm"]()
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, dim=0)
    t = torch.arange(1, 1001, dtype=torch.float64)
    torch.testing.assert_close(schedule.alpha(t) ** 2, alpha_bar, **EXACT)


def test_ddpm_discrete_sigmas_are_1000_increasing():
    schedule = NOISE_SCHEDULES["ddpm"]()
    sigmas = schedule.discrete_sigmas
    assert schedule.timesteps == 1000
    assert sigmas.shape == (1000,)
    assert (sigmas[1:] > sigmas[:-1]).all()
    torch.testing.assert_close(sigmas, schedule.edm_sigma(torch.arange(1, 1001, dtype=torch.float64)), **EXACT)


def test_vp_cosine_alpha_bar_is_nichol_dhariwal():
    """Nichol & Dhariwal 2021, eq. 17: alpha_bar(t) = f(t)/f(0), f(t) = cos((t + s)/(1 + s) pi/2)^2, s = 0.008."""
    schedule = NOISE_SCHEDULES["vp_cosine"]()
    t = time_grid(schedule, 1001)
    s = 0.008
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    f0 = math.cos(s / (1 + s) * math.pi / 2) ** 2
    torch.testing.assert_close(schedule.alpha(t) ** 2, f / f0, **EXACT)


def test_vp_cosine_default_range_ends_at_sigma_80():
    assert NOISE_SCHEDULES["vp_cosine"]().sigma_max == pytest.approx(80.0, rel=1e-12)


def test_vp_linear_alpha_bar_is_song_et_al():
    """Song et al. 2021, eq. 33: alpha_bar(t) = exp(-(beta_min t + (beta_max - beta_min) t^2 / 2))."""
    schedule = NOISE_SCHEDULES["vp_linear"]()
    t = time_grid(schedule, 1001)
    torch.testing.assert_close(schedule.alpha(t) ** 2, torch.exp(-(0.1 * t + 0.5 * (20 - 0.1) * t**2)), **EXACT)


def test_vp_linear_is_the_continuous_limit_of_ddpm():
    i = torch.arange(1, 1001, dtype=torch.float64)
    discrete = NOISE_SCHEDULES["ddpm"]().alpha(i) ** 2
    continuous = NOISE_SCHEDULES["vp_linear"]().alpha(i / 1000) ** 2
    assert (discrete - continuous).abs().max().item() < 1e-2


def test_flow_is_cond_ot():
    """x_t = (1 - t) x0 + t eps (Lipman et al. 2023): alpha = 1 - t, sigma = t."""
    schedule = NOISE_SCHEDULES["flow"]()
    t = time_grid(schedule, 1001)
    torch.testing.assert_close(schedule.alpha(t), 1 - t, **EXACT)
    torch.testing.assert_close(schedule.sigma(t), t, **EXACT)


def test_ve_has_unit_alpha_and_geometric_sigma():
    """Song et al. 2021: sigma(t) = sigma_min (sigma_max / sigma_min)^t with alpha = 1."""
    schedule = NOISE_SCHEDULES["ve"]()
    t = time_grid(schedule, 1001)
    assert torch.equal(schedule.alpha(t), torch.ones_like(t))
    torch.testing.assert_close(schedule.edm_sigma(t), 0.01 * (50.0 / 0.01) ** t, **EXACT)


def test_edm_sigma_is_t():
    schedule = NOISE_SCHEDULES["edm"]()
    t = time_grid(schedule, 1001)
    assert torch.equal(schedule.edm_sigma(t), t)
    assert torch.equal(schedule.alpha(t), torch.ones_like(t))
    assert (schedule.sigma_min, schedule.sigma_max) == (0.002, 80.0)


# --- 3. LearnedVP (Kingma et al. 2021) trained with the variance objective -----------------------


def finite_difference_importance(schedule, t, h=1e-6):
    """|d lambda/dt| / (lambda(0) - lambda(1)) by central differences, float64."""
    with torch.no_grad():
        slope = (schedule.log_snr(t - h) - schedule.log_snr(t + h)) / (2 * h)
        ends = schedule.log_snr(torch.tensor([0.0, 1.0], dtype=torch.float64))
    return slope / (ends[0] - ends[1])


def test_learned_importance_is_the_normalised_log_snr_slope():
    torch.manual_seed(0)
    schedule = LearnedVP(hidden=64).double()
    with torch.no_grad():
        for p in schedule.parameters():
            p.normal_(0, 2)  # a strongly curved shape, unlike the near-linear initial one
    t = torch.linspace(0.01, 0.99, 99, dtype=torch.float64)
    importance = schedule.importance(t).detach()
    torch.testing.assert_close(importance, finite_difference_importance(schedule, t), rtol=1e-6, atol=0.0)
    assert importance.max() / importance.min() > 1.3, "the test shape is not curved enough to tell"


def test_learned_schedule_trains_and_stays_monotone_with_fixed_ends():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    schedule = LearnedVP(hidden=64)
    model = DiffusionModel(MLP(2, hidden=32, depth=2), schedule, "eps", "c_noise")
    objective = Objective("uniform", "snr")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    data = GaussianMixture.ring().sample(256, generator)
    before = {name: p.detach().clone() for name, p in schedule.named_parameters()}
    t = torch.linspace(0, 1, 1001)
    with torch.no_grad():
        log_snr_before = schedule.log_snr(t)

    for _ in range(30):
        loss, _ = train_step(model, objective, optimizer, data, generator=generator)
        assert math.isfinite(loss)

    changed = [name for name, p in schedule.named_parameters() if not torch.equal(p.detach(), before[name])]
    assert changed, "no schedule parameter moved in 30 steps"
    with torch.no_grad():
        log_snr = schedule.log_snr(t)
    assert (log_snr - log_snr_before).abs().max().item() > 1e-5, "the schedule's shape did not move"
    assert (log_snr[1:] < log_snr[:-1]).all()
    assert schedule.sigma_min == pytest.approx(0.002, rel=1e-6)
    assert schedule.sigma_max == pytest.approx(80.0, rel=1e-6)
    # importance = |d lambda/dt| / (lambda range): positive, and its mean over uniform t is 1.
    midpoints = (torch.arange(10000, dtype=torch.float64) + 0.5) / 10000
    importance = schedule.double().importance(midpoints).detach()
    assert (importance > 0).all()
    assert importance.mean().item() == pytest.approx(1.0, abs=1e-6)


def loss_moments(model, objective, data):
    """(variance, mean) of the per-sample loss on `data`, with the same noise draws every call
    (common random numbers), so a change is the schedule's and not the sample's."""
    with torch.no_grad():
        per_sample, _ = objective(model, data, torch.Generator().manual_seed(1))
    return per_sample.var().item(), per_sample.mean().item()


def test_learned_schedule_lowers_the_variance_of_the_loss_and_keeps_its_mean(one_thread):
    """VDM (Kingma et al. 2021, App. I.2): descending Var[loss] in the schedule's shape alone (the
    network fixed) lowers the variance; the importance weight keeps E[loss] where it was."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    schedule = LearnedVP(hidden=16)
    with torch.no_grad():
        for p in schedule.parameters():
            p.normal_(0, 2)  # a curved shape, far from the variance's minimum
    model = DiffusionModel(MLP(2, hidden=32, depth=2), schedule, "eps", "c_noise")
    objective = Objective("uniform", "snr")
    data = GaussianMixture.ring().sample(4096, generator)

    def batch():
        return data[torch.randint(len(data), (256,), generator=generator)]

    schedule.requires_grad_(False)
    network_optimizer = torch.optim.Adam(model.network.parameters(), lr=1e-2)
    for _ in range(50):  # a network whose loss depends on the noise level
        train_step(model, objective, network_optimizer, batch(), generator=generator)
    schedule.requires_grad_(True)
    model.network.requires_grad_(False)
    variance_before, mean_before = loss_moments(model, objective, data)

    schedule_optimizer = torch.optim.Adam(schedule.parameters(), lr=0.1)
    for _ in range(30):
        train_step(model, objective, schedule_optimizer, batch(), generator=generator)

    variance, mean = loss_moments(model, objective, data)
    assert variance < 0.8 * variance_before, (variance_before, variance)
    assert mean == pytest.approx(mean_before, rel=0.02)

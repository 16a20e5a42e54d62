"""Training objectives (`models.objectives`, `models.diffusion.Objective`): weights are positive and
finite, the published equivalences between weightings hold, the noise samplers stay in range and have
the papers' statistics, and every loss is the x0-space loss times its effective weight."""

import functools
import math

import pytest
import torch
from torch import nn

from models.conditioning import CONDITIONINGS
from models.diffusion import DiffusionModel
from models.noise_schedules import NOISE_SCHEDULES
from models.objectives import NOISE_SAMPLING, WEIGHTINGS, Objective
from models.parameterizations import PARAMETERIZATIONS
from tests.conftest import noise_schedule

VP = ["ddpm", "vp_linear", "vp_cosine", "learned"]
CONTINUOUS = [name for name in NOISE_SCHEDULES if name != "ddpm"]
EXACT = {"rtol": 1e-12, "atol": 0.0}


schedule_named = functools.cache(noise_schedule)  # one instance per name: LearnedVP's random shape stays the same


class TinyNet(nn.Module):
    """F(x, c) for x [B, 2] and a conditioning scalar c [B]: a two-layer MLP on (x, c). Unlike the
    zero-initialised `networks.MLP` its output is not 0, so a wrong c_out cannot hide."""

    def __init__(self, dim=2, hidden=32):
        super().__init__()
        self.layers = nn.Sequential(nn.Linear(dim + 1, hidden), nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x, c):
        return self.layers(torch.cat([x, c[:, None].to(x.dtype)], dim=1))


def make_model(schedule_name, parameterization, conditioning="c_noise"):
    torch.manual_seed(0)
    return DiffusionModel(TinyNet().double(), schedule_named(schedule_name), parameterization, conditioning)


def sigma_grid(schedule, n=1000):
    """n sigmas log-spaced over [sigma_min, sigma_max], both ends exact."""
    log_ends = math.log(schedule.sigma_min), math.log(schedule.sigma_max)
    sigmas = torch.exp(torch.linspace(*log_ends, n, dtype=torch.float64))
    sigmas[0], sigmas[-1] = schedule.sigma_min, schedule.sigma_max
    return sigmas


def weights(weighting, parameterization, schedule_name, **options):
    model = make_model(schedule_name, parameterization)
    s = sigma_grid(model.noise_schedule)
    return Objective("log_normal", weighting, weighting_options=options).weight(model, s), s


def compatible(sampling):
    """The schedules `sampling` draws on: DDPM's timesteps need DDPM; t uniform needs a schedule trained so."""
    if sampling == "uniform_discrete":
        return ["ddpm"]
    return [name for name in NOISE_SCHEDULES if sampling != "uniform" or schedule_named(name).uniform_time]


SAMPLING_CASES = [(sampling, name) for sampling in NOISE_SAMPLING for name in compatible(sampling)]


# --- 1. Weightings --------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("parameterization", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_weight_is_positive_and_finite_over_the_schedules_range(weighting, parameterization, schedule_name):
    w, _ = weights(weighting, parameterization, schedule_name)
    assert w.shape == (1000,)
    assert torch.isfinite(w).all() and (w > 0).all(), w


@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
def test_simple_eps_is_snr(schedule_name):
    """Ho et al. 2020: the eps loss is the x0 loss weighted by SNR = 1/sigma^2."""
    simple, s = weights("simple", "eps", schedule_name)
    torch.testing.assert_close(simple, weights("snr", "eps", schedule_name)[0], **EXACT)
    torch.testing.assert_close(simple, 1 / s**2, **EXACT)


@pytest.mark.parametrize("schedule_name", VP)
def test_simple_v_on_vp_is_snr_plus_one(schedule_name):
    """Salimans & Ho 2022: on a VP schedule the v loss is the x0 loss weighted by SNR + 1."""
    simple, s = weights("simple", "v", schedule_name)
    torch.testing.assert_close(simple, weights("snr_plus_one", "v", schedule_name)[0], **EXACT)
    torch.testing.assert_close(simple, 1 / s**2 + 1, **EXACT)


@pytest.mark.parametrize("sigma_data", [0.5, 1.0])
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
def test_simple_edm_is_edm_lambda(schedule_name, sigma_data):
    """Karras et al. 2022, Table 1: lambda(sigma) = 1/c_out^2 = (sigma^2 + sigma_data^2)/(sigma sigma_data)^2."""
    model = make_model(schedule_name, "edm")
    model.sigma_data = sigma_data
    s = sigma_grid(model.noise_schedule)
    simple = Objective("uniform", "simple").weight(model, s)
    torch.testing.assert_close(simple, Objective("uniform", "edm").weight(model, s), **EXACT)
    torch.testing.assert_close(simple, (s**2 + sigma_data**2) / (s * sigma_data) ** 2, **EXACT)


@pytest.mark.parametrize("gamma", [5.0, 1.0])
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
def test_min_snr_is_min_of_snr_and_gamma(schedule_name, gamma):
    """Hang et al. 2023: min(SNR, gamma)."""
    w, s = weights("min_snr", "x0", schedule_name, gamma=gamma)
    torch.testing.assert_close(w, torch.minimum(1 / s**2, torch.tensor(gamma, dtype=torch.float64)), **EXACT)


@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
def test_truncated_snr_is_max_of_snr_and_one(schedule_name):
    """Salimans & Ho 2022: max(SNR, 1)."""
    w, s = weights("truncated_snr", "x0", schedule_name)
    torch.testing.assert_close(w, torch.maximum(1 / s**2, torch.ones_like(s)), **EXACT)


# --- 2. Noise sampling ----------------------------------------------------------------------------


@pytest.mark.parametrize("sampling, schedule_name", SAMPLING_CASES)
def test_sampled_time_is_inside_the_schedule(sampling, schedule_name):
    schedule = schedule_named(schedule_name)
    t = NOISE_SAMPLING[sampling](10_000, schedule, torch.Generator().manual_seed(0))
    assert t.shape == (10_000,)
    assert (t >= schedule.t_min).all() and (t <= schedule.t_max).all(), (t.min().item(), t.max().item())


@pytest.mark.parametrize("p_mean", [-30.0, 30.0])
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
def test_log_normal_clamped_to_an_end_stays_inside_the_schedule(schedule_name, p_mean):
    schedule = schedule_named(schedule_name)
    t = NOISE_SAMPLING["log_normal"](100, schedule, torch.Generator().manual_seed(0), p_mean=p_mean)
    assert (t >= schedule.t_min).all() and (t <= schedule.t_max).all(), (t.min().item(), t.max().item())
    end = schedule.sigma_min if p_mean < 0 else schedule.sigma_max
    with torch.no_grad():
        torch.testing.assert_close(schedule.edm_sigma(t).double(), torch.full((100,), end, dtype=torch.float64))


def test_uniform_discrete_gives_every_timestep_1_to_T():
    schedule = schedule_named("ddpm")
    t = NOISE_SAMPLING["uniform_discrete"](50_000, schedule, torch.Generator().manual_seed(0))
    assert torch.equal(t, t.round())
    assert t.min().item() == 1 and t.max().item() == schedule.timesteps == 1000


@pytest.mark.parametrize("schedule_name", CONTINUOUS)
def test_uniform_discrete_on_a_continuous_schedule_raises_naming_it(schedule_name):
    schedule = schedule_named(schedule_name)
    with pytest.raises(ValueError, match=type(schedule).__name__):
        NOISE_SAMPLING["uniform_discrete"](10, schedule, torch.Generator().manual_seed(0))


DRAWS = 50_000
QUARTILES = (0.25, 0.5, 0.75)
Z = {0.25: -0.6745, 0.5: 0.0, 0.75: 0.6745}  # quartiles of N(0, 1)


def drawn_sigmas(sampling, schedule, **options):
    """EDM sigmas of the noise levels `sampling` draws on `schedule`, DRAWS of them."""
    with torch.no_grad():
        return schedule.edm_sigma(NOISE_SAMPLING[sampling](DRAWS, schedule, torch.Generator().manual_seed(0), **options)).double()


def assert_quantiles(sigmas, expected):
    """The share of `sigmas` at most each expected q-quantile `expected[q]` is q, to 0.01 (4.5 standard errors at DRAWS)."""
    shares = {q: (sigmas <= value).double().mean().item() for q, value in expected.items()}
    assert all(abs(share - q) <= 0.01 for q, share in shares.items()), shares


@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("sampling, p_mean, p_std", [("log_normal", -1.2, 1.2), ("logit_normal", 0.0, 1.0)])
def test_log_normal_and_logit_normal_draw_their_papers_log_sigma_on_every_schedule(sampling, p_mean, p_std, schedule_name):
    """EDM (Karras et al. 2022, Sec. 5): log sigma ~ N(-1.2, 1.2^2). SD3 (Esser et al. 2024, eq. 19): the
    rectified-flow time t = sigmoid(u), u ~ N(0, 1), whose sigma is t / (1 - t): log sigma = u, median
    sigma 1, quartiles exp(+-0.674). Whatever the schedule's own time."""
    expected = {q: math.exp(p_mean + p_std * Z[q]) for q in QUARTILES}
    assert_quantiles(drawn_sigmas(sampling, schedule_named(schedule_name)), expected)


def vp_sigma(log_alpha_bar):
    return math.sqrt(math.expm1(-log_alpha_bar))


def ddpm_sigma(timestep, beta_start=1e-4, beta_end=0.02, steps=1000):
    """Ho et al. 2020: abar_t = prod_{s <= t} (1 - beta_s), betas linear."""
    betas = [beta_start + (beta_end - beta_start) * i / (steps - 1) for i in range(steps)]
    return vp_sigma(sum(math.log1p(-beta) for beta in betas[:timestep]))


def cosine_sigma(t, s=0.008):
    """Nichol & Dhariwal 2021, eq. 17: abar = f(t) / f(0), f(t) = cos((t + s)/(1 + s) pi/2)^2."""
    f = lambda u: math.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return vp_sigma(math.log(f(t) / f(0)))


PAPER_SIGMA = {  # the sigma of the time t in each schedule's paper, written here apart from models/noise_schedules.py
    "ddpm": lambda t: math.exp(
        (1 - t % 1) * math.log(ddpm_sigma(int(t))) + t % 1 * math.log(ddpm_sigma(min(int(t) + 1, 1000)))
    ),  # between timesteps, log sigma linear
    "vp_linear": lambda t: vp_sigma(-(0.1 * t + 0.5 * (20.0 - 0.1) * t**2)),  # Song et al. 2021, eq. 33: beta(t) = 0.1 + 19.9 t
    "vp_cosine": cosine_sigma,
    "ve": lambda t: 0.01 * (50 / 0.01) ** t,  # Song et al. 2021 (SMLD): sigma_min (sigma_max / sigma_min)^t
    "flow": lambda t: t / (1 - t),  # Lipman et al. 2023: x_t = (1 - t) x0 + t eps
    "learned": lambda t: math.exp((1 - t) * math.log(0.002) + t * math.log(80)),  # VDM, as initialised: linear in log-SNR
}


@pytest.mark.parametrize("schedule_name", [name for name in NOISE_SCHEDULES if name != "edm"])
def test_uniform_draws_t_uniformly_in_each_schedules_own_time(schedule_name):
    """Song et al. 2021, Nichol & Dhariwal 2021, Kingma et al. 2021, Lipman et al. 2023: t ~ U[t_min, t_max]
    in the schedule's own time, so the q-quantile of sigma is the paper's sigma at t_min + q (t_max - t_min)."""
    schedule = schedule_named(schedule_name)
    expected = {q: PAPER_SIGMA[schedule_name](schedule.t_min + q * (schedule.t_max - schedule.t_min)) for q in QUARTILES}
    assert_quantiles(drawn_sigmas("uniform", schedule), expected)


def test_uniform_is_refused_on_edms_schedule_where_t_is_sigma():
    """No paper trains EDM's schedule with t uniform: that is sigma uniform on [0.002, 80], median 40."""
    with pytest.raises(ValueError, match="no paper's recipe on EDM"):
        NOISE_SAMPLING["uniform"](10, schedule_named("edm"), torch.Generator().manual_seed(0))


def test_uniform_discrete_draws_ddpms_timesteps_with_equal_probability():
    """Ho et al. 2020, Alg. 1: t ~ Uniform({1, ..., T}); sigma at most that of timestep k: k / T of the draws."""
    assert_quantiles(drawn_sigmas("uniform_discrete", schedule_named("ddpm")), {k / 1000: ddpm_sigma(k) for k in (250, 500, 750)})


@pytest.mark.parametrize("sampling", list(NOISE_SAMPLING))
def test_sampling_is_deterministic_given_the_seed(sampling):
    schedule = schedule_named(compatible(sampling)[0])
    first, again, other = (NOISE_SAMPLING[sampling](1000, schedule, torch.Generator().manual_seed(seed)) for seed in (0, 0, 1))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


# --- 3. Objective --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, allowed",
    [
        (lambda: Objective("nope", "edm"), NOISE_SAMPLING),
        (lambda: Objective("uniform", "nope"), WEIGHTINGS),
        (lambda: DiffusionModel(TinyNet(), schedule_named("edm"), "nope", "c_noise"), PARAMETERIZATIONS),
        (lambda: DiffusionModel(TinyNet(), schedule_named("edm"), "edm", "nope"), CONDITIONINGS),
    ],
    ids=["noise_sampling", "weighting", "parameterization", "conditioning"],
)
def test_unknown_name_raises_listing_the_allowed(build, allowed):
    with pytest.raises(ValueError) as error:
        build()
    message = str(error.value)
    assert "nope" in message
    assert all(name in message for name in allowed), message


SAMPLING_FOR = {"ddpm": "uniform_discrete", "edm": "log_normal", "flow": "logit_normal"}
CONDITIONING_FOR = {"ddpm": "index", "vp_linear": "time", "vp_cosine": "time", "learned": "time"}


@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("parameterization", list(PARAMETERIZATIONS))
@pytest.mark.parametrize("weighting", list(WEIGHTINGS))
def test_loss_is_weighted_x0_loss(weighting, parameterization, schedule_name):
    """Kingma & Gao 2023: loss = w(sigma) |D(x; sigma) - x0|^2 (mean over dims) x the schedule's importance."""
    model = make_model(schedule_name, parameterization, CONDITIONING_FOR.get(schedule_name, "c_noise"))
    sampling = SAMPLING_FOR.get(schedule_name, "uniform")
    objective = Objective(sampling, weighting)
    x0 = torch.randn(64, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    loss, w = objective(model, x0, torch.Generator().manual_seed(7))

    generator = torch.Generator().manual_seed(7)
    t = NOISE_SAMPLING[sampling](64, model.noise_schedule, generator)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype)
    with torch.no_grad():
        sigma = model.noise_schedule.edm_sigma(t)
        D = model(x0 + sigma[:, None] * noise, sigma)
        expected_w = objective.weight(model, sigma)
        expected = expected_w * ((D - x0) ** 2).mean(1) * model.noise_schedule.importance(t)
    torch.testing.assert_close(w, expected_w, rtol=1e-12, atol=0.0)
    torch.testing.assert_close(loss.detach(), expected, rtol=1e-9, atol=0.0)

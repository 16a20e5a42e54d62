"""Sampling-time step schedules (`models.step_schedules`): grid shape, the papers' formulas,
range errors, snapping to a discrete model's timesteps, and the finest grid for an NFE budget."""

import functools
import math
import re

import pytest
import torch

from models.noise_schedules import NOISE_SCHEDULES
from models.solvers import SOLVERS
from models.step_schedules import SPACINGS, STEP_SCHEDULES, sigmas_for_budget, snap, step_schedule

CONTINUOUS = [name for name in NOISE_SCHEDULES if name != "ddpm"]
# LearnedVP's network and end points are float32, so its time <-> sigma round trip is float32-exact.
TIME_TOLERANCE = {name: 1e-6 if name == "learned" else 1e-12 for name in CONTINUOUS}


@functools.cache
def schedule_named(name):
    return NOISE_SCHEDULES[name]()


def timesteps_of(sigmas, schedule):
    """Timesteps t = 1..T of a discrete model's grid (sigma = 0 dropped); each sigma must be in the table."""
    matches = sigmas[sigmas > 0][:, None] == schedule.discrete_sigmas[None]
    assert (matches.sum(1) == 1).all(), "a positive sigma is not exactly one of the model's discrete sigmas"
    return (matches.int().argmax(1) + 1).tolist()


def model_time(schedule, sigmas):
    """The model's time t of each positive sigma, in float64."""
    return schedule.time(sigmas[sigmas > 0]).to(torch.float64)


def time_range(schedule, sigma_min=None, sigma_max=None):
    low = schedule.sigma_min if sigma_min is None else sigma_min
    high = schedule.sigma_max if sigma_max is None else sigma_max
    return tuple(float(schedule.time(torch.tensor(s, dtype=torch.float64))) for s in (low, high))


def numbers_in(message):
    return [float(m) for m in re.findall(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?", message)]


def names_value(message, value, rel=1e-5):
    return any(math.isclose(number, value, rel_tol=rel) for number in numbers_in(message))


def exact_denoiser(x, sigma):
    """D(x; sigma) = E[x0 | x] for data N(0, 0.5^2 I): x * 0.25 / (0.25 + sigma^2), sigma of shape [B]."""
    sigma = sigma.reshape(-1, *[1] * (x.dim() - 1))
    return x * 0.25 / (0.25 + sigma**2)


# --- 1. Every schedule x every discretization: a well-formed grid -------------------------------


@pytest.mark.parametrize("num_steps", [1, 2, 5, 18, 50])
@pytest.mark.parametrize("discretization", list(STEP_SCHEDULES))
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
def test_grid_is_decreasing_float64_from_sigma_max_to_one_zero(schedule_name, discretization, num_steps):
    schedule = schedule_named(schedule_name)
    sigmas = step_schedule(discretization, num_steps, schedule)

    assert sigmas.dtype == torch.float64
    assert sigmas.dim() == 1
    assert (sigmas[:-1] > sigmas[1:]).all(), sigmas
    assert sigmas[-1].item() == 0.0 and (sigmas == 0).sum().item() == 1
    assert sigmas[0].item() == pytest.approx(schedule.sigma_max, rel=1e-9)
    assert sigmas[-2].item() >= schedule.sigma_min * (1 - 1e-9)
    if schedule.timesteps is None:
        assert len(sigmas) == num_steps + 1
    else:
        assert len(sigmas) <= num_steps + 1
        timesteps_of(sigmas, schedule)


# --- 2. Karras et al. 2022, eq. 5 ---------------------------------------------------------------


def karras_eq5(num_steps, sigma_min, sigma_max, rho):
    """sigma_i = (smax^(1/rho) + i/(N-1) (smin^(1/rho) - smax^(1/rho)))^rho for i < N, then sigma_N = 0."""
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    return [(a + i / (num_steps - 1) * (b - a)) ** rho for i in range(num_steps)] + [0.0]


@pytest.mark.parametrize("num_steps", [2, 5, 18, 50])
@pytest.mark.parametrize("rho", [7.0, 3.0])
@pytest.mark.parametrize(
    "schedule_name, sigma_min, sigma_max",
    [("edm", None, None), ("vp_linear", None, None), ("edm", 0.05, 20.0), ("ve", 0.3, 7.5)],
)
def test_karras_is_eq5(schedule_name, sigma_min, sigma_max, rho, num_steps):
    schedule = schedule_named(schedule_name)
    low = schedule.sigma_min if sigma_min is None else sigma_min
    high = schedule.sigma_max if sigma_max is None else sigma_max
    sigmas = step_schedule("karras", num_steps, schedule, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho)
    assert sigmas.tolist() == pytest.approx(karras_eq5(num_steps, low, high, rho), rel=1e-12, abs=0)


# --- 3. Uniform in log-SNR ----------------------------------------------------------------------


@pytest.mark.parametrize("num_steps", [2, 5, 18, 50])
@pytest.mark.parametrize("schedule_name", CONTINUOUS)
def test_logsnr_uniform_has_constant_log_ratios(schedule_name, num_steps):
    schedule = schedule_named(schedule_name)
    sigmas = step_schedule("logsnr_uniform", num_steps, schedule)[:-1]
    log_ratios = torch.log(sigmas[:-1] / sigmas[1:])
    expected = math.log(schedule.sigma_max / schedule.sigma_min) / (num_steps - 1)
    assert log_ratios.tolist() == pytest.approx([expected] * (num_steps - 1), rel=1e-12, abs=1e-14)


# --- 4. Uniform in the model's time (Lin et al. 2024, Table 2) -----------------------------------


@pytest.mark.parametrize(
    "spacing, expected",
    [
        ("trailing", [1000 - 100 * i for i in range(10)]),  # the DDIM subsequence 1000, 900, ..., 100
        ("leading", [901 - 100 * i for i in range(10)]),
        ("linspace", [1000 - 111 * i for i in range(10)]),  # round(linspace(1, 1000, 10))
    ],
)
def test_time_uniform_ddpm_spacings(spacing, expected):
    schedule = schedule_named("ddpm")
    assert schedule.timesteps == 1000
    sigmas = step_schedule("time_uniform", 10, schedule, spacing=spacing)
    assert timesteps_of(sigmas, schedule) == expected
    assert len(sigmas) == 11


@pytest.mark.parametrize("num_steps", [2, 5, 18, 50])
@pytest.mark.parametrize("schedule_name", CONTINUOUS)
def test_time_uniform_linspace_is_uniform_in_model_time(schedule_name, num_steps):
    schedule = schedule_named(schedule_name)
    t_low, t_high = time_range(schedule)
    t = model_time(schedule, step_schedule("time_uniform", num_steps, schedule, spacing="linspace"))
    step = (t_high - t_low) / (num_steps - 1)
    tolerance = TIME_TOLERANCE[schedule_name] * (t_high - t_low)
    assert (t[:-1] - t[1:]).tolist() == pytest.approx([step] * (num_steps - 1), abs=tolerance)
    assert t[0].item() == pytest.approx(t_high, abs=tolerance)
    assert t[-1].item() == pytest.approx(t_low, abs=tolerance)


@pytest.mark.parametrize("schedule_name", ["vp_cosine", "flow", "ve"])
def test_time_uniform_trailing_on_continuous_model_steps_down_by_span_over_n(schedule_name):
    schedule = schedule_named(schedule_name)
    t_low, t_high = time_range(schedule)
    t = model_time(schedule, step_schedule("time_uniform", 8, schedule, spacing="trailing"))
    expected = [t_high - (t_high - t_low) * i / 8 for i in range(8)]
    assert t.tolist() == pytest.approx(expected, abs=1e-12 * (t_high - t_low))


# --- 5. Quadratic in the model's time (Song et al. 2021, App. D.2) -------------------------------


@pytest.mark.parametrize("num_steps", [2, 5, 18, 50])
@pytest.mark.parametrize("schedule_name", CONTINUOUS)
def test_time_quadratic_follows_the_square_ramp(schedule_name, num_steps):
    schedule = schedule_named(schedule_name)
    t_low, t_high = time_range(schedule)
    t = model_time(schedule, step_schedule("time_quadratic", num_steps, schedule))
    expected = [t_low + (t_high - t_low) * (1 - i / (num_steps - 1)) ** 2 for i in range(num_steps)]
    assert t.tolist() == pytest.approx(expected, abs=TIME_TOLERANCE[schedule_name] * (t_high - t_low))


def test_time_quadratic_with_user_range_on_vp_linear():
    schedule = schedule_named("vp_linear")
    t_low, t_high = time_range(schedule, 0.1, 10.0)
    t = model_time(schedule, step_schedule("time_quadratic", 6, schedule, sigma_min=0.1, sigma_max=10.0))
    expected = [t_low + (t_high - t_low) * (1 - i / 5) ** 2 for i in range(6)]
    assert t.tolist() == pytest.approx(expected, abs=1e-12)


# --- 6. Errors that name the key, the value and what is allowed ----------------------------------


@pytest.mark.parametrize("discretization", list(STEP_SCHEDULES))
@pytest.mark.parametrize("schedule_name", list(NOISE_SCHEDULES))
@pytest.mark.parametrize("key, factor", [("sigma_max", 1.01), ("sigma_min", 0.99)])
def test_range_outside_the_model_raises_naming_key_and_range(schedule_name, discretization, key, factor):
    schedule = schedule_named(schedule_name)
    value = getattr(schedule, key) * factor
    with pytest.raises(ValueError) as error:
        step_schedule(discretization, 5, schedule, **{key: value})
    message = str(error.value)
    assert key in message
    assert names_value(message, schedule.sigma_min), message
    assert names_value(message, schedule.sigma_max), message


@pytest.mark.parametrize("sigma_min, sigma_max", [(1.0, 1.0), (5.0, 1.0)])
def test_sigma_min_not_below_sigma_max_raises(sigma_min, sigma_max):
    with pytest.raises(ValueError, match="sigma_min"):
        step_schedule("karras", 5, schedule_named("edm"), sigma_min=sigma_min, sigma_max=sigma_max)


def test_unknown_discretization_raises_listing_allowed_names():
    with pytest.raises(ValueError) as error:
        step_schedule("cosine_steps", 5, schedule_named("edm"))
    assert "cosine_steps" in str(error.value)
    for name in STEP_SCHEDULES:
        assert name in str(error.value)


@pytest.mark.parametrize("num_steps", [0, -3, 2.5])
def test_bad_num_steps_raises(num_steps):
    with pytest.raises(ValueError, match="num_steps"):
        step_schedule("karras", num_steps, schedule_named("edm"))


@pytest.mark.parametrize(
    "discretization, options",
    [("karras", {"spacing": "trailing"}), ("logsnr_uniform", {"rho": 7.0}), ("time_quadratic", {"spacing": "leading"})],
)
def test_unknown_option_raises(discretization, options):
    with pytest.raises((TypeError, ValueError)):
        step_schedule(discretization, 5, schedule_named("edm"), **options)


def test_unknown_spacing_raises_listing_allowed_spacings():
    with pytest.raises(ValueError) as error:
        step_schedule("time_uniform", 5, schedule_named("ddpm"), spacing="middle")
    message = str(error.value)
    assert "spacing" in message and "middle" in message
    for spacing in ("linspace", "trailing", "leading"):
        assert spacing in SPACINGS
        assert spacing in message


# --- 7. Snapping to a discrete model's timesteps -------------------------------------------------


def test_ddpm_karras_500_steps_merges_steps_when_snapped():
    schedule = schedule_named("ddpm")
    sigmas = step_schedule("karras", 500, schedule)
    assert len(sigmas) < 501
    assert len(set(sigmas.tolist())) == len(sigmas)
    assert (sigmas[:-1] > sigmas[1:]).all()
    assert sigmas[-1].item() == 0.0
    timesteps_of(sigmas, schedule)


def test_snap_takes_nearest_timestep_in_log_sigma_and_drops_repeats():
    table = schedule_named("ddpm").discrete_sigmas
    below_midpoint = 0.9 * (table[500] / table[499]).log()  # 90% of the way from t=500 to t=501 in log-sigma
    sigmas = torch.stack([table[999], table[499] * torch.exp(below_midpoint), table[500] * 1.0001, table[2], table[2] * 0.9999])
    assert snap(sigmas, table).tolist() == [table[999].item(), table[500].item(), table[2].item()]


# --- 8. The finest grid for an NFE budget --------------------------------------------------------


def counted_calls(solver, sigmas):
    x = torch.randn(8, 2, dtype=torch.float64) * sigmas[0]
    _, calls = solver.count_calls(exact_denoiser, x, sigmas, generator=torch.Generator().manual_seed(0))
    return calls


def fitted_sigmas(solver, solver_name, budget, schedule):
    """The Karras grid `sigmas_for_budget` fits to `budget` as (sigmas, nfe, steps), its NFE within the
    budget and equal to the solver's count; None, after checking the refusal names the solver, when
    not even one step fits."""
    if solver.nfe(1) > budget:
        with pytest.raises(ValueError, match=solver_name):
            sigmas_for_budget(solver, budget, "karras", schedule)
        return None
    sigmas, nfe = sigmas_for_budget(solver, budget, "karras", schedule)
    num_steps = len(sigmas) - 1
    assert nfe <= budget
    assert nfe == solver.nfe(num_steps)
    return sigmas, nfe, num_steps


@pytest.mark.parametrize("solver_name", list(SOLVERS))
def test_grid_for_budget_on_edm_is_maximal_and_calls_match(solver_name):
    solver, schedule = SOLVERS[solver_name], schedule_named("edm")
    for budget in range(1, 26):
        fitted = fitted_sigmas(solver, solver_name, budget, schedule)
        if fitted is None:
            continue
        sigmas, nfe, num_steps = fitted
        assert solver.nfe(num_steps + 1) > budget, f"budget {budget}: one more step would fit"
        assert torch.equal(sigmas, step_schedule("karras", num_steps, schedule))
        assert counted_calls(solver, sigmas) == nfe, f"budget {budget}"


@pytest.mark.parametrize("n", range(1, 9))
def test_grid_for_budget_dpm_solver_3_with_budget_3n_minus_1(n):
    """DPM-Solver-3: 3 calls per step, 1 on the step into 0, so n steps cost 3n - 2 <= 3n - 1 < 3n + 1."""
    solver = SOLVERS["dpm_solver_3"]
    sigmas, nfe = sigmas_for_budget(solver, 3 * n - 1, "karras", schedule_named("edm"))
    assert len(sigmas) - 1 == n
    assert nfe == 3 * n - 2
    assert counted_calls(solver, sigmas) == 3 * n - 2


def finer_fitting_request(solver, budget, name, schedule, num_steps, search_up_to):
    """A request of up to `search_up_to` steps whose snapped grid fits the budget with more than
    `num_steps` steps, as (request, steps), else None. Snapping never adds steps, so requests of
    `num_steps` or fewer cannot."""
    for request in range(num_steps + 1, search_up_to + 1):
        steps = len(step_schedule(name, request, schedule)) - 1
        if steps > num_steps and solver.nfe(steps) <= budget:
            return request, steps
    return None


@pytest.mark.parametrize("solver_name", list(SOLVERS))
def test_grid_for_budget_on_ddpm_small_budgets(solver_name):
    solver, schedule = SOLVERS[solver_name], schedule_named("ddpm")
    for budget in (1, 2, 3, 5, 10, 25):
        fitted = fitted_sigmas(solver, solver_name, budget, schedule)
        if fitted is None:
            continue
        sigmas, nfe, num_steps = fitted
        timesteps_of(sigmas, schedule)
        assert finer_fitting_request(solver, budget, "karras", schedule, num_steps, 2 * budget) is None
        assert counted_calls(solver, sigmas) == nfe, f"budget {budget}"


@pytest.mark.parametrize("name, budget", [("logsnr_uniform", 40), ("time_quadratic", 46), ("karras", 100)])
def test_grid_for_budget_on_ddpm_is_finest_when_snapping_merges_steps(name, budget):
    solver, schedule = SOLVERS["euler"], schedule_named("ddpm")
    sigmas, nfe = sigmas_for_budget(solver, budget, name, schedule)
    assert nfe <= budget
    assert finer_fitting_request(solver, budget, name, schedule, len(sigmas) - 1, 2 * budget) is None

"""The sampling core against exact answers: a Gaussian mixture's exact denoiser and ODE solution,
the published algorithms written out literally, and exact call counts."""

import math

import numpy as np
import pytest
import torch

from models.gaussian_mixture import GaussianMixture
from models.noise_schedules import DDPM, EDM
from models.solvers import SOLVERS
from models.step_schedules import step_schedule
from tests.two_sample import mmd

MIXTURE = GaussianMixture.ring()
DETERMINISTIC = [name for name, s in SOLVERS.items() if not s.stochastic]
SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def karras(num_steps, sigma_min=SIGMA_MIN, sigma_max=SIGMA_MAX, rho=7.0):
    """Karras et al. 2022, eq. 5, without the final 0: the grid ends at sigma_min."""
    i = torch.arange(num_steps + 1, dtype=torch.float64)
    return (sigma_max ** (1 / rho) + i / num_steps * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho


def gaussian_denoiser(x, sigma, sigma_data=0.5):
    """Exact denoiser of N(0, sigma_data^2 I) data, for any sample shape."""
    sigma = sigma.reshape(-1, *([1] * (x.dim() - 1)))
    return x * sigma_data**2 / (sigma_data**2 + sigma**2)


@pytest.fixture(scope="module")
def oracle():
    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * SIGMA_MAX
    return x, MIXTURE.flow(x, SIGMA_MAX, SIGMA_MIN)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_convergence_order_on_the_oracle(name, oracle):
    x, reference = oracle
    solver, counts = SOLVERS[name], [20, 40, 80, 160]
    errors = [(solver(MIXTURE.denoiser, x, karras(n)) - reference).abs().max().item() for n in counts]
    measured = -np.polyfit(np.log(counts), np.log(errors), 1)[0]
    assert measured >= solver.order - 0.3, f"{name}: order {measured:.2f}, declared {solver.order}, errors {errors}"


def test_reference_solution_is_accurate(oracle):
    x, reference = oracle
    looser = MIXTURE.flow(x, SIGMA_MAX, SIGMA_MIN, rtol=1e-9, atol=1e-9)
    assert (looser - reference).abs().max() < 1e-7


@pytest.mark.parametrize(
    "grid",
    [karras(7), torch.cat([karras(12), torch.zeros(1)]), step_schedule("logsnr_uniform", 5, EDM()), torch.tensor([80.0, 3.0, 0.5])],
)
def test_ddim_eta0_is_euler_is_dpm_solver_1(grid):
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * float(grid[0])
    euler = SOLVERS["euler"](MIXTURE.denoiser, x, grid)
    for name in ("ddim", "dpm_solver_1"):
        torch.testing.assert_close(
            SOLVERS[name](MIXTURE.denoiser, x, grid, eta=0.0) if name == "ddim" else SOLVERS[name](MIXTURE.denoiser, x, grid),
            euler,
            rtol=1e-12,
            atol=1e-12,
        )


def ddpm_algorithm_2(denoiser, x_T, schedule, generator, posterior_variance):
    """Ho et al. 2020, Alg. 2 in VP space, literally: x_{t-1} = (x_t - beta_t/sqrt(1-abar_t) eps)/sqrt(alpha_t) + sigma_t z."""
    betas = schedule.betas
    alpha_bars = torch.cumprod(1 - betas, 0)
    x = x_T
    for t in range(schedule.timesteps, 0, -1):
        beta, abar = betas[t - 1], alpha_bars[t - 1]
        abar_prev = alpha_bars[t - 2] if t > 1 else torch.tensor(1.0, dtype=torch.float64)
        sigma_edm = torch.sqrt((1 - abar) / abar)
        x0 = denoiser(x / torch.sqrt(abar), sigma_edm.expand(x.shape[0]))
        eps = (x / torch.sqrt(abar) - x0) / sigma_edm
        mean = (x - beta / torch.sqrt(1 - abar) * eps) / torch.sqrt(1 - beta)
        variance = (1 - abar_prev) / (1 - abar) * beta if posterior_variance else beta
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype) if t > 1 else torch.zeros_like(x)
        x = mean + torch.sqrt(variance) * z
    return x


@pytest.mark.parametrize(
    "solver, options, posterior",
    [
        ("ddim", {"eta": 1.0}, True),
        ("euler_ancestral", {}, True),
        ("ddpm", {"variance": "small"}, True),
        ("ddpm", {"variance": "large"}, False),
    ],
)
def test_ancestral_sampling_on_consecutive_steps_is_ddpm(solver, options, posterior):
    schedule = DDPM()
    grid = torch.cat([schedule.discrete_sigmas.flip(0), torch.zeros(1, dtype=torch.float64)])
    x_T = torch.randn(64, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    expected = ddpm_algorithm_2(MIXTURE.denoiser, x_T, schedule, torch.Generator().manual_seed(3), posterior)
    x = x_T * torch.sqrt(1 + grid[0] ** 2)  # sigma-space x = x_vp / sqrt(abar)
    got = SOLVERS[solver](MIXTURE.denoiser, x, grid, generator=torch.Generator().manual_seed(3), **options)
    torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-9)


def edm_algorithm_2(denoiser, x, t_steps, generator, S_churn=0.0, S_min=0.0, S_max=float("inf"), S_noise=1.0):
    """Karras et al. 2022, Alg. 2, literally; returns the state after every step."""
    N, states = len(t_steps) - 1, []
    for i in range(N):
        t_cur, t_next = t_steps[i], t_steps[i + 1]
        gamma = min(S_churn / N, math.sqrt(2) - 1) if S_min <= t_cur <= S_max else 0
        t_hat = t_cur + gamma * t_cur
        x_hat = x + math.sqrt(t_hat**2 - t_cur**2) * S_noise * torch.randn(x.shape, generator=generator, dtype=x.dtype) if gamma > 0 else x
        sigma = torch.full((x.shape[0],), t_hat, dtype=x.dtype)
        d_cur = (x_hat - denoiser(x_hat, sigma)) / t_hat
        x = x_hat + (t_next - t_hat) * d_cur
        if t_next != 0:
            d_prime = (x - denoiser(x, torch.full((x.shape[0],), t_next, dtype=x.dtype))) / t_next
            x = x_hat + (t_next - t_hat) * (0.5 * d_cur + 0.5 * d_prime)
        states.append(x)
    return states


def deis_log_rho_step(x, history, sigma, sigma_next):
    """One rhoAB-DEIS step of order len(history) (eps newest first at sigma, then the earlier sigmas), with
    the coefficients integrated by hand: int (u - c)/(b - c) dt = t (u - c - 1)/(b - c) and
    int (u - c)(u - d)/((b - c)(b - d)) dt = t (u^2 - (c + d + 2) u + cd + c + d + 2)/((b - c)(b - d)), u = log t."""
    nodes = [math.log(s) for s, _ in history]
    eps = [e for _, e in history]
    t0, t1 = sigma, sigma_next
    if len(nodes) == 1:
        return x + (t1 - t0) * eps[0]
    if len(nodes) == 2:

        def integral(t, b, c):
            return t * (math.log(t) - c - 1) / (b - c)

        b, c = nodes
        return x + (integral(t1, b, c) - integral(t0, b, c)) * eps[0] + (integral(t1, c, b) - integral(t0, c, b)) * eps[1]

    def integral(t, b, c, d):
        u = math.log(t)
        return t * (u * u - (c + d + 2) * u + c * d + c + d + 2) / ((b - c) * (b - d))

    b, c, d = nodes
    coefficients = [
        integral(t1, b, c, d) - integral(t0, b, c, d),
        integral(t1, c, b, d) - integral(t0, c, b, d),
        integral(t1, d, b, c) - integral(t0, d, b, c),
    ]
    return x + sum(k * e for k, e in zip(coefficients, eps))


@pytest.mark.parametrize("num_steps", [6, 16])
def test_deis_is_the_log_rho_adams_bashforth_written_out(num_steps):
    """Orders 1, 2, 3 warm-up, then order 3; on a grid of fewer than 15 steps the last two steps at
    orders 2 and 1 (lower_order_final), the step into 0 an Euler step."""
    grid = step_schedule("karras", num_steps, EDM()).tolist()
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * SIGMA_MAX
    expected, history = x, []
    for i, (sigma, sigma_next) in enumerate(zip(grid[:-1], grid[1:])):
        denoised = MIXTURE.denoiser(expected, torch.full((32,), sigma, dtype=torch.float64))
        history = [(sigma, (expected - denoised) / sigma)] + history[:2]
        order = min(len(history), num_steps - i) if num_steps < 15 else len(history)
        expected = deis_log_rho_step(expected, history[: 1 if sigma_next == 0 else order], sigma, sigma_next)
    torch.testing.assert_close(SOLVERS["deis"](MIXTURE.denoiser, x, grid), expected, rtol=1e-10, atol=1e-10)
    euler = SOLVERS["euler"](MIXTURE.denoiser, x, grid)
    torch.testing.assert_close(SOLVERS["deis"](MIXTURE.denoiser, x, grid, max_order=1), euler, rtol=1e-12, atol=1e-12)


def test_heun_is_edm_sampler_step_for_step():
    grid = step_schedule("karras", 18, EDM())
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64) * SIGMA_MAX
    expected = edm_algorithm_2(MIXTURE.denoiser, x, grid.tolist(), None)
    for k in range(1, len(grid)):
        torch.testing.assert_close(SOLVERS["heun"](MIXTURE.denoiser, x, grid[: k + 1]), expected[k - 1], rtol=1e-12, atol=1e-12)


def test_stochastic_heun_is_edm_sampler_with_churn():
    grid = step_schedule("karras", 18, EDM())
    x = torch.randn(32, 2, generator=torch.Generator().manual_seed(5), dtype=torch.float64) * SIGMA_MAX
    churn = dict(S_churn=40.0, S_min=0.05, S_max=50.0, S_noise=1.003)
    expected = edm_algorithm_2(MIXTURE.denoiser, x, grid.tolist(), torch.Generator().manual_seed(6), **churn)[-1]
    got = SOLVERS["heun"](
        MIXTURE.denoiser, x, grid, generator=torch.Generator().manual_seed(6), s_churn=40.0, s_tmin=0.05, s_tmax=50.0, s_noise=1.003
    )
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


STOCHASTIC = [("ddpm", {}), ("ddpm", {"variance": "small"}), ("euler_ancestral", {}), ("ddim", {"eta": 0.5}), ("heun", {"s_churn": 30.0})]


@pytest.fixture(scope="module")
def mmd_threshold():
    """The 99th percentile of true-vs-true MMDs at the sample size used (n = 1500)."""
    nulls = [
        mmd(
            MIXTURE.sample(1500, torch.Generator().manual_seed(100 + k), torch.float64),
            MIXTURE.sample(1500, torch.Generator().manual_seed(200 + k), torch.float64),
        )
        for k in range(30)
    ]
    return float(np.quantile(nulls, 0.99))


@pytest.mark.parametrize("name, options", STOCHASTIC)
def test_stochastic_samplers_reproduce_the_mixture(name, options, mmd_threshold):
    grid = step_schedule("karras", 200, EDM())
    truth = MIXTURE.sample(1500, torch.Generator().manual_seed(7), torch.float64)
    x = torch.randn(1500, 2, generator=torch.Generator().manual_seed(8), dtype=torch.float64) * SIGMA_MAX
    samples = SOLVERS[name](MIXTURE.denoiser, x, grid, generator=torch.Generator().manual_seed(9), **options)
    assert mmd(samples, truth) <= mmd_threshold
    other = SOLVERS[name](MIXTURE.denoiser, x, grid, generator=torch.Generator().manual_seed(10), **options)
    assert (other - samples).abs().mean() > 0.01


def test_mmd_threshold_rejects_a_wrong_distribution(mmd_threshold):
    """The statistic has the power to see a 25% error in the component width."""
    wide = GaussianMixture(MIXTURE.means, MIXTURE.stds * 1.25, MIXTURE.weights)
    a = wide.sample(1500, torch.Generator().manual_seed(11), torch.float64)
    b = MIXTURE.sample(1500, torch.Generator().manual_seed(12), torch.float64)
    assert mmd(a, b) > mmd_threshold


@pytest.mark.parametrize("name", SOLVERS)
def test_the_steps_within_a_budget_are_the_most_it_affords(name):
    solver = SOLVERS[name]
    for budget in range(solver.nfe(1), 64):
        steps = solver.steps_within(budget)
        assert solver.nfe(steps) <= budget < solver.nfe(steps + 1), (budget, steps)


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("num_steps", [1, 2, 3, 7, 10])
def test_counted_calls_equal_nfe(name, num_steps):
    grid = step_schedule("karras", num_steps, EDM())
    x = torch.randn(8, 2, dtype=torch.float64) * SIGMA_MAX
    out, calls = SOLVERS[name].count_calls(MIXTURE.denoiser, x, grid, generator=torch.Generator().manual_seed(0))
    assert calls == SOLVERS[name].nfe(num_steps)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", [n for n, s in SOLVERS.items() if s.declared.final_calls == 1])
def test_one_step_grid_lands_on_the_denoiser(name):
    x = torch.randn(8, 2, dtype=torch.float64) * SIGMA_MAX
    grid = torch.tensor([SIGMA_MAX, 0.0], dtype=torch.float64)
    expected = MIXTURE.denoiser(x, torch.full((8,), SIGMA_MAX, dtype=torch.float64))
    torch.testing.assert_close(SOLVERS[name](MIXTURE.denoiser, x, grid, generator=torch.Generator()), expected)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_grid_ending_above_zero_integrates_to_its_end(name):
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(13), dtype=torch.float64) * SIGMA_MAX
    reference = MIXTURE.flow(x, SIGMA_MAX, 0.5)
    got = SOLVERS[name](MIXTURE.denoiser, x, karras(200, sigma_min=0.5))
    assert (got - reference).abs().max() < (2e-2 if SOLVERS[name].order == 1 else 2e-3)


@pytest.mark.parametrize("name", SOLVERS)
def test_nan_in_the_denoiser_names_solver_and_step(name):
    grid = step_schedule("karras", 10, EDM())
    step = 2 + int((grid[1:] >= 1.0).sum())  # the first step that starts below sigma = 1

    def broken(x, sigma):
        out = MIXTURE.denoiser(x, sigma)
        return out * float("nan") if sigma[0] < 1.0 else out

    with pytest.raises(FloatingPointError, match=rf"'{name}'.*step ({step}|{step - 1}) of 10"):
        SOLVERS[name](broken, torch.randn(4, 2, dtype=torch.float64) * SIGMA_MAX, grid, generator=torch.Generator())


@pytest.mark.parametrize(
    "grid, problem",
    [
        ([80.0, 1.0, 1.0, 0.0], "strictly decreasing"),
        ([1.0, 80.0, 0.0], "strictly decreasing"),
        ([80.0, -1.0], "non-negative"),
        ([80.0], "at least 2"),
        ([float("nan"), 0.0], "finite"),
    ],
)
def test_bad_grids_are_refused(grid, problem):
    with pytest.raises(ValueError, match=problem):
        SOLVERS["dpm_solver_3"](MIXTURE.denoiser, torch.zeros(2, 2), torch.tensor(grid))


@pytest.mark.parametrize(
    "name, option, problem",
    [
        ("heun", {"eta": 1.0}, "does not accept"),
        ("ddim", {"eta": 2.0}, "eta"),
        ("ddpm", {"variance": "huge"}, "variance"),
        ("ipndm", {"max_order": 5}, "max_order"),
        ("deis", {"max_order": 4}, "max_order"),
        ("unipc", {"variant": "bh3"}, "variant"),
    ],
)
def test_bad_options_are_refused(name, option, problem):
    with pytest.raises(ValueError, match=problem):
        SOLVERS[name](MIXTURE.denoiser, torch.randn(2, 2), step_schedule("karras", 4, EDM()), **option)


@pytest.mark.parametrize("name", SOLVERS)
@pytest.mark.parametrize("shape", [(6,), (6, 1, 8, 8), (6, 3, 2, 2, 2)])
def test_any_batch_shape_and_dtype(name, shape):
    grid = step_schedule("karras", 6, EDM())
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(shape, generator=torch.Generator().manual_seed(14), dtype=dtype) * SIGMA_MAX
        out = SOLVERS[name](gaussian_denoiser, x, grid, generator=torch.Generator().manual_seed(15))
        assert out.shape == x.shape and out.dtype == dtype
        flat = SOLVERS[name](gaussian_denoiser, x.reshape(6, -1), grid, generator=torch.Generator().manual_seed(15))
        torch.testing.assert_close(out.reshape(6, -1), flat)


@pytest.mark.parametrize("name", SOLVERS)
def test_deterministic_given_the_generator(name):
    grid = step_schedule("karras", 8, EDM())
    x = torch.randn(16, 2) * SIGMA_MAX
    runs = [SOLVERS[name](MIXTURE.denoiser, x, grid, generator=torch.Generator().manual_seed(16)) for _ in range(2)]
    assert torch.equal(*runs)


def test_dpm_solver_3_at_every_small_budget_stays_finite():
    """The diffusers bug class: DPM-Solver-3 at 3n-1 steps or with a duplicated last sigma."""
    from models.step_schedules import sigmas_for_budget

    for budget in range(1, 31):
        sigmas, nfe = sigmas_for_budget(SOLVERS["dpm_solver_3"], budget, "logsnr_uniform", EDM())
        out, calls = SOLVERS["dpm_solver_3"].count_calls(MIXTURE.denoiser, torch.randn(4, 2) * SIGMA_MAX, sigmas)
        assert torch.isfinite(out).all() and calls == nfe <= budget

"""Step schedules optimized for a model and a solver (`models.optimized_schedules`) and Align Your
Steps' closed form: the dynamic programming finds the optimum, the grids are valid and spend the
budget, beat the fixed schedules on noise the optimizer never saw, and run in k-diffusion."""

import itertools
import math

import numpy as np
import pytest
import torch

from benchmarks.helpers.peers import k_diffusion_sampling
from models.gaussian_mixture import GaussianMixture
from models.noise_schedules import EDM
from models.optimized_schedules import cheapest_path, optimized_step_schedule
from models.solvers import SOLVERS
from models.step_schedules import sigmas_for_budget, step_schedule
from schema.study import Evaluate
from tasks.compute.cells import cells
from tasks.compute.sample import stream_noise
from tasks.report.analysis import schedule_comparison
from tasks.report.markdown import schedules_markdown

MIXTURE, SCHEDULE = GaussianMixture.ring(), EDM()


def noise(count, seed):
    return torch.randn(count, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def error(solver, sigmas, x, target):
    return (SOLVERS[solver](MIXTURE.denoiser, x * SCHEDULE.sigma_max, sigmas) - target).pow(2).mean().sqrt().item()


@pytest.fixture(scope="module")
def evaluation():
    """128 evaluation noises (apart from the calibration's) and their exact ODE solutions."""
    x = noise(128, 2)
    return x, MIXTURE.flow(x * SCHEDULE.sigma_max, SCHEDULE.sigma_max, 1e-5)


@pytest.mark.parametrize("num_steps", [1, 2, 3, 4, 5])
def test_the_dynamic_programming_finds_the_cheapest_path_of_exactly_n_steps(num_steps):
    """Against every path of the same number of steps through a random 7 x 7 cost matrix."""
    cost = np.triu(np.random.default_rng(num_steps).uniform(0.1, 1.0, (7, 7)), 1)
    total = lambda path: sum(cost[i, j] for i, j in zip(path, path[1:]))
    every = [(0, *middle, 6) for middle in itertools.combinations(range(1, 6), num_steps - 1)]
    path = cheapest_path(cost, num_steps)
    assert len(path) == num_steps + 1 and path[0] == 0 and path[-1] == 6
    assert math.isclose(total(path), min(map(total, every)))


def test_the_dynamic_programming_takes_a_detour_when_it_is_cheaper():
    cost = np.full((4, 4), 10.0)
    cost[0, 1], cost[1, 3], cost[0, 2], cost[2, 3] = 1.0, 1.0, 0.5, 3.0
    assert cheapest_path(cost, 2) == [0, 1, 3] and cheapest_path(cost, 1) == [0, 3] and cheapest_path(cost, 3) == [0, 1, 2, 3]
    with pytest.raises(ValueError, match="num_steps=4; allowed: 1 .. 3"):
        cheapest_path(cost, 4)


@pytest.mark.parametrize("solver, budget", [("dpmpp_2m", 6), ("ipndm", 5), ("unipc", 8)])
def test_an_optimized_grid_is_valid_spends_the_budget_and_beats_every_fixed_schedule(solver, budget, evaluation):
    """From the model's sigma_max, strictly decreasing, to 0, with exactly `budget` denoiser calls;
    on evaluation noise it never saw, closer to the exact ODE solution than the best fixed schedule."""
    num_steps = SOLVERS[solver].steps_within(budget)
    sigmas = optimized_step_schedule(MIXTURE.denoiser, SCHEDULE, num_steps, solver=solver, calibration=noise(64, 1))
    assert sigmas.dtype == torch.float64 and sigmas[0] == SCHEDULE.sigma_max and sigmas[-1] == 0
    assert (sigmas.diff() < 0).all() and sigmas[-2] >= SCHEDULE.sigma_min
    x, target = evaluation
    _, calls = SOLVERS[solver].count_calls(MIXTURE.denoiser, x * SCHEDULE.sigma_max, sigmas)
    assert calls == budget
    fixed = [("karras", {"rho": rho}) for rho in (5.0, 7.0, 9.0)] + [("logsnr_uniform", {}), ("time_uniform", {}), ("ays_gaussian", {})]
    best = min(
        error(solver, sigmas_for_budget(SOLVERS[solver], budget, name, SCHEDULE, **options)[0], x, target) for name, options in fixed
    )
    assert error(solver, sigmas, x, target) < 0.6 * best


def test_gits_gives_a_valid_grid_through_its_candidates():
    sigmas = optimized_step_schedule(MIXTURE.denoiser, SCHEDULE, 5, solver="euler", calibration=noise(32, 1), method="gits", candidates=16)
    candidates = torch.cat([step_schedule("karras", 16, SCHEDULE)[:-1], torch.zeros(1, dtype=torch.float64)])
    assert len(sigmas) == 6 and sigmas[0] == SCHEDULE.sigma_max and sigmas[-1] == 0 and (sigmas.diff() < 0).all()
    assert all(torch.isclose(candidates, sigma, rtol=1e-12).any() for sigma in sigmas)


def test_a_stochastic_solver_or_an_unknown_method_is_refused():
    with pytest.raises(ValueError, match="'ddpm' draws noise; allowed: a deterministic solver"):
        optimized_step_schedule(MIXTURE.denoiser, SCHEDULE, 4, solver="ddpm", calibration=noise(8, 1))
    with pytest.raises(ValueError, match="unknown method 'dp'; allowed: \\['gits', 'search'\\]"):
        optimized_step_schedule(MIXTURE.denoiser, SCHEDULE, 4, solver="euler", calibration=noise(8, 1), method="dp")
    with pytest.raises(ValueError, match="fitted to a model and solver"):
        step_schedule("optimized", 4, SCHEDULE)


def test_k_diffusion_samples_with_an_optimized_grid_as_our_solver_does(evaluation):
    """The grid leaves the study: k-diffusion's sample_dpmpp_2m on our sigmas gives our dpmpp_2m's samples."""
    sampling = k_diffusion_sampling()
    sigmas = optimized_step_schedule(MIXTURE.denoiser, SCHEDULE, 6, solver="dpmpp_2m", calibration=noise(64, 1))
    x = evaluation[0] * SCHEDULE.sigma_max
    theirs = sampling.sample_dpmpp_2m(MIXTURE.denoiser, x, sigmas, disable=True)
    torch.testing.assert_close(theirs, SOLVERS["dpmpp_2m"](MIXTURE.denoiser, x, sigmas), rtol=1e-9, atol=1e-9)


def test_calibration_noise_is_none_of_the_evaluation_noise():
    """Drawn from a stream of its own: no calibration noise is any sample's initial noise."""
    evaluation, calibration = stream_noise(1000, (1, 8, 8), 0, "initial noise"), stream_noise(64, (1, 8, 8), 0, "calibration")
    distances = torch.cdist(calibration.flatten(1), evaluation.flatten(1))
    assert distances.min() > 1.0


@pytest.mark.parametrize("c", [0.5, 1.0])
def test_align_your_steps_for_gaussian_data_is_uniform_in_arctan_sigma_over_c(c):
    """Sabour et al. 2024, Thm. 3.1: the optimum for data N(0, c^2) is uniform in arctan(sigma / c)."""
    sigmas = step_schedule("ays_gaussian", 8, SCHEDULE, c=c)
    assert sigmas[0] == pytest.approx(80.0) and sigmas[-2] == pytest.approx(0.002) and sigmas[-1] == 0
    angles = torch.atan(sigmas[:-1] / c)
    torch.testing.assert_close(angles.diff(), angles.diff()[:1].expand(7), rtol=1e-9, atol=1e-12)


def test_a_grid_uses_a_step_schedule_with_the_solvers_it_names_and_a_fitted_one_only_with_deterministic_ones():
    grid = Evaluate(solvers=["euler", "heun", "ddpm"], step_schedules=["karras", {"name": "optimized", "solvers": ["heun"]}], nfe=[8])
    assert [(cell.solver.name, cell.step_schedule.name) for cell in cells(grid, "tiny") if not cell.reference] == [
        ("euler", "karras"),
        ("heun", "karras"),
        ("heun", "optimized"),
        ("ddpm", "karras"),
    ]
    with pytest.raises(ValueError, match="fitted to the ODE of a deterministic solver, and solver 'ddpm' draws noise"):
        Evaluate(solvers=["euler", "ddpm"], step_schedules=["optimized"], nfe=[8])
    with pytest.raises(ValueError, match="'hune' is not a solver.*did you mean 'heun'"):
        Evaluate(solvers=["euler"], step_schedules=[{"name": "karras", "solvers": ["hune"]}], nfe=[8])
    with pytest.raises(ValueError, match="evaluations"):
        Evaluate(solvers=["euler"], step_schedules=[{"name": "optimized", "options": {"evaluations": 10}}], nfe=[8])


def test_the_report_sets_each_fitted_schedule_against_the_best_fixed_one_with_the_paired_spread():
    def row(schedule, ode_error, fid, bootstrap, fit_seconds=None):
        return dict(
            configuration="edm", clipping="none", reference=False, solver="unipc", budget=4, nfe=4, step_schedule=schedule,
            series=f"unipc / {schedule}", ode_error=ode_error, fid=fid, fid_se=0.5, fid_bootstrap=bootstrap, fit_seconds=fit_seconds,
        )  # fmt: skip

    rows = [
        row("karras[rho=7]", 0.2, 9.0, [9.0, 9.5, 8.5]),
        row("logsnr_uniform", 0.1, 10.0, [10.0, 10.0, 10.0]),
        row("optimized", 0.05, 8.0, [8.0, 8.7, 7.3], fit_seconds=3.0),
    ]
    (line,) = schedule_comparison(rows)
    assert (line["fixed_by_ode_error"], line["ode_error_ratio"]) == ("logsnr_uniform", 0.5)
    assert (line["fixed_by_fid"], line["fid_difference"]) == ("karras[rho=7]", -1.0)
    assert line["fid_difference_se"] == pytest.approx(torch.tensor([-1.0, -0.8, -1.2]).std().item())
    text = schedules_markdown([line])
    assert "| edm | unipc | 4 | optimized | 3.0 | 5.00e-02 | 1.00e-01 (logsnr_uniform) | 0.50 |" in text
    assert "**-1.00 ± 0.20**" in text  # beyond 2 paired standard errors

"""Sampling every cell of the grid: paired initial noise, honest NFE, batching that changes nothing."""

import pytest
import torch

from models.choices import SolverChoice
from models.gaussian_mixture import GaussianMixture
from models.noise_schedules import EDM
from models.solvers import SOLVERS
from schema.study import Evaluate
from tasks.compute.cells import Cell, cells
from tasks.compute.sample import sample, sigmas_for, stream_noise


class Oracle:
    """The Gaussian mixture's exact denoiser with the noise schedule a trained model would carry."""

    noise_schedule = EDM()

    def __init__(self):
        self.mixture, self.calls = GaussianMixture.ring(), 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.mixture.denoiser(x, sigma)


@pytest.mark.parametrize("solver", SOLVERS)
def test_batching_does_not_change_samples_and_nfe_is_honest(solver):
    """Every solver, deterministic or stochastic, gives each sample the same result in batches of 50, 7
    or 20 starting at sample 10: a stochastic solver draws a sample's noise from that sample's own stream."""
    noise = stream_noise(50, (2,), 0, "initial noise")
    oracle = Oracle()
    sigmas, _ = sigmas_for(oracle, solver, "karras", 10)
    whole, nfe, seconds = sample(oracle, solver, sigmas, noise, seed=1, batch_size=50)
    assert nfe <= 10 and oracle.calls == nfe and seconds > 0
    torch.testing.assert_close(sample(Oracle(), solver, sigmas, noise, seed=1, batch_size=7)[0], whole, rtol=1e-6, atol=1e-6)
    shard = sample(Oracle(), solver, sigmas, noise[10:], seed=1, batch_size=20, first=10)[0]
    torch.testing.assert_close(shard, whole[10:], rtol=1e-6, atol=1e-6)


def test_same_noise_for_every_cell_and_stochastic_cells_depend_on_the_seed():
    assert torch.equal(stream_noise(10, (1, 8, 8), 3, "initial noise"), stream_noise(10, (1, 8, 8), 3, "initial noise"))
    noise = stream_noise(40, (2,), 0, "initial noise")
    sigmas, _ = sigmas_for(Oracle(), "ddpm", "karras", 8)
    a = sample(Oracle(), "ddpm", sigmas, noise, seed=1, batch_size=40)[0]
    b = sample(Oracle(), "ddpm", sigmas, noise, seed=2, batch_size=40)[0]
    assert not torch.equal(a, b)


def test_cells_cover_the_grid():
    evaluate = Evaluate(solvers=[{"name": "euler"}, {"name": "heun"}], step_schedules=[{"name": "karras"}], nfe=[4, 8, 16])
    grid = cells(evaluate, "tiny")
    assert len(grid) == 7 and {(c.solver.name, c.budget) for c in grid[1:]} == {(s, b) for s in ("euler", "heun") for b in (4, 8, 16)}
    assert grid[0].reference and (grid[0].solver.name, grid[0].step_schedule.name, grid[0].budget) == ("heun", "karras", 255)


def test_a_step_schedule_that_moves_the_grid_ends_gets_a_reference_over_the_same_range():
    """The ODE runs from sigma_max to sigma_min: cells are measured against a reference over their own range."""
    evaluate = Evaluate(solvers=["euler"], step_schedules=[{"name": "logsnr_uniform", "options": {"sigma_min": 0.2}}, "karras"], nfe=[8])
    every = cells(evaluate, "tiny")
    references, grid = every[:2], every[2:]
    assert [r.label for r in references] == ["heun/karras/255", "heun/karras[sigma_min=0.2]/255"]  # the model's own range first
    assert all(r.reference for r in references) and not any(c.reference for c in grid)
    assert [c.ode_reference.label for c in grid] == ["heun/karras[sigma_min=0.2]/255", "heun/karras/255"]
    assert Cell("tiny", SolverChoice(name="ddim", options={"eta": 0.5}), *grid[0][2:5]).deterministic is False
    assert Cell("tiny", SolverChoice(name="euler_ancestral", options={"eta": 0.0}), *grid[0][2:5]).deterministic is True
    assert Cell("tiny", SolverChoice(name="heun", options={"s_churn": 1.0}), *grid[0][2:5]).deterministic is False


def test_stochastic_cells_ask_for_no_reference_of_their_own_but_the_model_keeps_its_own():
    """A stochastic cell solves no ODE: its moved sigma range asks for no reference, and it is measured
    against none; the model's own reference (its FID is the model's) is there all the same."""
    evaluate = Evaluate(solvers=["ddpm"], step_schedules=["karras", {"name": "karras", "options": {"sigma_min": 0.1}}], nfe=[8])
    every = cells(evaluate, "tiny")
    assert [cell.label for cell in every if cell.reference] == ["heun/karras/255"]
    assert all(cell.ode_reference is None for cell in every if not cell.reference)

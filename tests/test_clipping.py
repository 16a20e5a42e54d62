"""Denoiser clipping at sampling time (models/clipping.py): clamping to the data range and Imagen's
dynamic thresholding on hand-made estimates; wrapped around the denoiser, every solver gets it; a
clipped cell is a cell of its own."""

import pytest
import torch
from torch import nn

from models.axes import SOLVER_ENTRIES as DECLARED
from models.clipping import Clipped, clip, dynamic_threshold
from models.noise_schedules import EDM
from schema.study import Evaluate
from tasks.compute.cells import cells
from tasks.compute.sample import sample, sigmas_for


def test_clip_clamps_to_the_data_range():
    x0 = torch.tensor([[-3.0, -1.0, 0.25, 1.0, 7.0]])
    assert clip(x0).tolist() == [[-1.0, -1.0, 0.25, 1.0, 1.0]]


def test_dynamic_threshold_keeps_an_estimate_in_range_and_rescales_one_outside_by_its_percentile():
    inside = torch.linspace(-0.9, 0.9, 64).reshape(1, 1, 8, 8)
    outside = 3 * torch.linspace(-1, 1, 64).reshape(1, 1, 8, 8)
    out = dynamic_threshold(torch.cat([inside, outside]), percentile=0.9)
    s = torch.quantile(outside.abs().flatten(), 0.9)  # per sample: the in-range sample does not shrink the other
    assert s > 1 and torch.equal(out[0], inside[0])
    assert torch.allclose(out[1], outside[0].clamp(-s, s) / s) and out[1].abs().max() == pytest.approx(1.0)


class Constant(nn.Module):
    """A denoiser that estimates every pixel of the data as `value`, on EDM's noise schedule."""

    def __init__(self, value):
        super().__init__()
        self.value, self.noise_schedule = value, EDM()

    def forward(self, x, sigma):
        return torch.full_like(x, self.value)


@pytest.mark.parametrize("solver", sorted(DECLARED))
def test_every_solver_samples_the_clipped_estimate(solver):
    """A denoiser that says 5 everywhere: without clipping a solver lands near 5, with `clip` on 1
    (each step into sigma = 0 returns the data estimate, which the wrapper clipped)."""
    noise = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    budget = max(4, DECLARED[solver].nfe(2))
    sigmas, _ = sigmas_for(Constant(5.0), solver, "karras", budget)
    plain = sample(Constant(5.0), solver, sigmas, noise, seed=0, batch_size=4)[0]
    clipped = sample(Constant(5.0), solver, sigmas, noise, seed=0, batch_size=4, clipping="clip")[0]
    assert torch.allclose(clipped, torch.ones_like(clipped), atol=1e-4), (solver, clipped.flatten()[:4])
    assert torch.allclose(plain, torch.full_like(plain, 5.0), atol=1e-3), (solver, plain.flatten()[:4])


def test_clipped_wraps_the_denoiser_with_its_options():
    denoiser = Clipped(Constant(3.0), "dynamic_threshold", percentile=0.5)
    assert torch.equal(denoiser(torch.zeros(2, 1, 8, 8), torch.ones(2)), torch.ones(2, 1, 8, 8))
    with pytest.raises(ValueError, match="allowed"):
        Clipped(Constant(3.0), "clamp")


def test_a_grid_with_clippings_has_each_cell_and_reference_once_per_clipping():
    grid = Evaluate(solvers=["euler", "heun"], step_schedules=["karras"], nfe=[4, 8], clipping=["none", "clip"]).grid()
    labels = [cell.label for cell in cells(grid, "edm")]
    assert len(labels) == len(set(labels)) == 2 * (2 * 2 + 1)
    assert [label for label in labels if label.endswith("/clip")] == [label + "/clip" for label in labels if not label.endswith("/clip")]
    references = [cell for cell in cells(grid, "edm") if cell.reference]
    assert [(cell.solver.name, cell.clipping.name) for cell in references] == [("heun", "none"), ("heun", "clip")]

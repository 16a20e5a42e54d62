"""Scoring a model over the whole grid: one row per cell plus the reference, honest NFE, finite FID,
reproducible, and the data floor below a model's FID."""

import math

import pytest
import torch

from flows.params import Evaluate
from models.features import Classifier, train_classifier
from models.fid import FeatureExtractor, fid_from_statistics, real_statistics, resampling_weights
from tasks.data import load_digits_images, split
from tasks.evaluate import Cell, cell_row, cells, ode_error, ode_solution, sample_shard, shard_ranges
from tasks.sample import initial_noise
from tasks.train import train
from tests.conftest import tiny_configuration


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits_images()
    return split(images, labels, 0.2, seed=0)


@pytest.fixture(scope="module")
def statistics(digits):
    classifier = train_classifier(Classifier(num_features=32), digits.train_images, digits.train_labels, steps=150, seed=0)
    return real_statistics(digits.train_images, FeatureExtractor(classifier))


@pytest.fixture(scope="module")
def model(digits, tmp_path_factory):
    config = tiny_configuration(steps=60, batch_size=64, warmup_steps=10, checkpoint_every=60)
    return train(config, digits.train_images, tmp_path_factory.mktemp("checkpoints"), log=lambda m: None)


def score_cell(model, cell, noise, statistics, evaluate, shards=1, solutions=None):
    """(row, the samples a grid shows) of a cell as the evaluate flow scores it: its shards, then
    `cell_row`; a reference's ODE solution is computed and kept in `solutions` (label -> tensor) for
    the cells after it."""
    solutions = {} if solutions is None else solutions
    reference = cell.ode_reference(evaluate.reference_nfe).label
    if cell.reference:
        solutions[reference] = ode_solution(model, cell, noise, evaluate)
    parts = [
        sample_shard(model, cell, noise[start:end], statistics.inception, evaluate, start)
        for start, end in shard_ranges(len(noise), evaluate.batch_size, shards)
    ]
    weights = resampling_weights(len(noise), evaluate.bootstrap, evaluate.seed)
    return cell_row(cell, parts, statistics, weights, solutions.get(reference), evaluate.reference_nfe)


def test_every_cell_and_the_reference_are_scored(model, statistics, digits):
    evaluate = Evaluate(
        solvers=[{"name": "euler"}, {"name": "heun"}, {"name": "ddpm"}],
        step_schedules=[{"name": "karras"}, {"name": "logsnr_uniform"}],
        nfe=[4, 8],
        reference_nfe=15,
        num_samples=64,
        batch_size=32,
    )
    noise = initial_noise(evaluate.num_samples, (1, 8, 8), evaluate.seed)
    solutions = {}
    rows = [score_cell(model, cell, noise, statistics, evaluate, solutions=solutions)[0] for cell in cells(evaluate, "tiny")]
    assert len(rows) == 3 * 2 * 2 + 1 and rows[0]["reference"] and sum(r["reference"] for r in rows) == 1
    assert all(r["nfe"] <= r["budget"] and math.isfinite(r["fid"]) and r["fid"] > 0 and r["fid_se"] > 0 for r in rows)
    assert all((r["ode_error"] is None) == (r["solver"] == "ddpm") for r in rows)  # a stochastic cell solves no ODE
    assert all(r["ode_reference"] == rows[0]["label"] for r in rows)
    solutions_again = {}
    again = [score_cell(model, cell, noise, statistics, evaluate, solutions=solutions_again)[0] for cell in cells(evaluate, "tiny")]
    assert [(r["fid"], r["fid_bootstrap"], r["ode_error"]) for r in rows] == [(r["fid"], r["fid_bootstrap"], r["ode_error"]) for r in again]
    floor = fid_from_statistics(statistics, digits.test_images)
    assert 0 < floor < min(r["fid"] for r in rows)


@pytest.mark.parametrize("shards", [2, 3, 5])
def test_sharded_scoring_gives_the_samples_and_fid_of_one_pass(model, statistics, shards):
    """Shards are runs of whole sampling batches, the stochastic solver's noise is drawn per sample,
    and the shards' feature moments add up: the same samples and (to float64 rounding) the same FID."""
    evaluate = Evaluate(
        solvers=[{"name": "ddpm"}, {"name": "heun"}],
        step_schedules=[{"name": "karras"}],
        nfe=[8],
        reference_nfe=15,
        num_samples=100,
        batch_size=20,
    )
    noise = initial_noise(evaluate.num_samples, (1, 8, 8), evaluate.seed)
    solutions = {}
    for cell in cells(evaluate, "tiny"):
        whole, whole_samples = score_cell(model, cell, noise, statistics, evaluate, solutions=solutions)
        split_row, split_samples = score_cell(model, cell, noise, statistics, evaluate, shards=shards, solutions=solutions)
        assert torch.equal(whole_samples, split_samples)
        assert split_row["fid"] == pytest.approx(whole["fid"], rel=1e-9, abs=1e-9) and split_row["nfe"] == whole["nfe"]
        assert split_row["fid_bootstrap"] == pytest.approx(whole["fid_bootstrap"], rel=1e-9, abs=1e-9)
        assert split_row["ode_error"] == whole["ode_error"]


def test_shards_are_whole_batches_covering_every_sample_once():
    assert shard_ranges(100, 20, 3) == [(0, 40), (40, 60), (60, 100)]
    assert shard_ranges(1000, 2000, 4) == [(0, 1000)]  # one batch: one shard
    assert shard_ranges(50, 20, 8) == [(0, 20), (20, 40), (40, 50)]


def test_ode_error_is_the_distance_to_the_solution_at_twice_the_reference_steps(model, statistics):
    """The reference's own error is its distance to Heun at twice its steps; a cell that runs that
    very grid is at distance 0; Heun's error falls with its budget; only the first ode_samples count."""
    evaluate = Evaluate(solvers=["heun"], step_schedules=["karras"], nfe=[7, 15, 31], reference_nfe=63, num_samples=64, ode_samples=40)
    noise = initial_noise(evaluate.num_samples, (1, 8, 8), evaluate.seed)
    grid = cells(evaluate, "tiny")
    solutions = {}
    rows = [score_cell(model, cell, noise, statistics, evaluate, solutions=solutions)[0] for cell in grid]
    solution = solutions[rows[0]["label"]]
    assert solution.shape == (40, 1, 8, 8)
    converged = Cell("tiny", *grid[0][1:3], 2 * evaluate.reference_nfe + 1)
    assert score_cell(model, converged, noise, statistics, evaluate, solutions=solutions)[0]["ode_error"] == 0.0
    errors = [row["ode_error"] for row in rows]
    assert errors[1] > errors[2] > errors[3] > errors[0] > 0
    assert ode_error(torch.cat([solution + 1, torch.full((24, 1, 8, 8), 9.0)]), solution) == pytest.approx(1.0)

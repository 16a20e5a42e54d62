"""Scoring a model over the whole grid: one row per cell plus the reference, honest NFE, finite FID,
reproducible, and the data floor below a model's FID."""

import math

import pytest
import torch

from models.classifier import Classifier, train_classifier
from models.fid import FeatureExtractor, fid_from_statistics, real_statistics, resampling_weights
from schema.study import Evaluate
from tasks.compute.cells import Cell, cells, measured_against, ode_error, ode_solution, sample_shard, score, shard_ranges, shared_inputs
from tasks.compute.data import load_digits_images, split
from tasks.compute.sample import STREAMS, stream_seed
from tasks.compute.train import train
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
    `score`; a reference's ODE solution (and the one at twice its steps, for its error ratio) is
    computed and kept in `solutions` (label -> tensor) for the cells after it."""
    solutions = {} if solutions is None else solutions
    finer = None
    if cell.reference:
        solutions[cell.label] = ode_solution(model, cell, noise, evaluate)
        finer = ode_solution(model, cell, noise, evaluate, doublings=2)
    parts = [
        sample_shard(model, cell, noise[start:end], statistics.inception, evaluate, start)
        for start, end in shard_ranges(len(noise), evaluate.batch_size, shards)
    ]
    resamples = shared_inputs(evaluate, noise.shape[1:]).resamples
    return score(cell, parts, statistics, resamples, measured_against(cell, solutions), finer)


def test_every_cell_and_the_reference_are_scored(model, statistics, digits):
    evaluate = Evaluate(
        solvers=[{"name": "euler"}, {"name": "heun"}, {"name": "ddpm"}],
        step_schedules=[{"name": "karras"}, {"name": "logsnr_uniform"}],
        nfe=[4, 8],
        reference_nfe=15,
        num_samples=64,
        batch_size=32,
    )
    noise = shared_inputs(evaluate, (1, 8, 8)).noise
    solutions = {}
    rows = [score_cell(model, cell, noise, statistics, evaluate, solutions=solutions)[0] for cell in cells(evaluate, "tiny")]
    assert len(rows) == 3 * 2 * 2 + 1 and rows[0]["reference"] and sum(r["reference"] for r in rows) == 1
    assert all(r["nfe"] <= r["budget"] and math.isfinite(r["fid"]) and r["fid"] > 0 and r["fid_se"] > 0 for r in rows)
    assert all(r["kid_se"] > 0 and len(r["kid_bootstrap"]) == len(r["fid_bootstrap"]) == evaluate.bootstrap for r in rows)
    assert max(r["kid"] for r in rows) > 2 * rows[0]["kid"] > 0  # the worst of 4-step cells against the converged reference
    assert all((r["ode_error"] is None) == (r["solver"] == "ddpm") for r in rows)  # a stochastic cell solves no ODE
    assert all(r["ode_reference"] == (rows[0]["label"] if r["solver"] != "ddpm" else None) for r in rows)
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
    noise = shared_inputs(evaluate, (1, 8, 8)).noise
    solutions = {}
    for cell in cells(evaluate, "tiny"):
        whole, whole_samples = score_cell(model, cell, noise, statistics, evaluate, solutions=solutions)
        split_row, split_samples = score_cell(model, cell, noise, statistics, evaluate, shards=shards, solutions=solutions)
        assert torch.equal(whole_samples, split_samples)
        assert split_row["fid"] == pytest.approx(whole["fid"], rel=1e-9, abs=1e-9) and split_row["nfe"] == whole["nfe"]
        assert split_row["fid_bootstrap"] == pytest.approx(whole["fid_bootstrap"], rel=1e-9, abs=1e-9)
        assert (split_row["kid"], split_row["kid_bootstrap"]) == (whole["kid"], whole["kid_bootstrap"])  # the same features in order
        assert split_row["ode_error"] == whole["ode_error"]


def test_shards_are_whole_batches_covering_every_sample_once():
    assert shard_ranges(100, 20, 3) == [(0, 40), (40, 60), (60, 100)]
    assert shard_ranges(1000, 2000, 4) == [(0, 1000)]  # one batch: one shard
    assert shard_ranges(50, 20, 8) == [(0, 20), (20, 40), (40, 50)]


def test_ode_error_is_the_distance_to_the_solution_at_twice_the_reference_steps(model, statistics):
    """The reference's own error is its distance to Heun at twice its steps; a cell that runs that
    very grid is at distance 0; Heun's error falls with its budget; only the first ode_samples count."""
    evaluate = Evaluate(solvers=["heun"], step_schedules=["karras"], nfe=[7, 15, 31], reference_nfe=63, num_samples=64, ode_samples=40)
    noise = shared_inputs(evaluate, (1, 8, 8)).noise
    grid = cells(evaluate, "tiny")
    solutions = {}
    rows = [score_cell(model, cell, noise, statistics, evaluate, solutions=solutions)[0] for cell in grid]
    solution = solutions[rows[0]["label"]]
    assert solution.shape == (40, 1, 8, 8)
    converged = Cell("tiny", *grid[0][1:3], 2 * evaluate.reference_nfe + 1, evaluate.reference_nfe)
    assert score_cell(model, converged, noise, statistics, evaluate, solutions=solutions)[0]["ode_error"] == 0.0
    errors = [row["ode_error"] for row in rows]
    assert errors[1] > errors[2] > errors[3] > errors[0] > 0
    assert ode_error(torch.cat([solution + 1, torch.full((24, 1, 8, 8), 9.0)]), solution) == pytest.approx(1.0)


def test_a_reference_measures_its_error_ratio_against_twice_and_four_times_its_steps(model, statistics):
    """One more solve at twice the solution's steps: the reference's distance to the solution over the
    solution's distance to the finer one, near 2^2 for Heun."""
    evaluate = Evaluate(solvers=["heun"], step_schedules=["karras"], nfe=[15], reference_nfe=63, num_samples=64, ode_samples=40)
    noise = shared_inputs(evaluate, (1, 8, 8)).noise
    reference = cells(evaluate, "tiny")[0]
    row = score_cell(model, reference, noise, statistics, evaluate)[0]
    solution, finer = (ode_solution(model, reference, noise, evaluate, doublings) for doublings in (1, 2))
    assert finer.shape == solution.shape == (40, 1, 8, 8)
    assert row["error_ratio"] == pytest.approx(row["ode_error"] / ode_error(solution, finer), rel=1e-12)
    assert 2**1.5 <= row["error_ratio"] <= 2**2.5, row["error_ratio"]
    assert (
        score_cell(model, cells(evaluate, "tiny")[1], noise, statistics, evaluate, solutions={reference.label: solution})[0]["error_ratio"]
        is None
    )  # only a reference has one


def test_the_noise_the_solver_noise_and_the_bootstrap_draw_from_streams_of_their_own():
    """Each stream of an evaluation has a seed of its own, apart from the other streams of this and of
    nearby evaluation seeds; the bootstrap's count changes none of the noise."""
    seeds = [stream_seed(seed, stream) for seed in range(4) for stream in STREAMS]
    assert len(set(seeds)) == len(seeds)
    small, large = (Evaluate(solvers=["euler"], step_schedules=["karras"], nfe=[4], num_samples=32, bootstrap=b) for b in (5, 50))
    assert torch.equal(shared_inputs(small, (2,)).noise, shared_inputs(large, (2,)).noise)
    assert torch.equal(shared_inputs(small, (2,)).resamples, resampling_weights(32, 5, stream_seed(0, "bootstrap")))
    assert not torch.equal(shared_inputs(small, (2,)).resamples, resampling_weights(32, 5, stream_seed(0, "initial noise")))

"""Scoring a model over the whole grid: one row per cell plus the reference, honest NFE, finite FID,
reproducible, and the data floor below a model's FID."""

import math

import pytest
import torch

from flows.params import Evaluate
from models.features import Classifier, train_classifier
from models.fid import FeatureExtractor, fid_from_statistics, real_statistics
from tasks.data import load_digits_images, split
from tasks.evaluate import cell_row, cells, sample_shard, shard_ranges
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


def score_cell(model, cell, noise, statistics, evaluate, shards=1):
    """(row, the samples a grid shows) of a cell as the evaluate flow scores it: its shards, then `cell_row`."""
    parts = [
        sample_shard(model, cell, noise[start:end], statistics.inception, evaluate, start)
        for start, end in shard_ranges(len(noise), evaluate.batch_size, shards)
    ]
    return cell_row(cell, parts, statistics)


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
    rows = [score_cell(model, cell, noise, statistics, evaluate)[0] for cell in cells(evaluate, "tiny")]
    assert len(rows) == 3 * 2 * 2 + 1 and sum(r["reference"] for r in rows) == 1
    assert all(r["nfe"] <= r["budget"] and math.isfinite(r["fid"]) and r["fid"] > 0 for r in rows)
    again = [score_cell(model, cell, noise, statistics, evaluate)[0] for cell in cells(evaluate, "tiny")]
    assert [r["fid"] for r in rows] == [r["fid"] for r in again]
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
    for cell in cells(evaluate, "tiny"):
        whole, whole_samples = score_cell(model, cell, noise, statistics, evaluate)
        split_row, split_samples = score_cell(model, cell, noise, statistics, evaluate, shards=shards)
        assert torch.equal(whole_samples, split_samples)
        assert split_row["fid"] == pytest.approx(whole["fid"], rel=1e-9, abs=1e-9) and split_row["nfe"] == whole["nfe"]


def test_shards_are_whole_batches_covering_every_sample_once():
    assert shard_ranges(100, 20, 3) == [(0, 40), (40, 60), (60, 100)]
    assert shard_ranges(1000, 2000, 4) == [(0, 1000)]  # one batch: one shard
    assert shard_ranges(50, 20, 8) == [(0, 20), (20, 40), (40, 50)]

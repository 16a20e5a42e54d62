"""Scoring a model over the whole grid: one row per cell plus the reference, honest NFE, finite FID,
reproducible, and the data floor below a model's FID."""

import math

import pytest

from flows.params import Configuration, Evaluate
from models.features import Classifier, train_classifier
from models.fid import FeatureExtractor, real_statistics
from tasks.data import load_digits_images, split
from models.fid import fid_from_statistics
from tasks.evaluate import cells, score_cell
from tasks.sample import initial_noise
from tasks.train import train


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
    config = Configuration(name="tiny", network_options={"channels": 8, "channel_mult": [1, 2], "attention": False},
                           steps=60, batch_size=64, warmup_steps=10, ema_decay=0.9, checkpoint_every=60)
    return train(config, digits.train_images, tmp_path_factory.mktemp("checkpoints"), log=lambda m: None)


def test_every_cell_and_the_reference_are_scored(model, statistics, digits):
    evaluate = Evaluate(solvers=[{"name": "euler"}, {"name": "heun"}, {"name": "ddpm"}], step_schedules=[{"name": "karras"}, {"name": "logsnr_uniform"}],
                        nfe=[4, 8], reference_nfe=15, num_samples=64, batch_size=32)
    noise = initial_noise(evaluate.num_samples, (1, 8, 8), evaluate.seed)
    rows = [score_cell(model, cell, noise, statistics, evaluate)[0] for cell in cells(evaluate)]
    assert len(rows) == 3 * 2 * 2 + 1 and sum(r["reference"] for r in rows) == 1
    assert all(r["nfe"] <= r["budget"] and math.isfinite(r["fid"]) and r["fid"] > 0 for r in rows)
    again = [score_cell(model, cell, noise, statistics, evaluate)[0] for cell in cells(evaluate)]
    assert [r["fid"] for r in rows] == [r["fid"] for r in again]
    floor = fid_from_statistics(statistics, digits.test_images)
    assert 0 < floor < min(r["fid"] for r in rows)

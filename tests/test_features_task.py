"""The features stage's task: the classifier and real statistics fitted once, saved as tensors,
loaded back to give the same FID and KID as from scratch; the same seed gives the same feature space."""

import pytest
import torch

from models.fid import features, fid_from_statistics
from models.kid import kid
from schema.study import Features
from tasks.compute.data import load_digits_images, split
from tasks.compute.feature_space import extractor_for, fit, load_statistics

FEATURES = Features(num_features=16, steps=80, seed=3)


@pytest.fixture(scope="module")
def digits():
    return split(*load_digits_images(), 0.2, seed=0)


@pytest.fixture(scope="module")
def fitted(digits):
    return fit(FEATURES, digits, log=lambda m: None)


def test_saved_statistics_give_the_same_fid_as_from_scratch(fitted, digits, tmp_path):
    state, metrics = fitted
    torch.save(state, tmp_path / "statistics.pt")
    statistics, sample_shape = load_statistics(FEATURES, tmp_path / "statistics.pt")
    assert sample_shape == (1, 8, 8)
    assert fid_from_statistics(statistics, digits.test_images) == pytest.approx(metrics["data_floor_fid"], rel=1e-9)
    shifted = fid_from_statistics(statistics, (digits.test_images + 0.5).clamp(-1, 1))
    assert shifted > 10 * metrics["data_floor_fid"]
    assert 0.7 < metrics["classifier_test_accuracy"] <= 1  # 80 steps; test_fid holds the fully trained accuracy


def test_saved_statistics_give_the_same_kid_and_it_is_measured_against_the_training_images(fitted, digits, tmp_path):
    state, metrics = fitted
    torch.save(state, tmp_path / "statistics.pt")
    statistics, _ = load_statistics(FEATURES, tmp_path / "statistics.pt")
    train = features(statistics.inception, digits.train_images)
    assert torch.equal(statistics.kid_real, train.float().double())  # every training image (fewer than KID_REAL)
    assert kid(statistics.kid_real, features(statistics.inception, digits.test_images)) == metrics["data_floor_kid"]
    shifted = kid(statistics.kid_real, features(statistics.inception, (digits.test_images + 0.5).clamp(-1, 1)))
    assert shifted > 10 * abs(metrics["data_floor_kid"])


def test_the_same_seed_gives_the_same_feature_space(fitted, digits):
    torch.manual_seed(12345)  # the global random state must not matter
    state, metrics = fit(FEATURES, digits, log=lambda m: None)
    assert metrics == fitted[1]
    assert all(torch.equal(state["classifier"][k], fitted[0]["classifier"][k]) for k in state["classifier"])


def test_inception_without_its_weights_file_is_a_clear_error(tmp_path):
    features = Features(kind="inception", weights_path=str(tmp_path / "missing.pth"))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        extractor_for(features)

"""FID on the digits (`models.classifier`, `models.fid`): the classifier learns the digits; FID is
zero on identical sets, small between two samples of the data and large for corrupted images,
grows with the amount of noise, is unchanged when the real statistics are reused, and equals the
textbook formula computed with scipy from the same features."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F
from torchmetrics.image.fid import FrechetInceptionDistance

from models.classifier import Classifier, accuracy, random_shift, train_classifier
from models.fid import FeatureExtractor, fid, fid_from_statistics, inception_extractor, real_statistics
from tasks.compute.data import load_digits_images, split


@pytest.fixture(scope="module")
def digits():
    images, labels = load_digits_images()
    return split(images, labels, test_fraction=0.2, seed=0)


@pytest.fixture(scope="module")
def classifier(digits):
    torch.manual_seed(0)
    return train_classifier(Classifier(), digits.train_images, digits.train_labels, steps=400, lr=1e-3, seed=0)


@pytest.fixture(scope="module")
def extractor(classifier):
    return FeatureExtractor(classifier)


def gaussian_noise(images, std, seed=0):
    return images + std * torch.randn(images.shape, generator=torch.Generator().manual_seed(seed))


def test_classifier_learns_the_digits(classifier, digits):
    assert accuracy(classifier, digits.test_images, digits.test_labels) >= 0.97


def test_random_shift_crops_each_image_at_one_of_the_nine_one_pixel_offsets():
    images = torch.randn(200, 2, 5, 6, generator=torch.Generator().manual_seed(0))
    shifted = random_shift(images, torch.Generator().manual_seed(1))
    padded = F.pad(images, (1, 1, 1, 1), mode="replicate")
    offsets = set()
    for image, result in zip(padded, shifted):
        matches = [(dy, dx) for dy in range(3) for dx in range(3) if torch.equal(image[:, dy : dy + 5, dx : dx + 6], result)]
        assert len(matches) >= 1
        offsets.update(matches)
    assert len(offsets) == 9


def test_training_is_deterministic_given_the_seed(digits):
    weights = []
    for _ in range(2):
        torch.manual_seed(1)
        model = train_classifier(Classifier(), digits.train_images, digits.train_labels, steps=5, lr=1e-3, seed=7)
        weights.append(torch.cat([p.flatten() for p in model.parameters()]))
    assert torch.equal(*weights)


def test_extractor_gives_the_classifiers_eval_features_of_images_in_minus_one_to_one(classifier, digits):
    """torchmetrics hands the module the [0, 1] images unchanged; it must map them back to [-1, 1]
    and run without dropout; with `num_features` set, torchmetrics never runs its 299 x 299 dummy
    image (which this 1-channel 8x8 network could not take)."""
    extractor = FeatureExtractor(classifier)
    images = digits.test_images[:50]
    classifier.train()
    features = extractor((images + 1) / 2)
    assert features.dtype == torch.float64 and features.shape == (50, classifier.num_features)
    assert torch.equal(features, extractor((images + 1) / 2))
    with torch.no_grad():
        expected = classifier.eval().features(images).double()
    torch.testing.assert_close(features, expected, rtol=1e-6, atol=1e-6)
    FrechetInceptionDistance(feature=extractor, normalize=True)


def test_fid_of_a_set_with_itself_is_zero(extractor, digits):
    scale = fid(digits.train_images, torch.rand_like(digits.train_images) * 2 - 1, extractor)
    assert scale > 50
    for images in (digits.train_images, digits.test_images):
        assert abs(fid(images, images, extractor)) < 1e-6 * scale


def test_corrupted_images_are_far_above_the_datas_own_floor(extractor, digits):
    train, test = digits.train_images, digits.test_images
    floor = fid(train, test, extractor)
    blurred = F.avg_pool2d(F.pad(test, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    shifted = torch.roll(test, shifts=1, dims=3)
    for corrupted in (blurred, shifted, gaussian_noise(test, 0.4)):
        assert fid(train, corrupted, extractor) > 5 * floor
    noised = [fid(train, gaussian_noise(test, std), extractor) for std in (0.2, 0.4, 0.8)]
    assert floor < noised[0] < noised[1] < noised[2]


def test_reused_real_statistics_give_the_value_from_scratch(extractor, digits):
    train, test = digits.train_images, digits.test_images
    noised = gaussian_noise(test, 0.4)
    statistics = real_statistics(train, extractor, batch_size=300)
    reused = [fid_from_statistics(statistics, fake) for fake in (test, noised, test)]
    assert statistics.real_features_num_samples.item() == len(train)
    assert statistics.fake_features_num_samples.item() == len(test)
    from_scratch = [fid(train, test, extractor), fid(train, noised, extractor)]
    assert reused[0] == pytest.approx(from_scratch[0], rel=1e-6)
    assert reused[1] == pytest.approx(from_scratch[1], rel=1e-6)
    assert reused[2] == pytest.approx(from_scratch[0], rel=1e-6)


def frechet_distance(a, b):
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)) from feature matrices [N, d] (float64 numpy)."""
    mean_a, mean_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = scipy.linalg.sqrtm(cov_a @ cov_b).real
    return ((mean_a - mean_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root)


@pytest.mark.filterwarnings("ignore:Matrix is singular:scipy.linalg.LinAlgWarning")  # ReLU units that never fire
def test_torchmetrics_value_matches_the_formula_on_the_classifier_features(classifier, extractor, digits):
    train, fake = digits.train_images, gaussian_noise(digits.test_images, 0.4).clamp(-1, 1)
    with torch.no_grad():
        features = [classifier.eval().features(images).double().numpy() for images in (train, fake)]
    assert fid(train, fake, extractor) == pytest.approx(frechet_distance(*features), rel=1e-3)


def test_missing_inception_weights_are_named(tmp_path):
    path = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(FileNotFoundError, match="weights-inception-2015-12-05-6726825d.pth") as error:
        inception_extractor(path)
    assert str(path) in str(error.value)

"""The FID feature space of a study, fitted once: a classifier trained on the data (digits, MNIST)
or Inception-v3 from a weights file (CIFAR-10), and the real-data statistics that every evaluation
reuses. The saved file holds tensors only, so it loads with weights_only=True."""

import hashlib
from pathlib import Path

import torch

from models.classifier import Classifier, accuracy, train_classifier
from models.fid import FeatureExtractor, empty_statistics, fid_from_statistics, inception_extractor, real_statistics, with_kid
from models.fid import features as features_of
from models.kid import kid
from tasks.files import write_json

from .checkpoints import save_atomic
from .data import TrainTest, load_dataset
from .provenance import digest, saved_digest

REAL_STATES = ("real_features_sum", "real_features_cov_sum", "real_features_num_samples")


def classifier_for(sample_shape, features):
    """An untrained `Classifier` sized for images of `sample_shape` (C, H, W) and the `features` section."""
    return Classifier(in_channels=sample_shape[0], image_size=sample_shape[-1], num_features=features.num_features)


def extractor_for(features, classifier_state=None, sample_shape=None):
    """The feature module of the `features` section: Inception-v3 from features.weights_path, or the
    classifier (with `classifier_state`) wrapped as `FeatureExtractor`."""
    if features.kind == "inception":
        return inception_extractor(features.weights_path)
    classifier = classifier_for(sample_shape, features)
    classifier.load_state_dict(classifier_state)
    return FeatureExtractor(classifier.eval())


def fit(features, data, *, device="cpu", log=print):
    """Fit the feature space on `data` (a `tasks.compute.data.TrainTest`): train the classifier (or load
    Inception), compute the real statistics of the training images and the data floor (held-out test
    images against them). Returns (state to save, metrics)."""
    sample_shape = tuple(data.train_images.shape[1:])
    metrics, classifier_state = {}, None
    if features.kind == "classifier":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(features.seed)  # the initial weights, so that the same seed gives the same features
            classifier = classifier_for(sample_shape, features).to(device)
        train_classifier(classifier, data.train_images, data.train_labels, steps=features.steps, seed=features.seed)
        metrics["classifier_test_accuracy"] = accuracy(classifier, data.test_images, data.test_labels)
        log(f"feature classifier: test accuracy {metrics['classifier_test_accuracy']:.4f} after {features.steps} steps")
        classifier_state = {k: v.cpu() for k, v in classifier.state_dict().items()}
    extractor = extractor_for(features, classifier_state, sample_shape).to(device)
    statistics = real_statistics(data.train_images, extractor)
    metrics["data_floor_fid"] = fid_from_statistics(statistics, data.test_images)
    metrics["data_floor_kid"] = kid(statistics.kid_real, features_of(extractor, data.test_images))
    log(
        f"data floor: FID of {len(data.test_images)} held-out images against {len(data.train_images)} training images "
        f"= {metrics['data_floor_fid']:.3f}, KID {metrics['data_floor_kid']:.2e}"
    )
    state = {
        "classifier": classifier_state,
        "sample_shape": torch.tensor(sample_shape),
        "real": {name: getattr(statistics, name).cpu() for name in REAL_STATES},
        "kid_real": statistics.kid_real.float().cpu(),  # float32, as `with_kid` keeps it
    }
    return state, metrics


def fit_saved(features, workspace, *, device="cpu", log=print):
    """`fit` on the prepared data of `workspace`, saved there: features/statistics.pt and
    features/metrics.json (classifier test accuracy, data floor)."""
    data = TrainTest(*load_dataset(workspace.data / "train.pt"), *load_dataset(workspace.data / "test.pt"))
    state, metrics = fit(features, data, device=device, log=log)
    save_atomic(state, workspace.features / "statistics.pt")
    write_json(metrics, workspace.features / "metrics.json")


def feature_space_digest(features, path):
    """Digest of the feature space cells are scored in: the real statistics saved at `path` (with the
    classifier's weights) and, for Inception, its weights file, which evaluation reads itself."""
    weights = hashlib.sha256(Path(features.weights_path).read_bytes()).hexdigest() if features.kind == "inception" else None
    return digest(saved_digest(path), weights)


def load_statistics(features, path, *, device="cpu"):
    """(statistics, sample shape): the real statistics saved by `fit`, ready for
    `fid_from_statistics` (nothing recomputed) and for KID (`models.fid.with_kid`), and the shape
    (C, H, W) of the data's images."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    sample_shape = tuple(state["sample_shape"].tolist())
    statistics = empty_statistics(extractor_for(features, state["classifier"], sample_shape).to(device))
    for name, value in state["real"].items():
        setattr(statistics, name, value.to(device))
    return with_kid(statistics, state["kid_real"].to(device)), sample_shape

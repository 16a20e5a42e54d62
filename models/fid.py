"""Frechet distance between Gaussians fitted to features of real and generated images (FID; Heusel
et al. 2017): ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)), computed by torchmetrics'
`FrechetInceptionDistance` with a feature module of ours.

What torchmetrics 1.9 does with a custom `feature=` module (torchmetrics/image/fid.py):
- at construction it reads `module.num_features` (int or tensor); only when that attribute is
  missing does it run a dummy [1, 3, 299, 299] forward to find the width;
- `update(imgs, real)` hands `imgs` to the module exactly as given: the `(imgs * 255).byte()`
  conversion that `normalize=True` implies applies to its built-in Inception only, and there is no
  resizing and no 3-channel requirement (`normalize` then only sets the dummy image's dtype);
- the features are accumulated in float64 as a sum and a sum of outer products; `compute()` takes
  Tr((S_r S_f)^(1/2)) as the sum of square roots of the eigenvalues of S_r S_f and returns the value
  cast back to the dtype the module returned;
- `reset()` with `reset_real_features=False` keeps the real sums and drops the fake ones.

Our convention, which keeps one call path for every extractor: the data's images in [-1, 1] enter
the metric as floats in [0, 1] (torchmetrics' `normalize=True` convention), (x + 1) / 2 clipped to
[0, 1] as when samples are saved as images (EDM's generate.py); each extractor maps that range back
to what its network expects. Extractors return float64, so the distance is float64 as well.
"""

import os
import warnings

import torch
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance, NoTrainInceptionV3

from .kid import KID_REAL, within

INCEPTION_WEIGHTS_URL = "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth"


class FeatureExtractor(nn.Module):
    """A classifier's penultimate activations (`Classifier.features`) as torchmetrics' `feature=`
    module: images [B, C, H, W] in [0, 1] are mapped back to [-1, 1], the classifier runs in eval
    mode without gradients, and the features [B, num_features] come back in float64."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier
        self.num_features = classifier.num_features

    @torch.no_grad()
    def forward(self, images):
        self.classifier.eval()
        return self.classifier.features(images * 2 - 1).double()


class InceptionFeatures(nn.Module):
    """Inception-v3's 2048 pool features as torchmetrics' `feature=` module: images [B, C, H, W] in
    [0, 1], gray ones repeated to RGB, quantized to uint8 as torchmetrics does for its own Inception
    ((x * 255) truncated), then resized to 299 x 299 inside the network; float64 out."""

    num_features = 2048

    def __init__(self, inception):
        super().__init__()
        self.inception = inception

    @torch.no_grad()
    def forward(self, images):
        rgb = images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
        return self.inception((rgb.clamp(0, 1) * 255).to(torch.uint8)).double()


def inception_extractor(weights_path):
    """`InceptionFeatures` with the FID Inception-v3 (the TF graph of 2015-12-05 converted to
    PyTorch) loaded from `weights_path`; resizing is TF1-compatible bilinear (antialias=False), as
    in the original FID code. Needs the `torch-fidelity` package."""
    if not os.path.isfile(weights_path):
        raise FileNotFoundError(
            f"Inception-v3 weights: no file at {str(weights_path)!r}. Download torch-fidelity's "
            f"weights-inception-2015-12-05-6726825d.pth from {INCEPTION_WEIGHTS_URL} (pytorch-fid's "
            "pt_inception-2015-12-05-6726825d.pth, with the same SHA-256 prefix, should be the same file) "
            "and pass its path; then `pip install torch-fidelity`."
        )
    path = os.fspath(weights_path)
    inception = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=path)
    inception.use_antialias = False  # read by torchmetrics >= 1.8 (default True); earlier versions always resize like TF1
    return InceptionFeatures(inception)


def accumulate(statistics, images, batch_size):
    """Add the features of images [N, C, H, W] in [-1, 1] to the real side of `statistics`."""
    for batch in images.split(batch_size):
        statistics.update(as_unit_range(batch).to(statistics.device), real=True)


def as_unit_range(images):
    return ((images + 1) / 2).clamp(0, 1)


FAKE_STATES = ("fake_features_sum", "fake_features_cov_sum", "fake_features_num_samples")


def features(extractor, images, batch_size=500):
    """Features [N, F] (float64, on the extractor's device) of images [N, C, H, W] in [-1, 1]."""
    device = next(extractor.parameters()).device
    return torch.cat([extractor(as_unit_range(batch).to(device)) for batch in images.split(batch_size)])


def moments(features, weights=None):
    """(sum, sum of outer products, count) of features [N, F], each counted `weights` [N] times (once
    by default): the share of one shard of the fake side, as torchmetrics accumulates it. Shards'
    moments add up to the moments of all their images."""
    weighted = features if weights is None else features * weights[:, None]
    return weighted.sum(dim=0), weighted.t().mm(features), len(features) if weights is None else int(weights.sum())


def resampling_weights(count, replicates, seed):
    """[replicates, count] float64: how often each of `count` samples is drawn in each of `replicates`
    bootstrap resamples with replacement (Efron 1979), from `seed`: the same for every cell, so that
    differences between cells are paired."""
    draws = torch.randint(count, (replicates, count), generator=torch.Generator().manual_seed(seed))
    return torch.zeros(replicates, count, dtype=torch.float64).scatter_add_(1, draws, torch.ones(replicates, count, dtype=torch.float64))


def bootstrap_fids(statistics, features, weights):
    """The FID of each bootstrap resample (`weights` [B, N]: `resampling_weights`) of the generated
    `features` [N, F] against the same real statistics; their standard deviation is the standard
    error of the FID that comes from the finite generated set."""
    return [fid_from_moments(statistics, [moments(features, w)]) for w in weights.to(features)]


def fid_from_moments(statistics, shards):
    """FID of the fake images whose features' `moments` per shard are `shards`, against the real
    features held by `statistics` (the fake side of any earlier call is replaced)."""
    statistics.reset()
    for name, parts in zip(FAKE_STATES, zip(*shards)):
        state = getattr(statistics, name)
        setattr(statistics, name, sum(parts, torch.zeros_like(state)).to(state))
    statistics.orig_dtype = torch.float64  # what `update` would have recorded: our extractors return float64
    with warnings.catch_warnings():  # the fake side was set from the moments, not by `update`
        warnings.filterwarnings("ignore", message=".*was called before the ``update`` method.*")
        return statistics.compute().item()


def real_statistics(real, extractor, batch_size=500):
    """A `FrechetInceptionDistance` holding the features of `real`: computed once, kept across
    `reset()` (reset_real_features=False), for `fid_from_statistics` to score many fake sets; and
    KID's real side (`with_kid`) from the first `KID_REAL` of them."""
    statistics = empty_statistics(extractor)
    accumulate(statistics, real, batch_size=batch_size)
    return with_kid(statistics, features(extractor, real[:KID_REAL], batch_size))


def with_kid(statistics, real):
    """`statistics` also holding what every KID against the real features `real` [M, d] needs
    (`models.kid.kids`): the features themselves (`kid_real`, rounded to float32 as statistics.pt
    keeps them, so that a KID is the same before and after saving) and their kernel's mean (`kid_within`)."""
    statistics.kid_real = real.float().double()
    statistics.kid_within = within(statistics.kid_real)
    return statistics


def empty_statistics(extractor):
    """A `FrechetInceptionDistance` over `extractor`'s features, on its device, holding no features yet."""
    statistics = FrechetInceptionDistance(feature=extractor, normalize=True, reset_real_features=False)
    return statistics.to(next(extractor.parameters()).device)


def fid_from_statistics(statistics, fake, batch_size=500):
    """FID of images `fake` in [-1, 1] against the real features held by `statistics`; the fake
    features of any earlier call are dropped first."""
    return fid_from_moments(statistics, [moments(features(statistics.inception, fake, batch_size))])


def fid(real, fake, extractor, batch_size=500):
    """FID between image sets `real` and `fake` [N, C, H, W] in [-1, 1] in the feature space of `extractor`."""
    return fid_from_statistics(real_statistics(real, extractor, batch_size), fake, batch_size)

"""FID by torchmetrics, the study's path (models/fid.py), against a direct computation on the same
features with scipy.linalg.sqrtm as pytorch-fid does it: ||mu_r - mu_f||^2 + Tr(S_r) + Tr(S_f)
- 2 Re Tr((S_r S_f)^(1/2)), covariances with N - 1. Value, relative difference and seconds of each
(median of interleaved repeats; each includes accumulating the statistics from the features, the
digits rows also extracting the features). Prints a markdown table and writes JSON.

Feature sets:
- the study's: the digits classifier (tasks/compute/feature_space.py `fit` on tasks/compute/data.py's digits, 64
  features) of the training images (real) against the held-out test images (the data floor) and
  against the test images with Gaussian noise of std 0.25 added;
- Inception-sized: random Gaussian features of 2,048 dimensions, 10,000 per set, of two different
  means and covariances, handed to torchmetrics by a feature module that returns its input.

    python -m benchmarks.fid_agreement [--params params.yaml] [--dim 2048] [--samples 10000] [--repeats 3] [--threads N]
        [--out benchmarks/results/fid_agreement.json]
"""

import statistics

import numpy as np
import scipy.linalg
import torch
from torchmetrics.image.fid import FrechetInceptionDistance

from models.fid import features, fid
from schema.params_file import load_params
from tasks.compute.data import prepare
from tasks.compute.feature_space import extractor_for, fit

from .helpers.measure import describe, interleaved, machine, markdown, paired, parse, parser, spread, write_json


def frechet_scipy(real, fake):
    """FID of float64 feature arrays [N, D] with scipy.linalg.sqrtm (Heusel et al. 2017; pytorch-fid)."""
    mu_r, mu_f = real.mean(0), fake.mean(0)
    cov_r, cov_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    root = scipy.linalg.sqrtm(cov_r @ cov_f)
    return float(((mu_r - mu_f) ** 2).sum() + np.trace(cov_r) + np.trace(cov_f) - 2 * np.trace(root).real)


class Given(torch.nn.Module):
    """A torchmetrics feature module for inputs that already are features [N, num_features]."""

    def __init__(self, num_features):
        super().__init__()
        self.num_features = num_features

    def forward(self, given):
        return given


def torchmetrics_on_features(real, fake):
    """torchmetrics' FID of feature tensors [N, D] (float64)."""
    metric = FrechetInceptionDistance(feature=Given(real.shape[1]), normalize=True)
    metric.update(real, real=True)
    metric.update(fake, real=False)
    return metric.compute().item()


def random_features(dim, samples, seed=0):
    """Two sets of Gaussian features [samples, dim], float64, whose means and covariances differ."""
    generator = torch.Generator().manual_seed(seed)
    mixing = torch.randn(dim, dim, generator=generator, dtype=torch.float64) / dim**0.5
    other = mixing + 0.3 * torch.randn(dim, dim, generator=generator, dtype=torch.float64) / dim**0.5
    real = torch.randn(samples, dim, generator=generator, dtype=torch.float64) @ mixing
    fake = torch.randn(samples, dim, generator=generator, dtype=torch.float64) @ other + 0.1
    return real, fake


def compared(name, torchmetrics_run, scipy_run, repeats):
    """One row: both values, their relative difference, and the seconds of each."""
    values = {"torchmetrics": torchmetrics_run(), "scipy": scipy_run()}
    times = interleaved({"torchmetrics": torchmetrics_run, "scipy": scipy_run}, repeats)
    return {
        "features": name,
        **values,
        "relative_difference": abs(values["torchmetrics"] - values["scipy"]) / abs(values["scipy"]),
        "seconds": {side: statistics.median(t) for side, t in times.items()},
        "time_ratio": paired(times["torchmetrics"], times["scipy"]),
    }


def main():
    arguments = parser("fid_agreement", __doc__, repeats=3, threads=True)
    arguments.add_argument("--dim", type=int, default=2048)
    arguments.add_argument("--samples", type=int, default=10_000)
    arguments.add_argument("--params", default="params.yaml")
    args = parse(arguments)
    study = load_params(args.params)
    data = prepare(study.data)
    state, _ = fit(study.features, data, log=lambda message: None)
    extractor = extractor_for(study.features, state["classifier"], tuple(data.train_images.shape[1:]))
    noisy = (data.test_images + 0.25 * torch.randn(data.test_images.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
    real, fake = random_features(args.dim, args.samples)
    rows = [
        compared(
            f"digits classifier ({study.features.num_features}): train vs {label}",
            lambda other=other: fid(data.train_images, other, extractor),
            lambda other=other: frechet_scipy(features(extractor, data.train_images).numpy(), features(extractor, other).numpy()),
            args.repeats,
        )
        for label, other in (("test (data floor)", data.test_images), ("noisy test", noisy))
    ]
    rows.append(
        compared(
            f"random Gaussian ({args.dim}), {args.samples} vs {args.samples}",
            lambda: torchmetrics_on_features(real, fake),
            lambda: frechet_scipy(real.numpy(), fake.numpy()),
            args.repeats,
        )
    )
    print(f"{describe(machine())}; median of {args.repeats} interleaved repeats\n")
    print(
        markdown(
            [
                "features",
                "FID torchmetrics",
                "FID scipy sqrtm",
                "relative difference",
                "seconds torchmetrics",
                "seconds scipy",
                "time torchmetrics / scipy",
            ],
            [
                [
                    row["features"],
                    f"{row['torchmetrics']:.6f}",
                    f"{row['scipy']:.6f}",
                    f"{row['relative_difference']:.1e}",
                    f"{row['seconds']['torchmetrics']:.3f}",
                    f"{row['seconds']['scipy']:.3f}",
                    spread(row["time_ratio"], 2),
                ]
                for row in rows
            ],
        )
    )
    write_json({"repeats": args.repeats, "rows": rows}, args.out)


if __name__ == "__main__":
    main()

"""Denoiser clipping at sampling time: each output D(x; sigma) of the model, the solver's estimate of
the data, is brought into the data range [-1, 1] before the solver uses it, so every solver gets it.
Each entry is `f(x0, **options)` on a batch of estimates [B, ...]."""

import torch
from torch import nn

from .broadcast import per_sample
from .tables import choose


def none(x0):
    """The denoiser's output as it is."""
    return x0


def clip(x0):
    """Clamped to [-1, 1] (Ho et al. 2020; diffusers' `clip_sample`, on by default there)."""
    return x0.clamp(-1, 1)


def dynamic_threshold(x0, *, percentile=0.995):
    """Dynamic thresholding (Saharia et al. 2022, Sec. 2.3): s = the `percentile` of |x0| per sample,
    at least 1; x0 clamped to [-s, s], then divided by s."""
    s = per_sample(torch.quantile(x0.abs().flatten(1).float(), percentile, dim=1).clamp(min=1), x0)
    return x0.clamp(-s, s) / s


CLIPPINGS = {"none": none, "clip": clip, "dynamic_threshold": dynamic_threshold}


class Clipped(nn.Module):
    """The denoiser `model` (D(x; sigma) of the solver contract) with `clipping` applied to its output."""

    def __init__(self, model, clipping="none", **options):
        super().__init__()
        self.model, self.options = model, options
        self._clip = choose(CLIPPINGS, "clipping", clipping)

    def forward(self, x, sigma):
        return self._clip(self.model(x, sigma), **self.options)

"""The solver contract: one signature for every sampler, checked inputs, counted and guarded calls."""

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .. import axes
from ..options import check_options


class Denoise:
    """Calls the user's denoiser with a per-sample sigma of shape [B]; counts calls; refuses
    non-finite outputs, naming the solver, the step and sigma."""

    def __init__(self, denoiser, solver_name, sigmas):
        self.denoiser, self.solver_name, self.sigmas, self.calls = denoiser, solver_name, sigmas, 0

    def __call__(self, x, sigma):
        self.calls += 1
        out = self.denoiser(x, torch.full((x.shape[0],), sigma, dtype=x.dtype, device=x.device))
        # A NaN or inf anywhere makes the sum non-finite: one reduction, and the exact test only then.
        if not torch.isfinite(out.sum()) and not torch.isfinite(out).all():
            step = 1 + sum(s >= sigma for s in self.sigmas[1:])
            raise FloatingPointError(
                f"solver {self.solver_name!r}: the denoiser returned NaN or inf at step "
                f"{min(step, len(self.sigmas) - 1)} of {len(self.sigmas) - 1} (sigma={sigma:.6g})"
            )
        return out


def derivative(denoise, x, sigma):
    """dx/dsigma = (x - D(x; sigma)) / sigma, the probability-flow ODE in sigma-space (EDM eq. 4)."""
    return (x - denoise(x, sigma)) / sigma


def to_zero(x, sigma, d):
    """The step from sigma into sigma = 0, where the log-SNR is infinite: Euler's step x - sigma d, with
    d = (x - D(x; sigma)) / sigma, lands on the denoiser's estimate D(x; sigma); every exponential
    integrator reduces to it (Lu et al. 2022), at the cost of the one call that gave d."""
    return x - sigma * d


def noise_like(x, generator):
    """Standard normal noise shaped like x, drawn from `generator` (on the generator's device), or from
    a list of one generator per sample, so that a sample's noise does not depend on its batch."""
    if isinstance(generator, list):
        return torch.stack([torch.randn(x.shape[1:], generator=g, dtype=x.dtype, device=g.device) for g in generator]).to(x.device)
    device = generator.device if generator is not None else x.device
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device).to(x.device)


def steps(sigmas):
    """Consecutive (sigma, sigma_next) pairs of a grid."""
    return zip(sigmas[:-1], sigmas[1:])


def check_sigmas(name, sigmas):
    """A grid as Python floats (float64 coefficients, no device syncs), or a ValueError that says why."""
    tensor = torch.as_tensor(sigmas, dtype=torch.float64)  # a list of floats stays float64
    if tensor.dim() != 1 or len(tensor) < 2:
        raise ValueError(f"solver {name!r}: sigmas must be a 1-D grid of at least 2 values, got shape {tuple(tensor.shape)}")
    values = tensor.tolist()
    for i, (a, b) in enumerate(steps(values)):
        if not (math.isfinite(a) and a > b >= 0):
            raise ValueError(
                f"solver {name!r}: sigmas must be finite, non-negative and strictly decreasing; "
                f"sigmas[{i}]={a:.6g}, sigmas[{i + 1}]={b:.6g}"
            )
    return values


@dataclass(frozen=True)
class Solver:
    """A sampler: `solver(denoiser, x, sigmas, *, generator=None, **options) -> x at sigmas[-1]`.

    `generator` is a torch.Generator or a list of one per sample. What the solver is (paper, order,
    stochastic, calls per step) and which options it accepts is declared in `models.axes.SOLVER_ENTRIES`;
    `defaults` are this entry's own defaults over the algorithm's.
    """

    name: str
    algorithm: Callable
    defaults: dict = field(default_factory=dict)

    @property
    def declared(self):
        return axes.SOLVER_ENTRIES[self.name]

    @property
    def order(self):
        return self.declared.order

    @property
    def stochastic(self):
        return self.declared.stochastic

    @property
    def options(self):
        """Keyword options with their defaults (the algorithm's, overridden by this entry's)."""
        parameters = inspect.signature(self.algorithm).parameters.values()
        found = {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY and p.name != "generator"}
        return {**found, **self.defaults}

    def nfe(self, num_steps):
        """Exact denoiser calls on a grid of `num_steps` steps that ends at sigma = 0."""
        return self.declared.nfe(num_steps)

    def steps_within(self, budget):
        """The most steps of a grid that ends at sigma = 0 whose calls fit in `budget` NFE."""
        return max(n for n in range(1, budget + 1) if self.nfe(n) <= budget)

    def __call__(self, denoiser, x, sigmas, *, generator=None, **options):
        return self.count_calls(denoiser, x, sigmas, generator=generator, **options)[0]

    def count_calls(self, denoiser, x, sigmas, *, generator=None, **options):
        """Run the solver and return (x, number of denoiser calls actually made)."""
        check_options("solver", self.name, self.declared, options)
        values = check_sigmas(self.name, sigmas)
        denoise = Denoise(denoiser, self.name, values)
        x = self.algorithm(denoise, x, values, generator=generator, **{**self.options, **options})
        return x, denoise.calls

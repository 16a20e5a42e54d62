"""A cell of the evaluation grid (clipping x solver x step schedule x NFE budget) and all that
computes it: the initial noise and bootstrap resamples every cell shares, its samples, the converged
ODE solution it is measured against, its FID with the bootstrap spread, its `ode_error`, and its
identity. Nothing here draws, writes files or talks to MLflow: a cell's identity names this module's
code, that of `tasks.compute.train` (the denoiser) and `tasks.compute.feature_space` (the feature space), with what they
import (`tasks.compute.provenance.cell_files`), so that code which only shows a cell recomputes none.

Per clipping, the reference comes first: EDM's Heun at the grid's reference_nfe (the model's own
ODE solution, scored with FID), measured against Heun at twice its steps, the solution the cells are
measured against, and that against Heun at twice its steps again, which tells the error ratio."""

import math
import time
from typing import NamedTuple

import torch

from models.choices import ClippingChoice, SolverChoice, StepScheduleChoice
from models.clipping import Clipped
from models.fid import bootstrap_fids, features, fid_from_moments, moments, resampling_weights
from models.kid import kids
from models.optimized_schedules import FITTED_SCHEDULES, distance
from models.solvers import SOLVERS

from .provenance import cell_code, digest
from .rows import fields
from .sample import cpu_noise_schedule, sample, sigmas_for, stream_noise, stream_seed

REFERENCE = ("heun", "karras")  # EDM's Heun on a Karras grid at the grid's reference_nfe: the model's own ODE solution
ENDS = ("sigma_min", "sigma_max")  # the step schedule options that move the ODE's ends: a reference per pair
KEPT = 64  # a cell's first samples kept (and shown), beside its ode_samples
SHARED = ("num_samples", "seed", "batch_size", "ode_samples", "bootstrap")  # the settings of evaluate every cell shares
CALIBRATION = 16  # calibration noises of a fitted step schedule unless its option `calibration` says


class Cell(NamedTuple):
    configuration: str
    solver: SolverChoice
    step_schedule: StepScheduleChoice
    budget: int
    reference_nfe: int  # of its grid: the reference its ode_error is measured against
    clipping: ClippingChoice = ClippingChoice(name="none")
    reference: bool = False

    @property
    def label(self):
        """solver/step_schedule/budget, and /clipping when the denoiser is clipped."""
        return "/".join([self.solver.label, self.step_schedule.label, str(self.budget)] + [self.clipping.label] * self.clipped)

    @property
    def clipped(self):
        return self.clipping.name != "none"

    @property
    def series(self):
        """solver / step_schedule, and / clipping when the denoiser is clipped: its line in a figure."""
        return " / ".join([self.solver.label, self.step_schedule.label] + [self.clipping.label] * self.clipped)

    @property
    def tags(self):
        """Its solver, step_schedule and clipping (labels with their options): MLflow tags to filter by."""
        return dict(solver=self.solver.label, step_schedule=self.step_schedule.label, clipping=self.clipping.label)

    @property
    def fitted(self):
        """Whether its step schedule is fitted to the model and solver (`models.optimized_schedules`)."""
        return self.step_schedule.entry.fitted

    @property
    def deterministic(self):
        """Whether its samples solve the probability-flow ODE: its solver draws no noise with its options."""
        return not self.solver.entry.draws_noise(self.solver.options)

    @property
    def ends(self):
        """The sigma range its step schedule asks for (`ENDS` options; none: the model's): the ODE's ends."""
        return tuple((key, value) for key, value in sorted(self.step_schedule.options.items()) if key in ENDS)

    @property
    def ode_reference(self):
        """The reference cell whose converged ODE solution a deterministic cell is measured against: same
        clipping, same ends, its grid's reference_nfe; None for a stochastic cell, which solves no ODE."""
        return reference_cell(self.configuration, self.reference_nfe, self.clipping, self.ends) if self.deterministic else None

    def row(self, **measured):
        """The cell's row (`tasks.compute.rows.CellRow`): its own labels, order, budget, reference and label,
        and every other field from `measured` (what sampling and scoring it gave: nfe, fid, fid_se,
        fid_bootstrap, kid, kid_se, kid_bootstrap, ode_error, error_ratio, seconds)."""
        own = dict(
            configuration=self.configuration,
            **self.tags,
            series=self.series,
            order=self.solver.entry.order,
            budget=self.budget,
            ode_reference=self.ode_reference and self.ode_reference.label,
            reference=self.reference,
            label=self.label,
        )
        values = {**own, **measured}
        return {name: values[name] for name in fields()}


def reference_cell(configuration, reference_nfe, clipping, ends=()):
    """The reference: EDM's Heun on a Karras grid over the sigma range `ends` (none: the model's) at
    `reference_nfe`, with the denoiser clipped by `clipping`."""
    solver, step_schedule = REFERENCE
    schedule = StepScheduleChoice(name=step_schedule, options=dict(ends))
    return Cell(configuration, SolverChoice(name=solver), schedule, reference_nfe, reference_nfe, clipping, reference=True)


class Shard(NamedTuple):
    features: torch.Tensor  # [n, F]: the features of its samples (models.fid.features)
    samples: torch.Tensor  # its first samples, unclipped, as many as its cell keeps
    sigmas: list  # the grid it ran, sigma_max .. 0
    nfe: int
    seconds: float


def cells(grid, configuration):
    """Every clipping x solver x step schedule (those it is used with) x NFE budget of a validated
    `schema.study.Grid`, for the configuration named `configuration`; each clipping's references come first (EDM's Heun at the
    grid's reference_nfe: the model's own, whose FID is the model's, then one per other sigma range
    the step schedules of its deterministic cells ask for)."""
    result = []
    for clipping in grid.clipping:
        own = [
            Cell(configuration, solver, step_schedule, budget, grid.reference_nfe, clipping)
            for solver in grid.solvers
            for step_schedule in grid.step_schedules
            if step_schedule.used_with(solver)
            for budget in grid.nfe
        ]
        references = [reference_cell(configuration, grid.reference_nfe, clipping)]
        references += [cell.ode_reference for cell in own if cell.deterministic]
        result += [*{reference.label: reference for reference in references}.values(), *own]
    return result


class Inputs(NamedTuple):
    noise: torch.Tensor  # [num_samples, ...]: the unit-variance initial noise of every cell
    resamples: torch.Tensor  # [bootstrap, num_samples]: the bootstrap resampling weights of every cell's FID


def shared_inputs(evaluate, sample_shape):
    """The initial noise and the bootstrap resamples that every cell of an evaluation shares (so that
    differences between cells are paired), each from a stream of its own of evaluate.seed."""
    noise = stream_noise(evaluate.num_samples, sample_shape, evaluate.seed, "initial noise")
    return Inputs(noise, resampling_weights(evaluate.num_samples, evaluate.bootstrap, stream_seed(evaluate.seed, "bootstrap")))


def cell_identity(study, cell, model, feature_space):
    """Equal identity, the same computation: the settings every cell shares (features, number of
    samples, seed, batch size, ODE samples, bootstrap resamples), the cell, the digests of the `model`'s
    weights and of the `feature_space` (`tasks.compute.feature_space.feature_space_digest`), the code the cell runs
    (`cell_code`) and, for a deterministic cell, its ODE reference: label (solver, grid, NFE, clipping,
    sigma range) and code."""
    reference = cell.ode_reference
    measured_against = reference and [reference.label, cell_code(SOLVERS[reference.solver.name])]
    settings = [study.features, study.evaluate.model_dump(mode="json", include=set(SHARED))]
    return digest(settings, cell.label, model, feature_space, cell_code(SOLVERS[cell.solver.name]), measured_against)


def shard_ranges(count, batch_size, shards):
    """(start, end) of up to `shards` runs of whole sampling batches covering `count` samples."""
    batches = math.ceil(count / batch_size)
    bounds = [round(i * batches / min(shards, batches)) for i in range(min(shards, batches) + 1)]
    return [(first * batch_size, min(end * batch_size, count)) for first, end in zip(bounds, bounds[1:])]


def schedule_identity(evaluate, cell, model):
    """Equal identity, the same fitted grid: the `model`'s weights digest, the cell's solver, step
    schedule, budget and clipping, the calibration stream's seed, and the code of its solver and of the
    teacher (EDM's Heun)."""
    solvers = [cell_code(SOLVERS[name]) for name in (cell.solver.name, "heun")]
    return digest(model, cell.solver.label, cell.step_schedule.label, cell.budget, cell.clipping.label, evaluate.seed, solvers)


def fit_sigmas(model, cell, evaluate, sample_shape, *, device="cpu"):
    """(sigmas, seconds) of the cell's fitted step schedule: for its solver (with its options), clipping
    and the most steps its budget affords, from `CALIBRATION` (or its option) calibration noises."""
    solver, options = SOLVERS[cell.solver.name], dict(cell.step_schedule.options)
    calibration = stream_noise(options.pop("calibration", CALIBRATION), sample_shape, evaluate.seed, "calibration").to(device)
    denoiser, start = Clipped(model.to(device), cell.clipping.name, **cell.clipping.options), time.perf_counter()
    sigmas = FITTED_SCHEDULES[cell.step_schedule.name](
        denoiser,
        cpu_noise_schedule(model),
        solver.steps_within(cell.budget),
        solver=solver.name,
        solver_options=cell.solver.options,
        calibration=calibration,
        **options,
    )
    return sigmas, time.perf_counter() - start


def sample_cell(model, cell, noise, evaluate, first=0, budget=None, fitted_sigmas=None, *, device="cpu"):
    """(samples, sigmas, NFE spent, seconds) of samples first .. first + len(noise) - 1 of a cell on the
    sigmas of its step schedule at `budget` (default its own), or on its `fitted_sigmas`; stochastic
    solvers draw from the solver-noise stream of evaluate.seed."""
    name, options = cell.step_schedule.name, cell.step_schedule.options
    sigmas = fitted_sigmas if fitted_sigmas is not None else sigmas_for(model, cell.solver.name, name, budget or cell.budget, **options)[0]
    samples, nfe, seconds = sample(
        model.to(device),
        cell.solver.name,
        sigmas,
        noise,
        seed=stream_seed(evaluate.seed, "solver noise"),
        batch_size=evaluate.batch_size,
        first=first,
        device=device,
        solver_options=cell.solver.options,
        clipping=cell.clipping.name,
        clipping_options=cell.clipping.options,
    )
    return samples, sigmas, nfe, seconds


def sample_shard(model, cell, noise, extractor, evaluate, first, fitted_sigmas=None, *, device="cpu"):
    """The Shard of samples first .. first + len(noise) - 1 of a cell (on its `fitted_sigmas`, if its
    step schedule is fitted), keeping those among the first max(KEPT, evaluate.ode_samples)."""
    samples, sigmas, nfe, seconds = sample_cell(model, cell, noise, evaluate, first, fitted_sigmas=fitted_sigmas, device=device)
    keep = max(KEPT, evaluate.ode_samples) - first
    return Shard(features(extractor, samples.clamp(-1, 1)), samples[: max(keep, 0)], sigmas.tolist(), nfe, seconds)


def ode_solution(model, reference, noise, evaluate, doublings=1, *, device="cpu"):
    """The ODE solution from the first evaluate.ode_samples of `noise` by the reference cell's solver
    and grid at 2^doublings times its steps (Heun's NFE 2n - 1): with one doubling, the converged
    solution the cells are measured against."""
    budget = 2**doublings * (reference.budget + 1) - 1
    return sample_cell(model, reference, noise[: evaluate.ode_samples], evaluate, budget=budget, device=device)[0]


def ode_error(samples, solution):
    """Root-mean-square distance, per sample and pixel, between the first samples and the ODE solution from the same noise."""
    return distance(samples[: len(solution)], solution)


def error_ratio(reference_error, solution, finer):
    """How much one doubling of the reference's steps divides its error (2^order in theory): its
    distance to the solution at twice its steps over that solution's distance to the `finer` solution
    at twice its steps again; inf when the two solutions agree exactly."""
    change = ode_error(solution, finer)
    return reference_error / change if change > 0 else math.inf


def measured_against(cell, solutions):
    """The solution a cell's ode_error is measured against: its ODE reference's in `solutions` (label ->
    solution), or None for a stochastic cell."""
    return cell.ode_reference and solutions[cell.ode_reference.label]


def score(cell, shards, statistics, resamples, solution, finer=None, fit_seconds=None):
    """(the row of a cell from its shards in order, its first `KEPT` samples): its grid, FID and KID
    of their merged features against the real ones of `statistics` (`models.fid.real_statistics`),
    their bootstrap values over the `resamples`, seconds summed, and for a deterministic
    cell its `ode_error` against `solution` (its ODE reference's); a reference also gets its
    `error_ratio` from the `finer` solution; a fitted one the seconds its grid took to fit."""
    merged = torch.cat([shard.features for shard in shards])
    samples = torch.cat([shard.samples for shard in shards])
    distance = ode_error(samples, solution) if cell.deterministic else None
    bootstrap = bootstrap_fids(statistics, merged, resamples)
    weights = torch.cat([resamples.new_ones(1, len(merged)), resamples])  # every sample once, then each resample
    kid = kids(statistics.kid_real, statistics.kid_within, merged, weights)
    row = cell.row(
        nfe=shards[0].nfe,
        sigmas=shards[0].sigmas,
        fit_seconds=fit_seconds,
        fid=fid_from_moments(statistics, [moments(merged)]),
        fid_se=torch.tensor(bootstrap, dtype=torch.float64).std().item(),
        fid_bootstrap=bootstrap,
        kid=kid[0].item(),
        kid_se=kid[1:].std().item(),
        kid_bootstrap=kid[1:].tolist(),
        seconds=sum(shard.seconds for shard in shards),
        ode_error=distance,
        error_ratio=error_ratio(distance, solution, finer) if cell.reference else None,
    )
    return row, samples[:KEPT]

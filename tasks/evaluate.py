"""Score one trained model: FID of every (solver, step schedule, NFE budget) cell, all from the same
initial noise, with its bootstrap standard error, and for a deterministic cell its `ode_error`: how
far its samples are from the converged solution of the model's probability-flow ODE from the same
noise. Per clipping, the reference comes first: EDM's Heun at evaluate.reference_nfe (the model's
own ODE solution, scored with FID), whose convergence is checked against Heun at twice its steps,
the solution the cells are measured against. A cell's samples come in shards (runs of whole
sampling batches, possibly on other workers) whose features make up the cell's FID; a cell logged
before by the same computation is read back instead."""

import math
import tempfile
from pathlib import Path
from typing import NamedTuple

import torch
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from models.axes import ClippingChoice, SolverChoice, StepScheduleChoice
from models.fid import bootstrap_fids, features, fid_from_moments, moments
from models.solvers import SOLVERS

from .provenance import cell_code, digest
from .report import sample_grid
from .sample import sample
from .tracking import configuration_key, log_cell, logged_cell

REFERENCE = ("heun", "karras")  # EDM's Heun on a Karras grid at evaluate.reference_nfe: the model's own ODE solution
ENDS = ("sigma_min", "sigma_max")  # the step schedule options that move the ODE's ends: a reference per pair
GRID_IMAGES = 64  # samples a cell's grid shows
CELL_FILE = "cell.pt"  # a cell run's artifact: its first samples, bootstrap FIDs and (reference) ODE solution


class Cell(NamedTuple):
    configuration: str
    solver: SolverChoice
    step_schedule: StepScheduleChoice
    budget: int
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
    def deterministic(self):
        """Whether its samples solve the probability-flow ODE: its solver draws no noise with its options."""
        return not self.solver.entry.draws_noise(self.solver.options)

    @property
    def ends(self):
        """The sigma range its step schedule asks for (`ENDS` options; none: the model's): the ODE's ends."""
        return tuple((key, value) for key, value in sorted(self.step_schedule.options.items()) if key in ENDS)

    def ode_reference(self, reference_nfe):
        """The reference cell whose converged ODE solution this cell is measured against: same clipping, same ends."""
        solver, step_schedule = REFERENCE
        schedule = StepScheduleChoice(name=step_schedule, options=dict(self.ends))
        return Cell(self.configuration, SolverChoice(name=solver), schedule, reference_nfe, self.clipping, reference=True)

    def row(self, nfe, fid, fid_bootstrap, seconds, ode_error, ode_reference):
        """The cell's row (`tasks.report`): configuration, solver and step_schedule (labels with their
        options), clipping, series, order (the solver's, in theory), budget, nfe (spent), fid, fid_se (the standard deviation of
        fid_bootstrap, the FIDs of bootstrap resamples), ode_error (None for a stochastic cell) and
        the label of its ode_reference, seconds, reference, label."""
        return dict(
            configuration=self.configuration,
            **self.tags,
            series=self.series,
            order=self.solver.entry.order,
            budget=self.budget,
            nfe=nfe,
            fid=fid,
            fid_se=torch.tensor(fid_bootstrap, dtype=torch.float64).std().item(),
            fid_bootstrap=fid_bootstrap,
            ode_error=ode_error,
            ode_reference=ode_reference,
            seconds=seconds,
            reference=self.reference,
            label=self.label,
        )


class Shard(NamedTuple):
    features: torch.Tensor  # [n, F]: the features of its samples (models.fid.features)
    samples: torch.Tensor  # its first samples, unclipped, as many as its cell keeps
    nfe: int
    seconds: float


def cells(grid, configuration):
    """Every clipping x solver x step schedule x NFE budget of a validated `flows.params.Grid`, for the
    configuration named `configuration`; each clipping's references come first (EDM's Heun at
    reference_nfe, one per sigma range the step schedules ask for, the model's own first)."""
    result = []
    for clipping in grid.clipping:
        own = [
            Cell(configuration, solver, step_schedule, budget, clipping)
            for solver in grid.solvers
            for step_schedule in grid.step_schedules
            for budget in grid.nfe
        ]
        references = {
            ref.label: ref for ref in (cell.ode_reference(grid.reference_nfe) for cell in sorted(own, key=lambda cell: bool(cell.ends)))
        }
        result += [*references.values(), *own]
    return result


def cell_key(study, config, training, cell, model, features):
    """(the MLflow key of a cell, its identity). Equal identity, the same computation: the sampling
    settings (features, number of samples, seed, batch size, ODE samples, bootstrap resamples), the
    cell and its ODE reference, the digests of the `model`'s weights and of the `features` space
    (`tasks.features.feature_space_digest`), and the code the cell runs (`cell_code`). The key puts
    it under its configuration run's key (`training`: the training identity) and ends with the
    cell's label."""
    evaluate = study.evaluate
    settings = [study.features, evaluate.model_dump(mode="json", include={"num_samples", "seed", "batch_size", "ode_samples", "bootstrap"})]
    reference = cell.ode_reference(evaluate.reference_nfe).label
    identity = digest(settings, cell.label, reference, model, features, cell_code(SOLVERS[cell.solver.name]))
    return f"{configuration_key(study, config, training)}/{identity}/{cell.label}", identity


def shard_ranges(count, batch_size, shards):
    """(start, end) of up to `shards` runs of whole sampling batches covering `count` samples."""
    batches = math.ceil(count / batch_size)
    bounds = [round(i * batches / min(shards, batches)) for i in range(min(shards, batches) + 1)]
    return [(first * batch_size, min(end * batch_size, count)) for first, end in zip(bounds, bounds[1:])]


def sample_cell(model, cell, noise, evaluate, first=0, budget=None, *, device="cpu"):
    """(samples, NFE spent, seconds) of samples first .. first + len(noise) - 1 of a cell (at
    `budget` instead of its own if given); stochastic solvers are seeded with seed + 1."""
    return sample(
        model.to(device),
        cell.solver.name,
        cell.step_schedule.name,
        budget or cell.budget,
        noise,
        seed=evaluate.seed + 1,
        batch_size=evaluate.batch_size,
        first=first,
        device=device,
        solver_options=cell.solver.options,
        step_schedule_options=cell.step_schedule.options,
        clipping=cell.clipping.name,
        clipping_options=cell.clipping.options,
    )


def sample_shard(model, cell, noise, extractor, evaluate, first, *, device="cpu"):
    """The Shard of samples first .. first + len(noise) - 1 of a cell, keeping those among the first
    max(GRID_IMAGES, evaluate.ode_samples)."""
    samples, nfe, seconds = sample_cell(model, cell, noise, evaluate, first, device=device)
    keep = max(GRID_IMAGES, evaluate.ode_samples) - first
    return Shard(features(extractor, samples.clamp(-1, 1)), samples[: max(keep, 0)], nfe, seconds)


def ode_solution(model, reference, noise, evaluate, *, device="cpu"):
    """The converged ODE solution from the first evaluate.ode_samples of `noise`: the reference cell's
    solver and grid at twice its steps (Heun's NFE 2n - 1: budget 2 * reference_nfe + 1)."""
    return sample_cell(model, reference, noise[: evaluate.ode_samples], evaluate, budget=2 * reference.budget + 1, device=device)[0]


def ode_error(samples, solution):
    """Root-mean-square distance, per sample and pixel, between the first samples and the ODE solution from the same noise."""
    return (samples[: len(solution)].double() - solution.double()).pow(2).mean().sqrt().item()


def cell_row(cell, shards, statistics, weights, solution, reference_nfe):
    """(the row of a cell from its shards in order, the samples a grid shows): FID of their merged
    features, its bootstrap FIDs over the resampling `weights`, seconds summed, and for a
    deterministic cell its `ode_error` against `solution`, the converged solution of its ODE reference."""
    merged = torch.cat([shard.features for shard in shards])
    samples = torch.cat([shard.samples for shard in shards])
    error = ode_error(samples, solution) if cell.deterministic else None
    row = cell.row(
        nfe=shards[0].nfe,
        fid=fid_from_moments(statistics, [moments(merged)]),
        fid_bootstrap=bootstrap_fids(statistics, merged, weights),
        seconds=sum(shard.seconds for shard in shards),
        ode_error=error,
        ode_reference=cell.ode_reference(reference_nfe).label,
    )
    return row, samples[:GRID_IMAGES]


def caption(row):
    """A sample grid's caption: configuration, solver, step schedule (and clipping), NFE, FID."""
    return f"{row['configuration']}: {row['series']}, NFE {row['nfe']}\nFID {row['fid']:.2f} ± {row['fid_se']:.2f}"


def logged_row(client, experiment_id, key, cell, grid):
    """(row, the samples a grid shows, its ODE solution or None) of a cell logged under `key` (the
    same computation), its grid drawn again as the file `grid`; None if it has to be computed."""
    logged = logged_cell(client, experiment_id, key)
    if logged is None:
        return None
    cell_run, metrics = logged
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = download_artifacts(run_id=cell_run, artifact_path=CELL_FILE, dst_path=folder, tracking_uri=client.tracking_uri)
        except MlflowException:
            return None
        saved = torch.load(path, weights_only=True)
    row = cell.row(
        nfe=int(metrics["nfe"]),
        fid=metrics["fid"],
        fid_bootstrap=saved["fid_bootstrap"],
        seconds=metrics["seconds"],
        ode_error=metrics.get("ode_error"),
        ode_reference=saved["ode_reference"],
    )
    sample_grid(saved["samples"], grid, caption=caption(row))
    return row, saved["samples"], saved["solution"]


def record_cell(client, experiment_id, parent, key, row, tags, samples, solution, grid):
    """Draw a computed cell's samples as its grid, the file `grid`, save its first samples, bootstrap
    FIDs and ODE `solution` (a reference's; else None) as `CELL_FILE`, and log the cell under `key`
    as a finished run nested under `parent`, with both files."""
    sample_grid(samples, grid, caption=caption(row))
    run_id = log_cell(client, experiment_id, parent, key, row, tags)
    client.log_artifact(run_id, str(grid))
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / CELL_FILE
        torch.save(dict(samples=samples, fid_bootstrap=row["fid_bootstrap"], ode_reference=row["ode_reference"], solution=solution), saved)
        client.log_artifact(run_id, str(saved))

"""Score one trained model: FID of every (solver, step schedule, NFE budget) cell, all from the same
initial noise, plus a high-NFE reference, against real statistics computed once. A cell's samples
come in shards (runs of whole sampling batches, possibly on other workers) whose feature moments add
up to the cell's FID; a cell logged before by the same computation is read back instead."""

import math
from typing import Any, NamedTuple

import torch
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from models.axes import ClippingChoice, SolverChoice, StepScheduleChoice
from models.fid import fid_from_moments, moments
from models.solvers import SOLVERS

from .provenance import cell_code, digest
from .report import sample_grid
from .sample import sample
from .tracking import configuration_key, log_cell, logged_cell

REFERENCE = ("heun", "karras")  # EDM's Heun on a Karras grid at evaluate.reference_nfe: the model's own ODE solution
GRID_IMAGES = 64  # samples a cell's grid shows


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

    def row(self, nfe, fid, seconds):
        """The cell's row (`tasks.report`): configuration, solver and step_schedule (labels with their
        options), clipping, series, budget, nfe (spent), fid, seconds, reference, label."""
        return dict(
            configuration=self.configuration,
            solver=self.solver.label,
            step_schedule=self.step_schedule.label,
            clipping=self.clipping.label,
            series=" / ".join([self.solver.label, self.step_schedule.label] + [self.clipping.label] * self.clipped),
            budget=self.budget,
            nfe=nfe,
            fid=fid,
            seconds=seconds,
            reference=self.reference,
            label=self.label,
        )


class Shard(NamedTuple):
    moments: Any  # the feature moments of its samples (models.fid.moments)
    samples: torch.Tensor  # its first samples, as many as a grid shows
    nfe: int
    seconds: float


def cells(grid, configuration):
    """Every clipping x solver x step schedule x NFE budget of a validated `flows.params.Grid`, each
    clipping followed by its reference, for the configuration named `configuration`."""
    reference = SolverChoice.model_validate(REFERENCE[0]), StepScheduleChoice.model_validate(REFERENCE[1])
    return [
        cell
        for clipping in grid.clipping
        for cell in [
            *(
                Cell(configuration, solver, step_schedule, budget, clipping)
                for solver in grid.solvers
                for step_schedule in grid.step_schedules
                for budget in grid.nfe
            ),
            Cell(configuration, *reference, grid.reference_nfe, clipping, reference=True),
        ]
    ]


def cell_key(study, config, training, cell, model, features):
    """(the MLflow key of a cell, its identity). Equal identity, the same computation: the sampling
    settings (features, number of samples, seed, batch size), the cell, the digests of the `model`'s
    weights and of the `features` space (`tasks.features.feature_space_digest`), and the code the
    cell runs (`cell_code`). The key puts it under its configuration run's key (`training`: the
    training identity) and ends with the cell's label."""
    settings = [study.features, study.evaluate.model_dump(mode="json", include={"num_samples", "seed", "batch_size"})]
    identity = digest(settings, cell.label, model, features, cell_code(SOLVERS[cell.solver.name]))
    return f"{configuration_key(study, config, training)}/{identity}/{cell.label}", identity


def shard_ranges(count, batch_size, shards):
    """(start, end) of up to `shards` runs of whole sampling batches covering `count` samples."""
    batches = math.ceil(count / batch_size)
    bounds = [round(i * batches / min(shards, batches)) for i in range(min(shards, batches) + 1)]
    return [(first * batch_size, min(end * batch_size, count)) for first, end in zip(bounds, bounds[1:])]


def sample_shard(model, cell, noise, extractor, evaluate, first, *, device="cpu"):
    """The Shard of samples first .. first + len(noise) - 1 of a cell; stochastic solvers are seeded with seed + 1."""
    samples, nfe, seconds = sample(
        model.to(device),
        cell.solver.name,
        cell.step_schedule.name,
        cell.budget,
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
    return Shard(moments(extractor, samples.clamp(-1, 1)), samples[:GRID_IMAGES], nfe, seconds)


def cell_row(cell, shards, statistics):
    """(the row of a cell from its shards in order: FID of their merged features, seconds summed; the samples a grid shows)."""
    fid = fid_from_moments(statistics, [shard.moments for shard in shards])
    row = cell.row(nfe=shards[0].nfe, fid=fid, seconds=sum(shard.seconds for shard in shards))
    return row, torch.cat([shard.samples for shard in shards])[:GRID_IMAGES]


def logged_row(client, experiment_id, key, cell, grid):
    """The row of a cell logged under `key` (the same computation), with its sample grid downloaded
    to the file `grid`; None if it has to be computed."""
    logged = logged_cell(client, experiment_id, key)
    if logged is None:
        return None
    cell_run, metrics = logged
    grid.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_artifacts(run_id=cell_run, artifact_path=grid.name, dst_path=str(grid.parent), tracking_uri=client.tracking_uri)
    except MlflowException:
        return None
    return cell.row(nfe=int(metrics["nfe"]), fid=metrics["fid"], seconds=metrics["seconds"])


def record_cell(client, experiment_id, parent, key, row, tags, samples, grid):
    """Draw a computed cell's samples as its grid, `grid`, and log the cell under `key` as a finished
    run nested under `parent`, with the grid."""
    sample_grid(samples, grid)
    client.log_artifact(log_cell(client, experiment_id, parent, key, row, tags), str(grid))

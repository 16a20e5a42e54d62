"""Score one trained model: FID of every (solver, step schedule, NFE budget) cell, all from the same
initial noise, plus a high-NFE reference, against real statistics computed once."""

import math
from typing import Any, NamedTuple

import torch

from models.fid import fid_from_moments, moments
from models.solvers import SOLVERS

from .provenance import cell_code, digest
from .sample import sample

REFERENCE = ("heun", "karras")


class Cell(NamedTuple):
    solver: str
    solver_options: dict[str, Any]
    step_schedule: str
    schedule_options: dict[str, Any]
    budget: int
    reference: bool = False

    @property
    def solver_label(self):
        return labelled(self.solver, self.solver_options)

    @property
    def schedule_label(self):
        return labelled(self.step_schedule, self.schedule_options)

    @property
    def label(self):
        return f"{self.solver_label}/{self.schedule_label}/{self.budget}"


def labelled(name, options):
    """`name`, or `name[key=value,...]` when options are given: one label per table entry."""
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]" if options else name


def cells(evaluate):
    """Every solver x step schedule x NFE budget of a validated `flows.params.Evaluate`, then the
    reference: EDM's Heun on a Karras grid at `reference_nfe`."""
    grid = [Cell(s.name, s.options, d.name, d.options, b) for s in evaluate.solvers for d in evaluate.step_schedules for b in evaluate.nfe]
    return grid + [Cell(REFERENCE[0], {}, REFERENCE[1], {}, evaluate.reference_nfe, reference=True)]


def cell_identity(cell, settings, model, statistics):
    """Equal identity, the same computation: the sampling `settings`, the cell, the digests of the
    `model`'s weights and of the real `statistics`, and the code the cell runs (`cell_code`)."""
    return digest(settings, cell.label, model, statistics, cell_code(SOLVERS[cell.solver]))


def shard_ranges(count, batch_size, shards):
    """(start, end) of up to `shards` runs of whole sampling batches covering `count` samples."""
    batches = math.ceil(count / batch_size)
    bounds = [round(i * batches / min(shards, batches)) for i in range(min(shards, batches) + 1)]
    return [(first * batch_size, min(end * batch_size, count)) for first, end in zip(bounds, bounds[1:])]


def sample_shard(model, cell, noise, extractor, evaluate, first, *, device="cpu", keep=None):
    """One shard of a cell, samples first .. first + len(noise) - 1: (feature moments of its samples,
    its first `keep` samples (all if None), NFE spent, seconds); stochastic solvers are seeded with seed + 1."""
    samples, nfe, seconds = sample(
        model.to(device), cell.solver, cell.step_schedule, cell.budget, noise, seed=evaluate.seed + 1, batch_size=evaluate.batch_size,
        first=first, device=device, solver_options=cell.solver_options, schedule_options=cell.schedule_options,
    )
    return moments(extractor, samples.clamp(-1, 1)), samples[:keep], nfe, seconds


def cell_row(cell, shards, statistics):
    """The row of a cell from its shards: solver and step_schedule (labels with their options),
    budget, nfe (spent), fid (of the merged features), seconds (summed), reference."""
    fid = fid_from_moments(statistics, [shard[0] for shard in shards])
    return dict(solver=cell.solver_label, step_schedule=cell.schedule_label, budget=cell.budget, nfe=shards[0][2], fid=fid,
                seconds=sum(shard[3] for shard in shards), reference=cell.reference)


def score_cell(model, cell, noise, statistics, evaluate, *, device="cpu", shards=1):
    """(row, samples) of one cell sampled from `noise` in `shards` shards one after another."""
    parts = [sample_shard(model, cell, noise[start:end], statistics.inception, evaluate, start, device=device)
             for start, end in shard_ranges(len(noise), evaluate.batch_size, shards)]
    return cell_row(cell, parts, statistics), torch.cat([part[1] for part in parts])

"""Score one trained model: FID of every (solver, step schedule, NFE budget) cell, all from the same
initial noise, plus a high-NFE reference, against real statistics computed once."""

from typing import Any, NamedTuple

from models.fid import fid_from_statistics

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


def score_cell(model, cell, noise, statistics, evaluate, *, device="cpu"):
    """(row, samples) of one cell: samples from `noise` (stochastic solvers seeded with seed + 1),
    row = solver and step_schedule (labels with their options), budget, nfe (spent), fid, seconds,
    reference."""
    samples, nfe, seconds = sample(
        model, cell.solver, cell.step_schedule, cell.budget, noise, seed=evaluate.seed + 1, batch_size=evaluate.batch_size,
        device=device, solver_options=cell.solver_options, schedule_options=cell.schedule_options,
    )
    fid = fid_from_statistics(statistics, samples.clamp(-1, 1))
    row = dict(solver=cell.solver_label, step_schedule=cell.schedule_label, budget=cell.budget, nfe=nfe, fid=fid, seconds=seconds, reference=cell.reference)
    return row, samples

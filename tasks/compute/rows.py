"""A cell's row: the one record that every file and run of a cell is made from. Each field says where
it goes: `CSV`, a column of fid.csv and of the report's fid_vs_nfe.csv; `CELL_METRIC`, a metric of the
cell's MLflow run (read back from there when the cell is reused); `SERIES_METRIC`, a metric of its series
run at step = NFE, which MLflow's chart views draw. Adding a per-cell number means the code that
computes it (`tasks.compute.cells`) and a field here; the files and runs follow."""

from types import NoneType
from typing import Annotated, TypedDict, get_args, get_type_hints

CSV, CELL_METRIC, SERIES_METRIC = "csv", "cell metric", "series metric"


class CellRow(TypedDict):
    configuration: Annotated[str, CSV]
    solver: Annotated[str, CSV]  # labels with their options, e.g. karras[rho=7]
    step_schedule: Annotated[str, CSV]
    clipping: Annotated[str, CSV]
    series: Annotated[str, CSV]  # solver / step schedule (/ clipping): its line in a figure
    order: int  # the solver's, in theory
    budget: Annotated[int, CSV]
    nfe: Annotated[int, CSV, CELL_METRIC]  # spent
    sigmas: list[float]  # the grid it ran, sigma_max .. 0
    fit_seconds: Annotated[float | None, CELL_METRIC]  # a fitted step schedule's: what fitting it took; else None
    fid: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]
    fid_se: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]  # the standard deviation of fid_bootstrap
    fid_bootstrap: list[float]  # the FIDs of the bootstrap resamples
    kid: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]  # `models.kid`: unbiased at any sample count
    kid_se: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]  # the standard deviation of kid_bootstrap
    kid_bootstrap: list[float]  # the KIDs of the same bootstrap resamples
    ode_error: Annotated[float | None, CSV, CELL_METRIC, SERIES_METRIC]  # None for a stochastic cell
    ode_reference: str | None  # the label of the reference it is measured against
    error_ratio: Annotated[float | None, CELL_METRIC]  # a reference's: `tasks.compute.cells.error_ratio`
    seconds: Annotated[float, CSV, CELL_METRIC]
    reference: bool
    label: str  # solver/step_schedule/budget(/clipping)


def hints():
    """{field: its annotation} of `CellRow` as this module holds it when called, in order."""
    return get_type_hints(CellRow, include_extras=True)


def fields(mark=None):
    """The names of the fields of `CellRow`, in order; with `mark`, those it marks (`CSV`, `CELL_METRIC`, `SERIES_METRIC`)."""
    return [name for name, hint in hints().items() if mark is None or mark in getattr(hint, "__metadata__", ())]


def required(mark):
    """The fields marked `mark` that every row has a value for (None is not among their types)."""
    return [name for name in fields(mark) if NoneType not in get_args(hints()[name].__origin__)]


def from_metrics(metrics):
    """The `CELL_METRIC` fields of a row from an MLflow run's metrics (floats): integers as integers, a
    metric not logged (not measured) as None."""
    kinds = {name: hints()[name].__origin__ for name in fields(CELL_METRIC)}
    return {name: None if name not in metrics else int(metrics[name]) if kind is int else metrics[name] for name, kind in kinds.items()}

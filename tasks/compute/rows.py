"""A cell's row: the one record that every file, run, view and table of a cell is made from. Each
field says where it goes:
- `CSV`: a column of fid.csv and of the report's fid_vs_nfe.csv (and so of DVC's plots);
- `CELL_METRIC`: a metric of the cell's MLflow run (read back from there when the cell is reused);
- `SERIES_METRIC`: a metric of its series run at step = NFE; `CHART`: one of those the saved MLflow
  view draws, in this order;
- `TABLE`: a column of the configuration's cells table in the Prefect UI;
- `Score(label)`: a number cells and models are ranked and compared by, with its standard error
  `<name>_se` and bootstrap values `<name>_bootstrap` (paired differences): it goes to best.csv, the
  summary's reference and the ablation tables' reference columns; the first score ranks the best cell.
A field that is a list is kept in the cell's MLflow file `cell.pt` instead of as a metric. Adding a
per-cell number means the code that computes it (`tasks.compute.cells.score`) and a field here."""

from dataclasses import dataclass
from types import NoneType
from typing import Annotated, TypedDict, get_args, get_origin, get_type_hints

CSV, CELL_METRIC, SERIES_METRIC, CHART, TABLE = "csv", "cell metric", "series metric", "chart", "table"


@dataclass(frozen=True)
class Shown:
    """How a number is named where it is shown, and its format (a format spec; None: as it is)."""

    label: str
    spec: str | None = None


@dataclass(frozen=True)
class Score(Shown):
    """A number cells are ranked by, shown as "value ± standard error": to `decimals` places, or
    (None) to those that give its standard error two significant digits."""

    decimals: int | None = None


class CellRow(TypedDict):
    configuration: Annotated[str, CSV]
    solver: Annotated[str, CSV, TABLE]  # labels with their options, e.g. karras[rho=7]
    step_schedule: Annotated[str, CSV, TABLE]
    clipping: Annotated[str, CSV, TABLE]
    series: Annotated[str, CSV]  # solver / step schedule (/ clipping): its line in a figure
    order: int  # the solver's, in theory
    budget: Annotated[int, CSV]
    nfe: Annotated[int, CSV, CELL_METRIC, TABLE, Shown("NFE")]  # spent
    sigmas: list[float]  # the grid it ran, sigma_max .. 0
    fit_seconds: Annotated[float | None, CELL_METRIC]  # a fitted step schedule's: what fitting it took; else None
    fid: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC, CHART, TABLE, Score("FID", decimals=2)]
    fid_se: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]  # the standard deviation of fid_bootstrap
    fid_bootstrap: list[float]  # the FIDs of the bootstrap resamples
    kid: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC, CHART, TABLE, Score("KID")]  # `models.kid`: unbiased at any sample count
    kid_se: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]  # the standard deviation of kid_bootstrap
    kid_bootstrap: list[float]  # the KIDs of the same bootstrap resamples
    ode_error: Annotated[float | None, CSV, CELL_METRIC, SERIES_METRIC, CHART, TABLE, Shown("ODE error", ".2e")]  # None: stochastic
    ode_reference: str | None  # the label of the reference it is measured against
    error_ratio: Annotated[float | None, CELL_METRIC]  # a reference's: `tasks.compute.cells.error_ratio`
    seconds: Annotated[float, CSV, CELL_METRIC]
    reference: bool
    label: str  # solver/step_schedule/budget(/clipping)


def hints():
    """{field: its annotation} of `CellRow` as this module holds it when called, in order."""
    return get_type_hints(CellRow, include_extras=True)


def marks(name):
    """The marks and `Shown` of field `name`."""
    return getattr(hints()[name], "__metadata__", ())


def fields(mark=None):
    """The names of the fields of `CellRow`, in order; with `mark`, those it marks (`CSV`, `CELL_METRIC`, ...)."""
    return [name for name in hints() if mark is None or mark in marks(name)]


def shown(name):
    """The `Shown` of field `name`: its own, or its name as it is."""
    return next((mark for mark in marks(name) if isinstance(mark, Shown)), Shown(name))


def scores():
    """The `Score` fields, in order: the first ranks the best cell."""
    return [name for name in fields() if isinstance(shown(name), Score)]


def in_cell_file():
    """The fields that are lists (no metric): kept in a cell's `cell.pt`."""
    bare = lambda hint: hint.__origin__ if get_origin(hint) is Annotated else hint
    return [name for name, hint in hints().items() if get_origin(bare(hint)) is list]


def required(mark):
    """The fields marked `mark` that every row has a value for (None is not among their types)."""
    return [name for name in fields(mark) if NoneType not in get_args(hints()[name].__origin__)]


def charted():
    """What the saved MLflow view draws, as a phrase: "FID, KID and ODE error"."""
    labels = [shown(name).label for name in fields(CHART)]
    return ", ".join(labels[:-1]) + f" and {labels[-1]}" if len(labels) > 1 else labels[0]


def from_metrics(metrics):
    """The `CELL_METRIC` fields of a row from an MLflow run's metrics (floats): integers as integers, a
    metric not logged (not measured) as None."""
    kinds = {name: hints()[name].__origin__ for name in fields(CELL_METRIC)}
    return {name: None if name not in metrics else int(metrics[name]) if kind is int else metrics[name] for name, kind in kinds.items()}

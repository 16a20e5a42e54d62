"""A cell's record, apart from its computation (`tasks.cells`): the nested MLflow run a computed cell
is logged as, with its captioned sample grid and `CELL_FILE` (its first samples, bootstrap FIDs and,
for a reference, its ODE solution), and the same read back for a cell logged before by the same
computation (same key: `tasks.tracking.cell_key`)."""

import tempfile
from pathlib import Path

import torch
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from .images import sample_grid
from .rows import from_metrics
from .tracking import finish_run, log_cell, logged_cell

CELL_FILE = "cell.pt"  # a cell run's artifact: its first samples, bootstrap FIDs and (reference) ODE solution


def caption(row):
    """A sample grid's caption: configuration, solver, step schedule (and clipping), NFE, FID."""
    return f"{row['configuration']}: {row['series']}, NFE {row['nfe']}\nFID {row['fid']:.2f} ± {row['fid_se']:.2f}"


def logged_row(run, cell, grid):
    """(row, the samples a grid shows, its ODE solution or None) of a cell logged under its `run`'s key
    (`tasks.tracking.CellRun`: the same computation), its grid drawn again as the file `grid`; None if
    it has to be computed."""
    logged = logged_cell(run.client, run.experiment_id, run.key)
    if logged is None:
        return None
    cell_run, metrics = logged
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = download_artifacts(run_id=cell_run, artifact_path=CELL_FILE, dst_path=folder, tracking_uri=run.client.tracking_uri)
        except MlflowException:
            return None
        saved = torch.load(path, weights_only=True)
    row = cell.row(fid_bootstrap=saved["fid_bootstrap"], **from_metrics(metrics))
    sample_grid(saved["samples"], grid, caption=caption(row))
    return row, saved["samples"], saved["solution"]


def record_cell(run, row, samples, solution, grid):
    """Draw a computed cell's samples as its grid, the file `grid`, save its first samples, bootstrap
    FIDs and ODE `solution` (a reference's; else None) as `CELL_FILE`, and log the cell as its `run`
    (`tasks.tracking.CellRun`), finished, with both files."""
    sample_grid(samples, grid, caption=caption(row))
    run_id = log_cell(run.client, run.experiment_id, run.parent, run.key, row, run.tags)
    with tempfile.TemporaryDirectory() as folder:
        saved = Path(folder) / CELL_FILE
        torch.save(dict(samples=samples, fid_bootstrap=row["fid_bootstrap"], solution=solution), saved)
        finish_run(run.client, run_id, [grid, saved])

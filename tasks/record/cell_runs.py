"""A cell's record, apart from its computation (`tasks.compute.cells`): the nested MLflow run a
computed cell is logged as, with its captioned samples picture and `CELL_FILE` (its first samples, the
row's list fields and, for a reference, its ODE solution), and the same read back for a cell logged
before by the same computation (same key: `tasks.record.tracking.cell_key`); likewise the run of a
fitted step schedule."""

import json
import tempfile
from pathlib import Path

import torch
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException

from tasks.compute.rows import from_metrics, in_cell_file
from tasks.report.figures import save_figure, sigmas_figure
from tasks.report.sample_images import save_samples_png

from .tracking import finish_run, finished_run, log_cell, logged_cell, run_for

CELL_FILE = "cell.pt"  # a cell run's artifact: its first samples, the row's list fields (`in_cell_file`) and (reference) ODE solution
SCHEDULE_FILES = ("step_schedule.json", "step_schedule.png")  # a fitted step schedule's run's artifacts


def caption(row):
    """A samples picture's caption: configuration, solver, step schedule (and clipping), NFE, FID."""
    return f"{row['configuration']}: {row['series']}, NFE {row['nfe']}\nFID {row['fid']:.2f} ± {row['fid_se']:.2f}"


def logged_row(run, cell, samples_png):
    """(row, the samples its picture shows, its ODE solution or None) of a cell logged under its `run`'s
    key (`tasks.record.tracking.CellRun`: the same computation), its samples drawn again as the file
    `samples_png`; None if it has to be computed."""
    logged = logged_cell(run.client, run.experiment_id, run.key)
    if logged is None:
        return None
    cell_run, metrics = logged
    with tempfile.TemporaryDirectory() as folder:
        try:
            path = download_artifacts(run_id=cell_run, artifact_path=CELL_FILE, dst_path=folder, tracking_uri=run.client.tracking_uri)
        except MlflowException:
            return None
        kept = torch.load(path, weights_only=True)
    row = cell.row(**{key: kept[key] for key in in_cell_file()}, **from_metrics(metrics))
    save_samples_png(kept["samples"], samples_png, caption=caption(row))
    return row, kept["samples"], kept["solution"]


def record_cell(run, row, samples, solution, samples_png):
    """Draw a computed cell's samples as the file `samples_png`, save its first samples, the row's list
    fields and ODE `solution` (a reference's; else None) as `CELL_FILE`, and log the cell as its `run`
    (`tasks.record.tracking.CellRun`), finished, with both files."""
    save_samples_png(samples, samples_png, caption=caption(row))
    run_id = log_cell(run.client, run.experiment_id, run.parent, run.key, row, run.tags)
    with tempfile.TemporaryDirectory() as folder:
        cell_file = Path(folder) / CELL_FILE
        torch.save(dict(samples=samples, **{key: row[key] for key in in_cell_file()}, solution=solution), cell_file)
        finish_run(run.client, run_id, [samples_png, cell_file])


def logged_schedule(run):
    """(sigmas as float64, seconds it took) of the fitted step schedule logged under its `run`'s key
    (`tasks.record.tracking.CellRun`, keyed by `tasks.compute.cells.schedule_identity`), or None."""
    found = finished_run(run.client, run.experiment_id, run.key)
    if found is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        try:
            source = dict(run_id=found.info.run_id, dst_path=folder, tracking_uri=run.client.tracking_uri)
            path = download_artifacts(artifact_path=SCHEDULE_FILES[0], **source)
        except MlflowException:
            return None
        saved = json.loads(Path(path).read_text())
    return torch.tensor(saved["sigmas"], dtype=torch.float64), saved["seconds"]


def record_schedule(run, cell, sigmas, seconds):
    """Log a fitted step schedule as its `run`, finished: its grid as `SCHEDULE_FILES` (the sigmas in
    JSON, exactly, and their plot) and the seconds fitting took."""
    run_id = run_for(run.client, run.experiment_id, run.key, f"step schedule {cell.label}", parent=run.parent, tags=run.tags)
    run.client.log_metric(run_id, "fit_seconds", seconds)
    with tempfile.TemporaryDirectory() as folder:
        data, plot = (Path(folder) / name for name in SCHEDULE_FILES)
        saved = dict(label=cell.label, solver=cell.solver.label, budget=cell.budget, sigmas=sigmas.tolist(), seconds=seconds)
        data.write_text(json.dumps(saved))
        save_figure(sigmas_figure([(cell.label, {cell.step_schedule.label: sigmas.tolist()})]), plot)
        finish_run(run.client, run_id, [data, plot])

"""MLflow tracking: one experiment per study, one run per training configuration, a nested run per
(solver, step schedule, NFE budget). Runs are found again by a deterministic key tag, so a retried
or resumed task continues its run instead of creating a duplicate."""

import os
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Param

KEY = "study.key"
BATCH = 1000  # MLflow's limit of metrics per log_batch call


def tracking_uri(root):
    """MLFLOW_TRACKING_URI if set, else a SQLite file at an absolute path in the repository `root`
    (absolute, so DVC experiments that run in temporary copies log to the same store)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def is_local(uri):
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def experiment(client, name, artifact_root):
    """The experiment `name`, created once; with a local store its artifacts go under `artifact_root`,
    with a tracking server wherever the server keeps them."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = Path(artifact_root).resolve().as_uri() if is_local(client.tracking_uri) else None
    return client.create_experiment(name, artifact_location=location)


def open_experiment(root, name, artifact_root):
    """(client, experiment id) of the study's store under `root`, created and migrated on first use."""
    client = MlflowClient(tracking_uri(root))
    return client, experiment(client, name, artifact_root)


def run_for(client, experiment_id, key, name, *, parent=None, tags=None):
    """The id of the run tagged `key`, created if there is none; a finished run is reopened."""
    existing = client.search_runs([experiment_id], filter_string=f"tags.`{KEY}` = '{key}'", max_results=1)
    if existing:
        run_id = existing[0].info.run_id
        if existing[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        return run_id
    run_tags = {KEY: key, **(tags or {})}
    if parent is not None:
        run_tags["mlflow.parentRunId"] = parent
    return client.create_run(experiment_id, run_name=name, tags=run_tags).info.run_id


def log_params(client, run_id, params):
    """Every entry of `params` as an MLflow param (values as strings)."""
    client.log_batch(run_id, params=[Param(key, str(value)) for key, value in params.items()])


def log_curve(client, run_id, name, points):
    """Metric `name` at each (step, value) of `points`, in batches of MLflow's size limit."""
    now = int(time.time() * 1000)
    metrics = [Metric(name, float(value), now, step) for step, value in points]
    for start in range(0, len(metrics), BATCH):
        client.log_batch(run_id, metrics=metrics[start : start + BATCH])


def log_cell(client, experiment_id, parent, key, row, tags):
    """A finished run nested under `parent` with metrics fid, nfe, seconds, param budget and `tags`
    plus solver, step_schedule and reference."""
    name = f"{row['solver']}/{row['step_schedule']}/{row['budget']}"
    cell_tags = {**tags, "solver": row["solver"], "step_schedule": row["step_schedule"], "reference": str(row["reference"])}
    run_id = run_for(client, experiment_id, key, name, parent=parent, tags=cell_tags)
    now = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[Metric(metric, float(row[metric]), now, 0) for metric in ("fid", "nfe", "seconds")],
                     params=[Param("budget", str(row["budget"]))])
    client.set_terminated(run_id, "FINISHED")
    return run_id

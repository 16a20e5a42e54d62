"""MLflow tracking: one experiment per study, one run per training configuration, a nested run per
(solver, step schedule, NFE budget). Runs are found again by a deterministic key tag, so a retried
or resumed task continues its run instead of creating a duplicate."""

import os
from pathlib import Path

KEY = "study.key"


def tracking_uri(root):
    """MLFLOW_TRACKING_URI if set, else a SQLite file at an absolute path in the repository `root`
    (absolute, so DVC experiments that run in temporary copies log to the same store)."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(root).resolve() / 'mlflow.db'}"


def experiment(client, name, artifact_root):
    """The experiment `name`, created once (with its artifacts under `artifact_root`)."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=Path(artifact_root).resolve().as_uri())


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


def configuration_key(study, config):
    return f"{study}/{config}"


def cell_key(study, config, solver, step_schedule, budget):
    return f"{study}/{config}/{solver}/{step_schedule}/{budget}"


def log_cell(client, experiment_id, study, config, row, axes):
    """A nested run under the configuration's run with metrics fid, nfe, seconds and a tag per axis."""
    parent = run_for(client, experiment_id, configuration_key(study, config), config)
    name = f"{row['solver']}/{row['step_schedule']}/{row['budget']}"
    tags = {**axes, "solver": row["solver"], "step_schedule": row["step_schedule"], "reference": str(row["reference"])}
    run_id = run_for(client, experiment_id, cell_key(study, config, row["solver"], row["step_schedule"], row["budget"]), name, parent=parent, tags=tags)
    for metric in ("fid", "nfe", "seconds"):
        client.log_metric(run_id, metric, float(row[metric]))
    client.log_param(run_id, "budget", row["budget"])
    client.set_terminated(run_id, "FINISHED")
    return run_id

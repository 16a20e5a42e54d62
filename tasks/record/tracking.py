"""MLflow tracking: one experiment per study, one run per training configuration, nested under it a
run per (solver, step schedule) series (its metrics at step = NFE, for the chart view) and under
that a run per cell (solver, step schedule, NFE budget); the references nest under the
configuration. Runs are found again by a deterministic key tag (the run's identity:
`configuration_key`, and a cell's identity below it), so that a retried or resumed task continues
its run instead of creating a duplicate; a run whose process died without closing it (SIGKILL,
power loss) is marked KILLED the next time a stage opens the experiment."""

import os
import socket
import time
from pathlib import Path
from typing import NamedTuple

import psutil
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from models.choices import Choice
from tasks.compute.provenance import computation_files, digest, files_digest
from tasks.compute.rows import CELL_METRIC, SERIES_METRIC, fields, required
from tasks.workspace import store_root

KEY = "study.key"
OWNER = "study.owner"  # host:pid:process start time of the process that holds the run open
EXPERIMENT_KIND, KIND = "mlflow.experimentKind", "custom_model_development"  # MLflow 3's UI: a model-training experiment
SERIES, SUPERSEDED, PENDING = "series", "superseded series", "pending series"  # a series run's `kind`: current, of an
# earlier evaluation, or of an evaluation that has not finished
EVALUATED = "study.evaluated"  # when the evaluation that made a series current finished (ns since the epoch)
BATCH = 1000  # MLflow's limit of metrics per log_batch call


def tracking_uri(root):
    """MLFLOW_TRACKING_URI if set, else the SQLite file mlflow.db of `store_root(root)`, at an
    absolute path."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{store_root(root) / 'mlflow.db'}"


def is_local(uri):
    return uri.startswith(("sqlite:", "file:")) or "://" not in uri


def existing_experiment(root, name):
    """The id of the experiment `name` in the study's store under `root`, or None if it has none yet."""
    found = MlflowClient(tracking_uri(root)).get_experiment_by_name(name)
    return found.experiment_id if found else None


def experiment(client, name, artifact_root):
    """The experiment `name`, created once; with a local store its artifacts go under `artifact_root`,
    with a tracking server wherever the server keeps them."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        if EXPERIMENT_KIND not in found.tags:  # an experiment created by another client
            client.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, KIND)
        return found.experiment_id
    location = Path(artifact_root).resolve().as_uri() if is_local(client.tracking_uri) else None
    return client.create_experiment(name, artifact_location=location, tags={EXPERIMENT_KIND: KIND})


def open_experiment(root, name, artifact_root):
    """(client, experiment id) of the study's store under `root`, created and migrated on first use;
    runs left RUNNING by dead processes of this host are closed as KILLED."""
    client = MlflowClient(tracking_uri(root))
    experiment_id = experiment(client, name, artifact_root)
    close_orphans(client, experiment_id)
    return client, experiment_id


def owner(pid=None):
    """`host:pid:start time` of process `pid` (default this one): unique even when pids are reused."""
    process = psutil.Process(pid)
    return f"{socket.gethostname()}:{process.pid}:{process.create_time():.2f}"


def alive(run_owner):
    """Whether the process named by an OWNER tag still runs; None if it belongs to another host."""
    host, pid, _ = run_owner.rsplit(":", 2)
    if host != socket.gethostname():
        return None
    try:
        return owner(int(pid)) == run_owner
    except psutil.NoSuchProcess:
        return False


def close_orphans(client, experiment_id):
    """Mark KILLED every RUNNING run of the experiment whose owning process on this host has ended."""
    for run in client.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=10000):
        run_owner = run.data.tags.get(OWNER)
        if run_owner and alive(run_owner) is False:
            client.set_tag(run.info.run_id, "failure", f"its process ({run_owner}) ended without closing the run")
            client.set_terminated(run.info.run_id, "KILLED")


def run_for(client, experiment_id, key, name, *, parent=None, tags=None):
    """The id of the run tagged `key`, created if there is none; a finished run is reopened."""
    existing = client.search_runs([experiment_id], filter_string=f"tags.`{KEY}` = '{key}'", max_results=1)
    if existing:
        run_id = existing[0].info.run_id
        if existing[0].info.status != "RUNNING":
            client.update_run(run_id, status="RUNNING")
        client.set_tag(run_id, OWNER, owner())
        return run_id
    run_tags = {KEY: key, OWNER: owner(), **(tags or {})}
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


def row_metrics(row, names, step):
    """MLflow metrics `names` of a row at `step`; a None value (a stochastic cell's ode_error) is left out."""
    now = int(time.time() * 1000)
    return [Metric(name, float(row[name]), now, step) for name in names if row.get(name) is not None]


def log_cell(client, experiment_id, parent, key, row, tags):
    """A finished run named by the cell's label, nested under `parent`, with the row's `METRIC` fields
    as metrics (`CELL_METRIC`, those measured: `tasks.compute.rows`), param budget and `tags` plus solver, step_schedule,
    clipping and reference."""
    name = row["label"]
    cell_tags = {**tags, **{key: row[key] for key in ("solver", "step_schedule", "clipping")}, "reference": str(row["reference"])}
    run_id = run_for(client, experiment_id, key, name, parent=parent, tags=cell_tags)
    metrics = row_metrics(row, fields(CELL_METRIC), 0)
    client.log_batch(run_id, metrics=metrics, params=[Param("budget", str(row["budget"]))])
    client.set_terminated(run_id, "FINISHED")
    return run_id


def finished_run(client, experiment_id, key):
    """The FINISHED run tagged `key`, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.`{KEY}` = '{key}' and attributes.status = 'FINISHED'", max_results=1)
    return runs[0] if runs else None


def logged_cell(client, experiment_id, key):
    """(run id, its metrics) of the FINISHED cell run tagged `key` that holds every metric a row
    requires (`tasks.compute.rows.required`), or None if there is none."""
    run = finished_run(client, experiment_id, key)
    if run is not None and set(required(CELL_METRIC)) <= set(run.data.metrics):
        return run.info.run_id, run.data.metrics
    return None


def series_run(client, experiment_id, parent, name, identities, tags):
    """The run of a (solver, step schedule) series of cells (`identities`: their identities), nested
    under `parent` (the configuration's run), named `name`, with `tags`: its cells nest under it, and
    the same cells find it again. A new one is kind=pending series, out of the chart views until its
    evaluation has finished (`make_current`)."""
    key = f"{client.get_run(parent).data.tags[KEY]}/series/{digest(identities)}/{name}"
    return run_for(client, experiment_id, key, name, parent=parent, tags={**tags, "kind": PENDING})


def log_series(client, run_id, rows):
    """The rows' `SERIES_METRIC` fields (`tasks.compute.rows`) of a series' cells `rows` at step = NFE spent, one point
    per budget, so that MLflow's chart view draws FID against NFE per series (logged once); the run
    finished."""
    if "fid" not in client.get_run(run_id).data.metrics:
        client.log_batch(run_id, metrics=[metric for row in rows for metric in row_metrics(row, fields(SERIES_METRIC), row["nfe"])])
    client.set_terminated(run_id, "FINISHED")


def open_series(client, experiment_id, parent, configuration, cells, identities, tags):
    """Series name -> the run of each (solver, step schedule) series of the non-reference `cells`
    (`series_run`; `identities`: cell label -> identity) under the configuration's run `parent`."""
    members = {}
    for cell in cells:
        if not cell.reference:
            members.setdefault(cell.series, []).append(cell)
    return {
        name: series_run(
            client, experiment_id, parent, f"{configuration}: {name}", [identities[cell.label] for cell in own], {**tags, **own[0].tags}
        )
        for name, own in members.items()
    }


def close_series(client, experiment_id, configuration, series, rows):
    """Log each series' points (`log_series`) from the evaluation's `rows`, then make them the
    configuration's current series (`make_current`)."""
    for name, run_id in series.items():
        log_series(client, run_id, [row for row in rows if row["series"] == name and not row["reference"]])
    make_current(client, experiment_id, configuration, series.values())


def finish_run(client, run_id, files=(), status="FINISHED"):
    """Log the `files` as artifacts of the run and end it with `status`."""
    for path in files:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, status)


def fail_run(client, run_id, error):
    """End the run FAILED, with the error's message in its tag `failure`."""
    client.set_tag(run_id, "failure", str(error)[:5000])
    client.set_terminated(run_id, "FAILED")


class CellRun(NamedTuple):
    """Where a cell's run goes: the store, the cell's key (`cell_key`), the run it nests under (its
    series, or the configuration's for a reference) and its tags."""

    client: MlflowClient
    experiment_id: str
    key: str
    parent: str
    tags: dict


def make_current(client, experiment_id, configuration, series):
    """Once an evaluation of `configuration` has finished: its `series` run ids become kind=series,
    stamped with the time, and every series of the configuration stamped earlier becomes kind=superseded
    series (kept, with its cells, but out of the chart views' filter `tags.kind = 'series'`). Whatever
    the order in which concurrent evaluations (queued DVC experiments) get here, the series of the one
    stamped last stay current, and only they. The superseded run ids come back."""
    stamp = time.time_ns()
    for run_id in series:
        client.set_tag(run_id, EVALUATED, str(stamp))
        client.set_tag(run_id, "kind", SERIES)
    current = client.search_runs([experiment_id], f"tags.kind = '{SERIES}' and tags.configuration = '{configuration}'", max_results=50000)
    latest = max(int(run.data.tags.get(EVALUATED, 0)) for run in current)
    superseded = [run.info.run_id for run in current if int(run.data.tags.get(EVALUATED, 0)) < latest]
    for run_id in superseded:
        client.set_tag(run_id, "kind", SUPERSEDED)
    return superseded


def cell_key(study, config, training, identity, label):
    """The key of a cell's run: under its configuration run's key (`training`: the training identity),
    the cell's `identity` (`tasks.compute.cells.cell_identity`) and its label."""
    return f"{configuration_key(study, config, training)}/{identity}/{label}"


def configuration_key(study, config, identity):
    """The key of a configuration's run: the same settings and training identity find the same run
    again; changed settings, data or training code start a new run and leave the old one as it was."""
    return f"{study.mlflow.experiment}/{config.name}/{digest(config.settings(), identity)}"


def axis_tags(study, config):
    """A tag per training design axis (its entry's name), the configuration, the dataset, and in an
    ablation the parent and the axes varied from it, for filtering in the MLflow UI."""
    return {
        "configuration": config.name,
        "dataset": study.data.dataset,
        **{key: value.name for key, value in config if isinstance(value, Choice)},
        **({"parent": config.parent, "varies": ",".join(config.varies)} if config.parent else {}),
    }


class ConfigurationRun(NamedTuple):
    """A configuration's run: the store, the experiment and the run its cells and series nest under."""

    client: MlflowClient
    experiment_id: str
    run_id: str


def configuration_run(study, config, root, artifacts, identity):
    """The `ConfigurationRun` of the configuration (`identity`: its training identity), created with
    every setting as a param and a tag per axis if new, reopened if it exists."""
    client, experiment_id = open_experiment(root, study.mlflow.experiment, artifacts)
    tags = {**axis_tags(study, config), "training": identity}
    run_id = run_for(client, experiment_id, configuration_key(study, config, identity), config.name, tags=tags)
    for key in ("parent", "varies"):  # the design may name the same computation anew
        client.set_tag(run_id, key, tags.get(key, ""))
    settings = {key: value.label if isinstance(value, Choice) else value for key, value in config if key in config.settings()}
    log_params(client, run_id, {"dataset": study.data.dataset, **settings})
    return ConfigurationRun(client, experiment_id, run_id)


def log_report(study, root, artifacts, reports, inputs):
    """The study's report run, with the folder `reports` as its artifacts: one run per params, report
    inputs (rows, failures, floor) and report code; a new run when any of them changed."""
    client, experiment_id = open_experiment(root, study.mlflow.experiment, artifacts)
    made = digest(study.model_dump(mode="json", exclude={"orchestration"}), inputs, files_digest(computation_files("flows.report")))
    run_id = run_for(client, experiment_id, f"{study.mlflow.experiment}/report/{made}", "report", tags={"report": "true"})
    client.log_artifacts(run_id, str(reports))
    client.set_terminated(run_id, "FINISHED")

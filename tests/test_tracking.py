"""MLflow tracking against a real SQLite store: runs found again by key, nested cell runs, tags."""

import subprocess
import sys
import threading
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.record.tracking import (
    EXPERIMENT_KIND,
    OWNER,
    experiment,
    log_cell,
    log_series,
    make_current,
    open_experiment,
    run_for,
    series_run,
    tracking_uri,
)
from tasks.workspace import store_root


@pytest.fixture
def client(tmp_path):
    return MlflowClient(tracking_uri(tmp_path)), tmp_path


def test_tracking_uri_is_an_absolute_sqlite_file_unless_the_environment_says(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(tmp_path / "repo") == f"sqlite:///{(tmp_path / 'repo').resolve()}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri(tmp_path) == "http://127.0.0.1:5000"


def test_retried_runs_are_found_again_not_duplicated(client):
    client, root = client
    experiment_id = experiment(client, "study", root / "artifacts")
    assert experiment(client, "study", root / "artifacts") == experiment_id
    first = run_for(client, experiment_id, "study/edm", "edm")
    client.set_terminated(first, "FAILED")
    again = run_for(client, experiment_id, "study/edm", "edm")
    assert again == first and client.get_run(again).info.status == "RUNNING"
    assert len(client.search_runs([experiment_id])) == 1


def test_cells_are_nested_runs_with_metrics_and_axis_tags(client):
    client, root = client
    experiment_id = experiment(client, "study", root / "artifacts")
    row = dict(
        solver="heun",
        step_schedule="karras",
        clipping="clip",
        budget=8,
        nfe=7,
        fid=12.5,
        fid_se=0.5,
        ode_error=None,
        seconds=0.3,
        reference=False,
        label="heun/karras/8/clip",
    )
    axes = {"schedule": "edm", "parameterization": "edm"}
    parent = run_for(client, experiment_id, "study/edm", "edm")
    run_id = log_cell(client, experiment_id, parent, "study/edm/heun", row, axes)
    assert log_cell(client, experiment_id, parent, "study/edm/heun", row, axes) == run_id
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.metrics == {"fid": 12.5, "fid_se": 0.5, "nfe": 7.0, "seconds": 0.3}  # no ode_error: not measured
    assert run.data.tags["schedule"] == "edm" and (run.data.tags["solver"], run.data.tags["clipping"]) == ("heun", "clip")
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([experiment_id])) == 2


def test_a_series_run_holds_one_point_per_budget_at_step_nfe_for_the_chart_view(client):
    client, root = client
    experiment_id = experiment(client, "study", root / "artifacts")
    assert client.get_experiment(experiment_id).tags[EXPERIMENT_KIND] == "custom_model_development"
    parent = run_for(client, experiment_id, "study/edm", "edm")
    rows = [
        dict(solver="heun", step_schedule="karras", clipping="none", series="heun / karras", nfe=nfe, fid=fid, fid_se=0.1, ode_error=error)
        for nfe, fid, error in ((3, 40.0, 0.3), (7, 20.0, 0.05), (15, 12.0, 0.01))
    ]
    for _ in range(2):  # the same cells again: the same run, logged once
        run_id = series_run(client, experiment_id, parent, "edm: heun / karras", ["a", "b", "c"], {"configuration": "edm"})
        log_series(client, run_id, rows)
    assert client.search_runs([experiment_id], "tags.kind = 'series'") == []  # pending until its evaluation has finished
    make_current(client, experiment_id, "edm", [run_id])
    (series,) = client.search_runs([experiment_id], "tags.kind = 'series'")
    assert series.info.run_name == "edm: heun / karras" and series.data.tags["mlflow.parentRunId"] == parent
    assert series.info.status == "FINISHED"
    for metric, values in (("fid", [40.0, 20.0, 12.0]), ("ode_error", [0.3, 0.05, 0.01])):
        history = client.get_metric_history(series.info.run_id, metric)
        assert sorted((point.step, point.value) for point in history) == list(zip([3, 7, 15], values))
    other = series_run(client, experiment_id, parent, "edm: heun / karras", ["a", "b"], {"configuration": "edm"})  # other cells
    assert other != series.info.run_id
    elsewhere = series_run(client, experiment_id, parent, "ddpm: heun / karras", ["d"], {"configuration": "ddpm"})
    make_current(client, experiment_id, "ddpm", [elsewhere])
    assert make_current(client, experiment_id, "edm", [other]) == [series.info.run_id]  # kept, out of the charts' filter
    charted = {run.info.run_id for run in client.search_runs([experiment_id], "tags.kind = 'series'")}
    assert charted == {other, elsewhere} and client.get_run(series.info.run_id).data.tags["kind"] == "superseded series"
    assert series_run(client, experiment_id, parent, "edm: heun / karras", ["a", "b", "c"], {"configuration": "edm"}) == series.info.run_id
    assert client.get_run(series.info.run_id).data.tags["kind"] == "superseded series"  # found again, but not current before its end
    make_current(client, experiment_id, "edm", [series.info.run_id])
    assert {run.info.run_id for run in client.search_runs([experiment_id], "tags.kind = 'series'")} == {series.info.run_id, elsewhere}


def test_concurrent_evaluations_leave_exactly_one_evaluations_series_current(client):
    """Two evaluations of one configuration (two queued DVC experiments) finishing at once, in 6
    rounds: whatever the interleaving, the series of exactly one of them are current afterwards."""
    client, root = client
    experiment_id = experiment(client, "study", root / "artifacts")
    parent = run_for(client, experiment_id, "study/edm", "edm")
    for round_ in range(6):
        evaluations = [
            [series_run(client, experiment_id, parent, f"edm: {s}", [f"{round_}-{e}-{s}"], {"configuration": "edm"}) for s in "xyz"]
            for e in range(2)
        ]
        threads = [threading.Thread(target=make_current, args=(client, experiment_id, "edm", runs)) for runs in evaluations]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        charted = {run.info.run_id for run in client.search_runs([experiment_id], "tags.kind = 'series'")}
        assert charted in ({*evaluations[0]}, {*evaluations[1]}), round_


def test_runs_of_dead_processes_are_closed_killed_and_live_ones_left_running(client):
    client, root = client
    experiment_id = experiment(client, "study", root / "artifacts")
    code = (
        "import sys; from mlflow import MlflowClient; from tasks.record.tracking import run_for; "
        "print(run_for(MlflowClient(sys.argv[1]), sys.argv[2], 'study/dead', 'dead'))"
    )
    dead = subprocess.run(
        [sys.executable, "-c", code, client.tracking_uri, experiment_id],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    ).stdout.split()[-1]
    live = run_for(client, experiment_id, "study/live", "live")
    elsewhere = run_for(client, experiment_id, "study/elsewhere", "elsewhere")
    client.set_tag(elsewhere, OWNER, "another-host:1:1.00")
    assert client.get_run(dead).info.status == "RUNNING"
    _, reopened = open_experiment(root, "study", root / "artifacts")
    assert reopened == experiment_id
    assert client.get_run(dead).info.status == "KILLED" and "ended without closing" in client.get_run(dead).data.tags["failure"]
    assert client.get_run(live).info.status == "RUNNING" and client.get_run(elsewhere).info.status == "RUNNING"


def test_a_dvc_experiment_in_a_temporary_copy_logs_to_the_repository_it_came_from(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    copy = tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    assert store_root(copy) == store_root(copy / "sub") == (tmp_path / "repo").resolve()
    assert tracking_uri(copy) == f"sqlite:///{(tmp_path / 'repo').resolve()}/mlflow.db"
    assert store_root(tmp_path / "repo" / "exps") == (tmp_path / "repo" / "exps").resolve()

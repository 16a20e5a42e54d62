"""MLflow tracking against a real SQLite store: runs found again by key, nested cell runs, tags."""

import pytest
from mlflow import MlflowClient

from tasks.tracking import experiment, log_cell, run_for, tracking_uri


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
    row = dict(solver="heun", step_schedule="karras", budget=8, nfe=7, fid=12.5, seconds=0.3, reference=False)
    axes = {"schedule": "edm", "parameterization": "edm"}
    parent = run_for(client, experiment_id, "study/edm", "edm")
    run_id = log_cell(client, experiment_id, parent, "study/edm/heun", row, axes)
    assert log_cell(client, experiment_id, parent, "study/edm/heun", row, axes) == run_id
    run = client.get_run(run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.metrics == {"fid": 12.5, "nfe": 7.0, "seconds": 0.3}
    assert run.data.tags["schedule"] == "edm" and run.data.tags["solver"] == "heun"
    assert run.info.status == "FINISHED"
    assert len(client.search_runs([experiment_id])) == 2

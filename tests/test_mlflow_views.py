"""What a user opens in MLflow's UI, read back from a real SQLite store: the saved series view of a
configuration (its filter finds exactly the current series runs) and the addresses `bin/study` prints."""

import json
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mlflow import MlflowClient

from flows.runtime.repro import where_to_look
from tasks.record.mlflow_views import VIEW_TAG, experiment_url, save_series_view, series_view_url
from tasks.record.tracking import experiment, make_current, open_experiment, run_for, series_run, tracking_uri


def test_a_series_view_charts_the_current_series_of_its_configuration_on_log_axes(tmp_path):
    client = MlflowClient(tracking_uri(tmp_path))
    experiment_id = experiment(client, "study", tmp_path / "artifacts")
    edm, eps = (run_for(client, experiment_id, f"study/{name}", name) for name in ("edm", "eps"))
    old = series_run(client, experiment_id, edm, "edm: heun / karras", ["a"], {"configuration": "edm"})
    current = [
        series_run(client, experiment_id, edm, f"edm: {solver} / karras", ["b", solver], {"configuration": "edm"}) for solver in "xy"
    ]
    make_current(client, experiment_id, "edm", [old])
    make_current(
        client, experiment_id, "eps", [series_run(client, experiment_id, eps, "eps: heun / karras", ["c"], {"configuration": "eps"})]
    )
    pending = series_run(client, experiment_id, edm, "edm: z / karras", ["d"], {"configuration": "edm"})  # an evaluation not finished
    make_current(client, experiment_id, "edm", current)
    assert save_series_view(client, experiment_id, "edm") == "series-edm"
    envelope = json.loads(client.get_experiment(experiment_id).tags[VIEW_TAG + "series-edm"])
    assert envelope["name"] == "edm: FID, KID and ODE error vs NFE" and isinstance(envelope["createdAt"], int)
    state = json.loads(envelope["state"])
    shown = {run.info.run_id for run in client.search_runs([experiment_id], state["searchFilter"])}
    assert shown == set(current) and old not in shown and pending not in shown  # no superseded, pending or other configuration's series
    assert (state["orderByKey"], state["orderByAsc"], state["runsHiddenMode"]) == ("tags.`mlflow.runName`", True, "SHOW_ALL")
    (section,) = state["compareRunSections"]
    charts = [(c["metricKey"], c["xAxisKey"], c["xAxisScaleType"], c["scaleType"], c["deleted"]) for c in state["compareRunCharts"]]
    assert charts == [
        ("fid", "step", "log", "log", False),
        ("kid", "step", "log", "log", False),
        ("ode_error", "step", "log", "log", False),
        ("fid_se", "step", "log", "log", True),
        ("kid_se", "step", "log", "log", True),
    ]
    assert all(c["metricSectionId"] == section["uuid"] for c in state["compareRunCharts"])
    client.set_experiment_tag(experiment_id, VIEW_TAG + "series-edm", "changed in the UI")
    save_series_view(client, experiment_id, "edm")
    assert client.get_experiment(experiment_id).tags[VIEW_TAG + "series-edm"] == "changed in the UI"  # a user's view is kept


def test_the_view_address_opens_the_view_as_charts_in_the_model_training_view():
    url = urlsplit(series_view_url("http://127.0.0.1:5000/", "7", "edm"))
    route, _, query = url.fragment.partition("?")
    assert (url.netloc, route) == ("127.0.0.1:5000", "/experiments/7/runs")
    assert parse_qs(query) == {"viewStateShareKey": ["series-edm"], "compareRunsMode": ["CHART"], "workflowType": ["machine_learning"]}
    assert experiment_url("http://127.0.0.1:5000/", "7") == "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"


def test_the_closing_message_gives_the_runs_table_and_the_solver_comparisons_charts(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    shutil.copy(Path(__file__).parents[1] / "params.yaml", "params.yaml")  # edm-long on the default grid, the others on smaller ones
    _, experiment_id = open_experiment(tmp_path, "design-space", tmp_path / "artifacts")
    message = where_to_look()
    assert f"http://127.0.0.1:5000/#/experiments/{experiment_id}?workflowType=machine_learning" in message
    assert series_view_url("http://127.0.0.1:5000", experiment_id, "edm-long") in message
    assert message.count("viewStateShareKey=") == 1  # not edm's, nor any other configuration's on a smaller grid
    assert f"mlflow ui --backend-store-uri sqlite:///{tmp_path.resolve()}/mlflow.db" in message

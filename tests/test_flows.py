"""The Prefect flows: stage entry points refuse bad input before any work, and the whole study as one
flow (`python -m flows.study`) runs the expected task graph against a real (temporary) Prefect API."""

import contextlib
import csv
import json
import os
import shutil
import signal as signal_module
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml
from mlflow import MlflowClient
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterParentFlowRunId,
)

from flows.evaluate import evaluate_one
from flows.report import report_study
from flows.runtime.cli import main
from flows.study import run_study
from schema.params_file import load_params
from tasks.compute.cells import cells, fit_sigmas
from tasks.compute.data import save_dataset
from tasks.compute.train import load_trained
from tasks.record.prefect_artifacts import mlflow_link
from tasks.record.tracking import open_experiment
from tasks.report.outputs import sections
from tasks.report.results import StaleResults
from tasks.workspace import Workspace
from tests.conftest import TINY
from tools.browser import browser_page

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

SHOWN = """({
    images: document.images.length,
    loaded: [...document.images].filter(image => image.complete && image.naturalWidth > 0).length,
    tables: document.querySelectorAll('table').length,
    sections: document.querySelectorAll('section').length,
    links: [...document.querySelectorAll('#in-mlflow a')].map(link => link.href),
})"""  # what the report page shows, counted in the browser

PROJECT = Path(__file__).resolve().parents[1]


def stage(*args, cwd):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("module", ["flows.prepare", "flows.features", "flows.report", "flows.study"])
def test_a_bad_params_file_stops_a_stage_before_any_work(tmp_path, module):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({**TINY, "evaluate": {**TINY["evaluate"], "nfe": [4, "eight"]}}))
    done = stage(module, "--params", str(params), "--root", str(tmp_path / "out"), cwd=PROJECT)
    assert done.returncode == 2 and "evaluate.nfe.1" in done.stderr and "'eight'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_an_unknown_configuration_is_named_with_the_allowed_ones(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    never = flow(name="never")(lambda configuration, params, root: pytest.fail("the flow ran"))
    assert main(never, per_configuration=True, argv=["--params", str(params), "--configuration", "tiyn"]) == 2
    done = stage("flows.train", "--params", str(params), "--configuration", "tiyn", "--root", str(tmp_path / "out"), cwd=PROJECT)
    assert done.returncode == 2 and "'tiyn'" in done.stderr and "did you mean 'tiny'" in done.stderr
    assert not (tmp_path / "out").exists()


def test_overrides_on_the_command_line_are_validated_and_reach_the_flow(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    seen = []
    record = flow(name="record")(lambda params, root, overrides=None: seen.append(overrides))
    assert main(record, argv=["--params", str(params), "--set", "evaluate.nfe=[4, 6]", "--set", "orchestration.fid_shards=2"]) == 0
    assert seen == [{"evaluate.nfe": [4, 6], "orchestration.fid_shards": 2}]
    for bad in ("evaluate.nfe=[4, x]", "evaluate.nfe", "train.configurations.tiny.stepz=3"):
        assert main(record, argv=["--params", str(params), "--set", bad]) == 2
    assert len(seen) == 1


def descendants(client, flow_run_id):
    """The flow run `flow_run_id` and every flow run nested under it, at any depth."""
    found, parents = [client.read_flow_run(flow_run_id)], [flow_run_id]
    while parents:
        children = client.read_flow_runs(flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=parents)))
        found, parents = found + children, [run.id for run in children]
    return found


def test_the_study_flow_runs_every_stage_as_tasks_and_a_diverging_configuration_is_reported(tmp_path, monkeypatch, prefect_api):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    unstable = {**TINY["train"]["configurations"]["tiny"], "lr": 1e12, "grad_clip": None, "warmup_steps": 0}
    params.write_text(yaml.safe_dump({**TINY, "train": {"configurations": {**TINY["train"]["configurations"], "unstable": unstable}}}))
    # the session's API, whichever test started it: a second API would leave Prefect's event worker on the first
    state = run_study(params=str(params), root=str(tmp_path), return_state=True)
    with get_client(sync_client=True) as client:
        flow_runs = descendants(client, state.state_details.flow_run_id)
        flows = {run.id: client.read_flow(run.flow_id).name for run in flow_runs}
        assert sorted(flows.values()) == sorted(
            ["study", "prepare", "features", "configurations", "train one", "train one", "evaluate one", "evaluate one", "report"]
        )
        assert all(run.state.is_completed() for run in flow_runs)
        evaluations = [run.id for run in flow_runs if flows[run.id] == "evaluate one"]
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=evaluations)))
    counts = {}
    for task_run in tasks:
        counts[task_run.task_key.rsplit("-", 1)[0]] = counts.get(task_run.task_key.rsplit("-", 1)[0], 0) + 1
    assert counts["score_shard"] == 3 and counts["record_cell"] == 3  # 2 solvers x 1 schedule x 1 budget + the reference
    workspace = Workspace(tmp_path)
    assert (workspace.results("tiny") / "samples" / "ddim_eta=1.0_karras_4.png").is_file()
    assert (workspace.reports / "fid_vs_nfe.png").is_file() and (workspace.root / "mlflow.db").is_file()
    summary = json.loads((workspace.reports / "summary.json").read_text())["configurations"]
    assert "diverged at step" in summary["unstable"]["failed"] and summary["tiny"]["reference_fid"] > 0
    with open(workspace.reports / "best.csv", newline="") as file:
        assert [row["configuration"] for row in csv.DictReader(file) if row["failed"]] == ["unstable"]
    assert sorted(p.name for p in workspace.checkpoints("unstable").glob("step-*.pt")) == []  # diverged before its first checkpoint
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id], "tags.configuration = 'unstable' and attributes.run_name = 'unstable'"
    )
    assert run.info.status == "FAILED" and "diverged at step" in run.data.tags["failure"]


def test_evaluating_again_reads_logged_cells_back_instead_of_sampling(tmp_path, monkeypatch, prefect_api):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    workspace = Workspace(tmp_path)
    state = run_study(params=str(params), root=str(tmp_path), return_state=True)
    first = json.loads((workspace.results("tiny") / "cells.json").read_text())
    with get_client(sync_client=True) as prefect:  # what the Prefect UI shows of the results (the flow runs' Artifacts)
        own = [run.id for run in descendants(prefect, state.state_details.flow_run_id)]  # other tests publish the same keys
        published = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["cells-tiny", "mlflow-tiny", "report-tiny", "report-page-tiny"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=own),
            )
        )
    by_key = {artifact.key: artifact for artifact in published}
    table = json.loads(by_key["cells-tiny"].data)
    assert [line["cell"] for line in table] == [row["label"] + " (reference)" * row["reference"] for row in first["cells"]]
    assert table[1]["FID"] == f"{first['cells'][1]['fid']:.2f} ± {first['cells'][1]['fid_se']:.2f}"
    experiment_id = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("tiny").experiment_id
    assert by_key["mlflow-tiny"].data.startswith(f"[tiny in MLflow](http://127.0.0.1:5000/#/experiments/{experiment_id}")
    assert "# Ablations" in by_key["report-tiny"].data and "# Optimized step schedules" in by_key["report-tiny"].data
    page = workspace.reports / "index.html"
    assert by_key["report-page-tiny"].data == f"[the report page]({page.resolve().as_uri()})"
    with browser_page() as browser:  # the report page as a reader sees it, with the network off
        browser.offline()
        browser.open(page.resolve().as_uri())
        shown = browser.evaluate(SHOWN)
    figures = [file for _, files in sections() for file in files if file.endswith(".png")]
    assert shown["images"] == shown["loaded"] == len(figures) + 1 == 8  # and tiny's convergence picture
    markdown_tables = sum(path.read_text().count("\n|---") for path in workspace.reports.glob("*.md"))
    assert shown["tables"] == markdown_tables + 1 and shown["sections"] == len(sections()) + 1  # best.csv; the MLflow links
    assert shown["links"] == [mlflow_link(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment_id, "tiny")]
    store = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (report_run,) = store.search_runs([experiment_id], "tags.report = 'true'")
    assert "index.html" in {artifact.path for artifact in store.list_artifacts(report_run.info.run_id)}
    shutil.rmtree(workspace.results("tiny"))  # as DVC does before it re-runs a stage
    state = evaluate_one(configuration="tiny", params=str(params), root=str(tmp_path), return_state=True)
    with get_client(sync_client=True) as client:
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    names = [task_run.task_key.rsplit("-", 1)[0] for task_run in tasks]
    assert names.count("logged_row") == 3 and "score_shard" not in names and "record_cell" not in names
    assert json.loads((workspace.results("tiny") / "cells.json").read_text()) == first
    grid = workspace.results("tiny") / "samples" / "ddim_eta=1.0_karras_4.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert len(runs) == 1 + 2 + 3 + 1  # the configuration, its 2 series, 3 cells, the report: no duplicates
    assert len([run for run in runs if run.data.tags.get("kind") == "series"]) == 2


@pytest.mark.parametrize("signal", ["SIGTERM", "SIGKILL"])
def test_a_stopped_training_ends_its_mlflow_run_failed_or_killed_not_running(tmp_path, signal, prefect_api):
    """SIGTERM (a stopped `dvc repro`, a scheduler): Prefect turns it into an exception in the flow,
    and the training task marks its run FAILED on the way out. SIGKILL leaves no way out: the next
    stage to open the experiment finds the run's process gone and marks the run KILLED."""
    params = tmp_path / "params.yaml"
    long = {**TINY["train"]["configurations"]["tiny"], "steps": 1_000_000, "checkpoint_every": 1_000_000}
    params.write_text(yaml.safe_dump({**TINY, "train": {"configurations": {"tiny": long}}}))
    save_dataset(Workspace(tmp_path).data / "train.pt", torch.rand(64, 1, 8, 8) * 2 - 1, torch.zeros(64, dtype=torch.int64))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PREFECT_API_URL": prefect_api}
    log = tmp_path / "train.log"
    with open(log, "w") as output:
        child = subprocess.Popen(
            [sys.executable, "-m", "flows.train", "--params", str(params), "--configuration", "tiny", "--root", str(tmp_path)],
            cwd=PROJECT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        client, deadline = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}"), time.monotonic() + 180
        while time.monotonic() < deadline and not running_loss(client):
            time.sleep(1)
        assert running_loss(client), f"no loss logged in 180 s:\n{log.read_text()[-3000:]}"
        child.send_signal(getattr(signal_module, signal))
        assert child.wait(timeout=60) != 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal_module.SIGKILL)
    experiment_id = client.get_experiment_by_name("tiny").experiment_id
    if signal == "SIGKILL":
        assert client.search_runs([experiment_id])[0].info.status == "RUNNING"
        open_experiment(tmp_path, "tiny", tmp_path / "mlartifacts")  # what every stage does first
    (run,) = client.search_runs([experiment_id])
    assert run.info.status == {"SIGTERM": "FAILED", "SIGKILL": "KILLED"}[signal]


def running_loss(client):
    """True once the experiment's run is RUNNING with loss values logged."""
    experiment = client.get_experiment_by_name("tiny") if Path(client.tracking_uri.removeprefix("sqlite:///")).is_file() else None
    runs = client.search_runs([experiment.experiment_id]) if experiment else []
    return bool(runs) and runs[0].info.status == "RUNNING" and "loss" in runs[0].data.metrics


def test_a_grid_with_its_own_reference_nfe_measures_its_cells_against_that_reference(tmp_path, monkeypatch, prefect_api):
    """A named grid's reference_nfe, from a fresh run: the reference is Heun at that NFE, measured
    against twice and four times its steps, and the grid's cells against it; the default grid's own
    reference_nfe is not used."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    tiny = {**TINY["train"]["configurations"]["tiny"], "grid": "quick"}
    evaluate = {**TINY["evaluate"], "reference_nfe": 255, "grids": {"quick": {"reference_nfe": 15}}}
    params.write_text(yaml.safe_dump({**TINY, "train": {"configurations": {"tiny": tiny}}, "evaluate": evaluate}))
    run_study(params=str(params), root=str(tmp_path))
    rows = json.loads((Workspace(tmp_path).results("tiny") / "cells.json").read_text())["cells"]
    (reference,) = [row for row in rows if row["reference"]]
    assert (reference["label"], reference["nfe"]) == ("heun/karras/15", 15) and reference["error_ratio"] > 1
    euler, ddim = [row for row in rows if not row["reference"]]
    assert euler["ode_reference"] == "heun/karras/15" and euler["ode_error"] > 0
    assert ddim["ode_reference"] is None and ddim["ode_error"] is None  # stochastic: measured against nothing
    (check,) = json.loads((Workspace(tmp_path).results("tiny") / "summary.json").read_text())["configurations"]["tiny"]["ode_references"]
    assert check["reference"] == "heun/karras/15" and check["error_ratio"] == reference["error_ratio"]


def test_an_optimized_step_schedule_is_fitted_once_logged_and_read_back_bit_for_bit(tmp_path, monkeypatch, prefect_api):
    """A fitted step schedule in the grid: its cell runs on the grid fitted for the model and solver,
    logged as a run of its own (the sigmas in JSON and their plot); evaluated again with other scoring
    settings, the cells are sampled again but the grid is read back from MLflow, equal bit for bit to
    one fitted anew."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    optimized = {"name": "optimized", "solvers": ["euler"], "options": {"calibration": 8, "evaluations": 40}}
    evaluate = {**TINY["evaluate"], "step_schedules": ["karras", optimized]}
    params.write_text(yaml.safe_dump({**TINY, "evaluate": evaluate}))
    workspace = Workspace(tmp_path)
    run_study(params=str(params), root=str(tmp_path))
    rows = json.loads((workspace.results("tiny") / "cells.json").read_text())["cells"]
    (fitted,) = [row for row in rows if row["step_schedule"].startswith("optimized")]
    karras = next(row for row in rows if row["label"] == "euler/karras/4")
    assert fitted["nfe"] == 4 and len(fitted["sigmas"]) == 5 and fitted["sigmas"] != karras["sigmas"] and fitted["fit_seconds"] > 0
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("tiny").experiment_id
    (run,) = client.search_runs([experiment_id], "tags.kind = 'step schedule'")
    assert {artifact.path for artifact in client.list_artifacts(run.info.run_id)} == {"step_schedule.json", "step_schedule.png"}
    study = load_params(str(params))
    cell = next(cell for cell in cells(study.grid(study.configuration("tiny")), "tiny") if cell.fitted)
    model = load_trained(study.configuration("tiny"), workspace.checkpoints("tiny"), (1, 8, 8), log=lambda message: None)
    again, _ = fit_sigmas(model, cell, study.evaluate, (1, 8, 8))
    assert again.tolist() == fitted["sigmas"]  # fitted anew: bit for bit
    state = evaluate_one(
        configuration="tiny", params=str(params), root=str(tmp_path), overrides={"evaluate.bootstrap": 50}, return_state=True
    )
    with get_client(sync_client=True) as prefect:
        tasks = prefect.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
    names = [task_run.task_key.rsplit("-", 1)[0] for task_run in tasks]
    assert "score_shard" in names and names.count("fit") == 1 and "record_schedule" not in names
    reused = next(
        row for row in json.loads((workspace.results("tiny") / "cells.json").read_text())["cells"] if row["label"] == fitted["label"]
    )
    assert reused["sigmas"] == fitted["sigmas"] and reused["fit_seconds"] == fitted["fit_seconds"]  # read back, not fitted again
    assert len(client.search_runs([experiment_id], "tags.kind = 'step schedule'")) == 1


def test_the_report_refuses_results_of_another_training_naming_the_configuration_and_the_command(tmp_path, monkeypatch, prefect_api):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    run_study(params=str(params), root=str(tmp_path))
    report = Workspace(tmp_path).reports / "summary.json"
    before = report.read_bytes()
    with pytest.raises(StaleResults, match=r"configuration 'tiny'.*python -m flows.evaluate --configuration tiny"):
        report_study(params=str(params), root=str(tmp_path), overrides={"train.configurations.tiny.lr": 0.5})
    assert report.read_bytes() == before  # nothing written
    report_study(params=str(params), root=str(tmp_path))  # the training they were computed from: accepted


def current_series(client, experiment_id):
    """{series run name: its fid points (NFE -> FID)} of the runs a saved view shows (kind=series)."""
    runs = client.search_runs([experiment_id], "tags.kind = 'series'")
    return {run.info.run_name: {p.step: p.value for p in client.get_metric_history(run.info.run_id, "fid")} for run in runs}


def test_an_interrupted_evaluation_leaves_the_views_on_the_last_finished_one(tmp_path, monkeypatch, prefect_api):
    """An evaluation of a new grid killed (SIGKILL) after it opened its series runs: the chart view
    still shows exactly the series of the last finished evaluation, none of the killed one's; run again
    to its end, exactly the new ones."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(TINY))
    run_study(params=str(params), root=str(tmp_path))
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment_id = client.get_experiment_by_name("tiny").experiment_id
    finished = current_series(client, experiment_id)
    assert sorted(finished) == ["tiny: ddim[eta=1.0] / karras", "tiny: euler / karras"] and all(finished.values())
    changed = {**TINY, "evaluate": {**TINY["evaluate"], "nfe": [4, 6], "reference_nfe": 1023}}  # a long reference: time to kill it
    params.write_text(yaml.safe_dump(changed))
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PREFECT_API_URL": prefect_api}
    command = [sys.executable, "-m", "flows.evaluate", "--params", str(params), "--root", str(tmp_path)]
    with open(tmp_path / "evaluate.log", "w") as log:
        child = subprocess.Popen(command, cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not client.search_runs([experiment_id], "tags.kind = 'pending series'"):
            time.sleep(0.5)
        assert child.poll() is None, (tmp_path / "evaluate.log").read_text()[-3000:]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal_module.SIGKILL)
    child.wait()
    assert current_series(client, experiment_id) == finished
    done = subprocess.run(command, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    now = current_series(client, experiment_id)
    assert sorted(now) == sorted(finished) and all(sorted(points) == [4, 6] for points in now.values())

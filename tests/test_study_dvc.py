"""End to end: `dvc repro` of profiles/smoke.yaml in a temporary git repository with the real DVC,
Prefect (a `prefect server` on 127.0.0.1, through `python -m flows.repro`) and MLflow (SQLite
store); then a no-op second `dvc repro`, stage selectivity of a changed configuration, and
`dvc plots show`."""

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow import MlflowClient

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = ["models", "flows", "tasks", "dvc.yaml", "prefect.toml", ".dvcignore", ".dvc/config", ".dvc/plots"]
STAGES = ["prepare", "features", "train@edm", "train@vp-eps", "evaluate@edm", "evaluate@vp-eps", "report"]


def run(command, cwd, env):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study reproduced once in a fresh git + DVC repository: (repo, env, first repro's output)."""
    repo = tmp_path_factory.mktemp("study")
    for name in SOURCES:
        source, target = PROJECT / name, repo / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    shutil.copy(PROJECT / "profiles" / "smoke.yaml", repo / "params.yaml")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env |= {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}", "PREFECT_HOME": str(repo / ".prefect-home"),
            "GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
            "GIT_COMMITTER_EMAIL": "test@example.com"}
    (repo / ".gitignore").write_text("/.prefect-home/\n/mlflow.db\n/mlartifacts/\n__pycache__/\n")
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "smoke study"], repo, env)
    output = run([sys.executable, "-m", "flows.repro"], repo, env)
    return repo, env, output


def test_every_stage_ran(study):
    repo, _, output = study
    for stage in STAGES:
        assert f"Running stage '{stage}'" in output
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert sorted(lock) == sorted(STAGES)


def test_mlflow_holds_a_run_per_configuration_and_a_nested_run_per_cell(study):
    repo, _, _ = study
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("design-space-smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.info.run_name: r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.info.run_name != "report"}
    assert sorted(parents) == ["edm", "vp-eps"]
    for name, parent in parents.items():
        assert parent.info.status == "FINISHED"
        assert parent.data.params["schedule"] and parent.data.tags["parameterization"]
        assert len(client.get_metric_history(parent.info.run_id, "loss")) == 200
        cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        grid = {(r.data.tags["solver"], r.data.tags["step_schedule"], r.data.params["budget"]) for r in cells if r.data.tags["reference"] == "False"}
        assert grid == {(s, "karras", str(b)) for s in ("euler", "heun", "dpmpp_2m") for b in (4, 8)}
        assert len(cells) == 7 and all(math.isfinite(r.data.metrics["fid"]) and r.data.metrics["nfe"] <= int(r.data.params["budget"]) for r in cells)
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert {"cells.json", "fid_vs_nfe.png"} <= artifacts
    report = [r for r in runs if r.info.run_name == "report"]
    assert len(report) == 1 and "fid_vs_nfe.png" in {a.path for a in client.list_artifacts(report[0].info.run_id)}


def test_report_files_are_valid(study):
    repo, _, _ = study
    reports = repo / "reports"
    for png in [reports / "fid_vs_nfe.png", *sorted((reports / "samples").glob("*.png"))]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((reports / "samples").glob("*.png"))) == 2 * (2 + 1)  # best per budget and the reference, per configuration
    with open(reports / "best.csv", newline="") as file:
        best = list(csv.DictReader(file))
    assert [(r["configuration"], r["budget"]) for r in best] == [(c, b) for c in ("edm", "vp-eps") for b in ("4", "8")]
    with open(reports / "fid_vs_nfe.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 2 * 3 * 2
    summary = json.loads((reports / "summary.json").read_text())
    assert 0 < summary["data_floor_fid"] < summary["configurations"]["edm"]["reference_fid"]


def test_second_repro_runs_nothing(study):
    repo, env, _ = study
    output = run([sys.executable, "-m", "dvc", "repro"], repo, env)
    assert "Running stage" not in output and "Data and pipelines are up to date" in output


def test_changing_one_configuration_reruns_only_its_stages(study):
    repo, env, _ = study
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("      schedule: vp_cosine\n", "      schedule: vp_cosine\n      lr: 0.001\n"))
        status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo, env))
        assert sorted(status) == ["evaluate@vp-eps", "report", "train@vp-eps"]
    finally:
        params.write_text(original)


def test_plots_show_renders_fid_against_nfe(study):
    repo, env, _ = study
    run([sys.executable, "-m", "dvc", "plots", "show", "--json"], repo, env)
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", "plots-out"], repo, env)
    page = (repo / "plots-out" / "index.html").read_text()
    assert "dpmpp_2m / karras" in page and '"log"' in page


def test_an_experiment_with_a_changed_parameter_runs(study):
    repo, env, _ = study
    run([sys.executable, "-m", "dvc", "exp", "run", "-S", "mlflow.experiment=smoke-variant"], repo, env)
    experiments = json.loads(run([sys.executable, "-m", "dvc", "exp", "show", "--json"], repo, env))
    assert "smoke-variant" in json.dumps(experiments)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    variant = client.get_experiment_by_name("smoke-variant")
    assert [r.info.run_name for r in client.search_runs([variant.experiment_id])] == ["report"]

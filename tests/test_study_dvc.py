"""End to end: `dvc repro` of profiles/smoke.yaml in a temporary git repository with the real DVC,
Prefect (a `prefect server` on 127.0.0.1, through `python -m flows.runtime.repro`) and MLflow (SQLite
store), killed mid-training and run again; then a no-op third `dvc repro`, stage selectivity of a
changed configuration, `dvc plots show`, experiments, queued experiments and a Prefect deployment;
and, in a copy, results that are never stale: a changed solver or network re-runs what it moves."""

import contextlib
import csv
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml
from dvc_render.html import PAGE_HTML
from mlflow import MlflowClient

from flows.runtime.servers import prefect_and_mlflow_servers, stop
from tasks.record.mlflow_views import VIEW_TAG
from tools.browser import browser_page

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = [
    "models",
    "schema",
    "tasks",
    "flows",
    "dvc.yaml",
    "prefect.toml",
    ".dvcignore",
    ".dvc/config",
    ".dvc/plots",
    ".dvc/offline_plots.html",
]
STAGES = ["prepare", "features", "train", "evaluate", "report"]


def run(command, cwd, env):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def smoke_repository(repo, params=None):
    """A git repository at `repo` holding the project's pipeline and `params` (default: the smoke
    study) as params.yaml: its env."""
    for name in SOURCES:
        source, target = PROJECT / name, repo / name
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    if params is None:
        shutil.copy(PROJECT / "profiles" / "smoke.yaml", repo / "params.yaml")
    else:
        (repo / "params.yaml").write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))}
    env |= {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}",
        "PREFECT_HOME": str(repo / ".prefect-home"),
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
    }
    (repo / ".gitignore").write_text("/.prefect-home/\n/mlflow.db\n/mlartifacts/\n__pycache__/\n")
    run(["git", "init", "-q"], repo, env)
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-qm", "smoke study"], repo, env)
    return env


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The smoke study reproduced in a fresh git + DVC repository, the way a power cut would leave it and
    a user would finish it: the first `python -m flows.runtime.repro` killed (SIGKILL to its whole process tree:
    DVC, the stage, the Prefect server) once the train stage wrote edm's first checkpoint, then run again to
    the end. (repo, env, output of the killed run, dvc.lock after the kill or None, output of the second run)."""
    repo = tmp_path_factory.mktemp("study")
    env = smoke_repository(repo)
    log = repo.parent / "killed.log"
    with open(log, "w") as output:
        repro = subprocess.Popen(
            [sys.executable, "-m", "flows.runtime.repro"],
            cwd=repo,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline and repro.poll() is None and not list((repo / "checkpoints" / "edm").glob("step-*.pt")):
            time.sleep(0.5)
        assert repro.poll() is None, f"repro ended before the first checkpoint:\n{log.read_text()[-3000:]}"
    finally:
        processes = [psutil.Process(repro.pid), *psutil.Process(repro.pid).children(recursive=True)]
        for process in processes:  # the whole tree at once
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
    repro.wait()
    lock = (repo / "dvc.lock").read_text() if (repo / "dvc.lock").exists() else None
    output = run([sys.executable, "-m", "flows.runtime.repro"], repo, env)
    return repo, env, log.read_text(), lock, output


def test_every_stage_ran(study):
    repo, _, killed, _, output = study
    for stage in STAGES:
        assert f"Running stage '{stage}'" in killed + output
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert sorted(lock) == sorted(STAGES)


def test_mlflow_holds_a_run_per_configuration_a_run_per_series_and_a_nested_run_per_cell(study):
    repo, _, _, _, _ = study
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("design-space-smoke")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = {r.info.run_name: r for r in runs if "mlflow.parentRunId" not in r.data.tags and r.info.run_name != "report"}
    assert sorted(parents) == ["edm", "eps"]
    assert (parents["eps"].data.tags["parent"], parents["eps"].data.tags["varies"]) == ("edm", "parameterization")
    assert {f"{VIEW_TAG}series-edm", f"{VIEW_TAG}series-eps"} <= set(experiment.tags)  # each configuration's saved charts
    for parent in parents.values():
        assert parent.info.status == "FINISHED"
        assert parent.data.params["noise_schedule"] and parent.data.tags["parameterization"]
        assert len(client.get_metric_history(parent.info.run_id, "loss")) == 200
        children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        series = {r.info.run_id: r for r in children if r.data.tags.get("kind") == "series"}
        name = parent.info.run_name
        assert sorted(r.info.run_name for r in series.values()) == sorted(f"{name}: {s} / karras" for s in ("euler", "heun", "dpmpp_2m"))
        assert [r.data.tags["reference"] for r in children if r.info.run_id not in series] == ["True"]
        cells = [r for r in runs if r.data.tags.get("mlflow.parentRunId") in series]
        grid = {(r.data.tags["solver"], r.data.tags["step_schedule"], r.data.params["budget"]) for r in cells}
        assert grid == {(s, "karras", str(b)) for s in ("euler", "heun", "dpmpp_2m") for b in (4, 8)}
        assert len(cells) == 6 and all(
            math.isfinite(r.data.metrics["fid"]) and r.data.metrics["nfe"] <= int(r.data.params["budget"]) for r in cells
        )
        for run_id in series:  # what MLflow's chart view draws: one point per budget, at step = NFE spent
            own = [r for r in cells if r.data.tags["mlflow.parentRunId"] == run_id]
            for metric in ("fid", "ode_error"):
                history = sorted((point.step, point.value) for point in client.get_metric_history(run_id, metric))
                assert history == sorted((int(r.data.metrics["nfe"]), r.data.metrics[metric]) for r in own) and len(history) == 2
        artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
        assert {"cells.json", "fid_vs_nfe.png", "ode_error_vs_nfe.png", "fid_vs_ode_error.png", f"convergence-{name}.png"} <= artifacts
    report = [r for r in runs if r.info.run_name == "report"]
    assert len(report) == 1 and "fid_vs_nfe.png" in {a.path for a in client.list_artifacts(report[0].info.run_id)}


def test_report_files_are_valid(study):
    repo, _, _, _, _ = study
    reports = repo / "reports"
    for png in [reports / "fid_vs_nfe.png", *sorted((reports / "samples").glob("*.png"))]:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((reports / "samples").glob("*.png"))) == 2 * (2 + 1)  # best per budget and the reference, per configuration
    with open(reports / "best.csv", newline="") as file:
        best = list(csv.DictReader(file))
    assert [(r["configuration"], r["budget"]) for r in best] == [(c, b) for c in ("edm", "eps") for b in ("4", "8")]
    with open(reports / "fid_vs_nfe.csv", newline="") as file:
        assert len(list(csv.DictReader(file))) == 2 * 3 * 2
    summary = json.loads((reports / "summary.json").read_text())
    assert 0 < summary["data_floor_fid"] < summary["configurations"]["edm"]["reference_fid"]
    with open(reports / "ablations.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [(r["axis"], r["configuration"], r["entry"]) for r in table] == [
        ("parameterization", "edm", "edm"),
        ("parameterization", "eps", "eps"),
    ]
    assert float(table[0]["reference_fid"]) == summary["configurations"]["edm"]["reference_fid"]
    assert "## parameterization (varied from `edm`)" in (reports / "ablations.md").read_text()
    assert (reports / "reference_samples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_second_repro_runs_nothing(study):
    repo, env, _, _, _ = study
    output = run([sys.executable, "-m", "dvc", "repro"], repo, env)
    assert "Running stage" not in output and "Data and pipelines are up to date" in output


def test_changing_a_configuration_outdates_the_stages_that_read_it(study):
    repo, env, _, _, _ = study
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        params.write_text(original.replace("      parameterization: eps\n", "      parameterization: x0\n"))
        status = json.loads(run([sys.executable, "-m", "dvc", "status", "--json"], repo, env))
        assert sorted(status) == ["evaluate", "report", "train"]
    finally:
        params.write_text(original)


def test_plots_show_renders_fid_against_nfe(study):
    repo, env, _, _, _ = study
    run([sys.executable, "-m", "dvc", "plots", "show", "--json"], repo, env)
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", "plots-out"], repo, env)
    page = (repo / "plots-out" / "index.html").read_text()
    assert "dpmpp_2m / karras" in page and '"log"' in page


def test_plots_pages_are_drawn_with_the_network_off(study, tmp_path):
    """`dvc plots show` and `dvc plots diff` write pages (from .dvc/config's template, the libraries
    inline) whose two plots Chromium draws offline; DVC's own page, which loads them from a CDN, draws nothing."""
    repo, env, _, _, _ = study
    cdn = tmp_path / "cdn.html"
    cdn.write_text(PAGE_HTML)
    run([sys.executable, "-m", "dvc", "plots", "show", "-o", "offline-show"], repo, env)
    run([sys.executable, "-m", "dvc", "plots", "diff", "-o", "offline-diff"], repo, env)
    run([sys.executable, "-m", "dvc", "plots", "show", "--html-template", str(cdn), "-o", "cdn-show"], repo, env)
    painted = {}
    with browser_page() as page:
        page.offline()
        for out in ("offline-show", "offline-diff", "cdn-show"):
            page.open((repo / out / "index.html").as_uri(), settle=2)
            painted[out] = page.painted()
    assert "cdn.jsdelivr.net" not in (repo / "offline-show" / "index.html").read_text()
    for out in ("offline-show", "offline-diff"):
        assert len(painted[out]) == 2 and min(painted[out]) > 10_000, (out, painted[out])
    assert painted["cdn-show"] == []


def ran(output):
    """The stages a DVC run ran, in order."""
    return re.findall(r"Running stage '([^']+)'", output)


def cells(repo, configuration):
    """{(solver, step schedule, budget): row} of a configuration's results/<configuration>/cells.json."""
    rows = json.loads((repo / "results" / configuration / "cells.json").read_text())["cells"]
    return {(row["solver"], row["step_schedule"], row["budget"]): row for row in rows}


@pytest.fixture(scope="module")
def changes(study, tmp_path_factory):
    """A copy of the reproduced study (its git tree, DVC cache and MLflow store) taken through five
    changes, each followed by a run: a DVC experiment that trains eps to predict x0 instead, a change
    to Heun's correction (the reference's solver; `python -m flows.runtime.repro`), dpmpp_2m made an alias of
    euler, a network change (a U-Net block's output scaled by 1/sqrt(2)), then the colour of a figure's
    line. {change: (output, {configuration: cells before the run}, {configuration: cells after}, the
    report's fid_vs_nfe.png after)}."""
    repo = tmp_path_factory.mktemp("changed") / "repo"
    shutil.copytree(study[0], repo, symlinks=True, ignore=shutil.ignore_patterns(".prefect-home"))
    env = {**study[1], "PREFECT_HOME": str(repo / ".prefect-home")}
    solvers, networks = repo / "models" / "solvers" / "__init__.py", repo / "models" / "networks.py"
    runge_kutta, figures = repo / "models" / "solvers" / "runge_kutta.py", repo / "tasks" / "report" / "figures.py"
    edits = {
        "experiment": None,
        "heun": (runge_kutta, "(d + d_next) / 2", "(0.49 * d + 0.51 * d_next)"),  # dpmpp_2m's code is not in its module
        "solver": (solvers, 'Solver("dpmpp_2m", dpmpp_2m', 'Solver("dpmpp_2m", euler'),
        "network": (networks, "return h + self.skip(x)", "return (h + self.skip(x)) / math.sqrt(2)"),
        "figure": (figures, 'axes.axhline(row["fid"], color="black"', 'axes.axhline(row["fid"], color="red"'),
    }
    outcome = {}
    for change, edit in edits.items():
        before = {name: cells(repo, name) for name in ("edm", "eps")}
        if edit is None:
            output = run([sys.executable, "-m", "dvc", "exp", "run", "-S", "train.configurations.eps.parameterization=x0"], repo, env)
        else:
            path, old, new = edit
            assert path.read_text().count(old) == 1, old
            path.write_text(path.read_text().replace(old, new))
            output = run([sys.executable, "-m", "flows.runtime.repro"], repo, env)
        after = {name: cells(repo, name) for name in ("edm", "eps")}
        outcome[change] = (output, before, after, (repo / "reports" / "fid_vs_nfe.png").read_bytes())
    return repo, outcome


def test_a_changed_configuration_is_the_only_one_trained_and_sampled_again(changes):
    """`dvc exp run -S train.configurations.eps.parameterization=x0` re-runs the train, evaluate and
    report stages, which train and sample eps only: edm's checkpoint and cells are reused."""
    _, outcome = changes
    output, before, after, _ = outcome["experiment"]
    assert sorted(ran(output)) == ["evaluate", "report", "train"]
    assert "edm: trained before by the same computation [reused]" in output
    assert "eps: checkpoints" in output and "hold other settings" in output  # new settings: trained from scratch
    assert after["edm"] == before["edm"] and output.count("edm: ") and re.search(r"edm: \S+ spent NFE .*\[reused", output)
    assert not re.search(r"eps: \S+ spent NFE .*\[reused", output)
    assert all(after["eps"][cell]["fid"] != before["eps"][cell]["fid"] for cell in before["eps"])


def test_a_changed_solver_recomputes_its_cells_and_reuses_the_others(changes):
    """dpmpp_2m made an alias of euler: only the evaluate stages (and the report) run again; the
    dpmpp_2m cells are recomputed and now equal euler's, the other cells are read back from MLflow, and
    the runs of the old dpmpp_2m cells are still there, as they were."""
    repo, outcome = changes
    output, before, after, _ = outcome["solver"]
    assert sorted(ran(output)) == ["evaluate", "report"]
    for name in ("edm", "eps"):
        for (solver, schedule, budget), row in after[name].items():
            reused = re.search(rf"{name}: {re.escape(f'{solver}/{schedule}/{budget}')} spent NFE .*\[reused", output)
            if solver == "dpmpp_2m":
                assert not reused and row["fid"] == after[name][("euler", schedule, budget)]["fid"], (name, budget)
                assert row["fid"] != before[name][(solver, schedule, budget)]["fid"]
            else:
                assert reused and row == before[name][(solver, schedule, budget)], (name, solver, budget)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("design-space-smoke").experiment_id
    logged = {
        (run.data.tags["configuration"], int(run.data.params["budget"]), run.data.metrics["fid"])
        for run in client.search_runs([experiment], "tags.solver = 'dpmpp_2m' and tags.reference = 'False'", max_results=1000)
    }
    for name in ("edm", "eps"):
        for budget in (4, 8):
            assert {(name, budget, cells_[name][("dpmpp_2m", "karras", budget)]["fid"]) for cells_ in (before, after)} <= logged


def test_a_changed_network_retrains_and_recomputes_every_cell(changes):
    """A change to the U-Net re-runs training from scratch (its checkpoints hold other code) and every
    cell; the data and the FID features stay. MLflow's chart views see only the last evaluation's
    series: those of the earlier trainings are superseded, and kept."""
    repo, outcome = changes
    output, before, after, _ = outcome["network"]
    assert sorted(ran(output)) == ["evaluate", "report", "train"]
    assert output.count("hold other settings") == 2 and "resuming at step" not in output
    assert "[reused" not in output
    for name in ("edm", "eps"):
        assert all(after[name][cell]["fid"] != before[name][cell]["fid"] for cell in before[name]), name
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("design-space-smoke").experiment_id
    current = client.search_runs([experiment], "tags.kind = 'series'", max_results=1000)
    assert sorted(run.info.run_name for run in current) == sorted(
        f"{n}: {s} / karras" for n in ("edm", "eps") for s in ("dpmpp_2m", "euler", "heun")
    )
    latest = outcome["figure"][2]  # the cells of the last evaluation of the fixture's changes
    for run in current:
        history = {point.step: point.value for point in client.get_metric_history(run.info.run_id, "fid")}
        name, series = run.info.run_name.split(": ")
        assert history == {row["nfe"]: row["fid"] for row in latest[name].values() if row["series"] == series and not row["reference"]}
    superseded = client.search_runs([experiment], "tags.kind = 'superseded series'", max_results=1000)
    assert len(superseded) >= 3 + 6 + 2 + 6  # eps's 3 (experiment), all 6 (Heun), dpmpp_2m's 2 (alias), all 6 (network)


def test_a_changed_reference_solver_recomputes_every_deterministic_cells_ode_error(changes):
    """Heun's code is the reference's: every deterministic cell is measured against its solution, so
    none is reused, dpmpp_2m's (whose own module is another) neither; euler's and dpmpp_2m's samples
    are what they were (same FID), their distance to the new solution is not."""
    _, outcome = changes
    output, before, after, _ = outcome["heun"]
    assert sorted(ran(output)) == ["evaluate", "report"] and "[reused" not in output
    for name in ("edm", "eps"):
        for cell, row in after[name].items():
            assert row["ode_error"] != before[name][cell]["ode_error"], (name, cell)
            if cell[0] in ("euler", "dpmpp_2m"):
                assert row["fid"] == before[name][cell]["fid"], (name, cell)


def test_a_changed_figure_reuses_every_cell_and_redraws_the_report(changes):
    """A figure's colour is not what computes a cell: the evaluate stage reads every cell back from
    MLflow, and the report is drawn again."""
    _, outcome = changes
    output, before, after, figure = outcome["figure"]
    assert sorted(ran(output)) == ["evaluate", "report"]
    spent = re.findall(r"(?:edm|eps): \S+ spent NFE .*", output)
    assert len(spent) == 2 * (6 + 1) and all("[reused" in line for line in spent)
    assert after == before and figure != outcome["network"][3]


def test_an_experiment_with_a_changed_parameter_runs(study):
    repo, env, _, _, _ = study
    run([sys.executable, "-m", "dvc", "exp", "run", "-S", "mlflow.experiment=smoke-variant"], repo, env)
    experiments = json.loads(run([sys.executable, "-m", "dvc", "exp", "show", "--json"], repo, env))
    assert "smoke-variant" in json.dumps(experiments)
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    variant = client.get_experiment_by_name("smoke-variant")
    assert [r.info.run_name for r in client.search_runs([variant.experiment_id])] == ["report"]


def test_a_killed_repro_resumes_where_it_stopped_and_leaves_no_run_open(study):
    """The second repro of the fixture skips what the killed one finished, resumes edm's training from
    its checkpoint, and MLflow holds one closed run per configuration with the whole loss curve."""
    repo, _, killed, lock, output = study
    for stage in STAGES[:3]:
        assert f"Running stage '{stage}'" in killed
    assert lock is None or "train" not in yaml.safe_load(lock)["stages"]
    assert "edm: resuming at step 100" in output
    for stage in STAGES[:2]:
        assert f"Stage '{stage}' didn't change, skipping" in output
    for stage in STAGES[2:]:
        assert f"Running stage '{stage}'" in output
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("design-space-smoke").experiment_id], max_results=1000)
    assert {run.info.status for run in runs} == {"FINISHED"}
    assert sorted(run.info.run_name for run in runs if "mlflow.parentRunId" not in run.data.tags) == ["edm", "eps", "report"]
    edm = next(run for run in runs if run.info.run_name == "edm")
    assert sorted(m.step for m in client.get_metric_history(edm.info.run_id, "loss")) == list(range(1, 201))


def test_a_deployment_run_on_a_worker_gives_the_repro_results_and_logs_to_an_mlflow_server(study, tmp_path, monkeypatch):
    """`prefect deploy --all` (prefect.yaml) to a real `prefect server`, a process work pool and
    worker, `prefect deployment run 'study/design-space'` with an override, MLflow through a real
    `mlflow server`: the run completes, its FIDs are those of `dvc repro`, and the server holds its runs."""
    repo, _, _, _, _ = study
    project = tmp_path / "project"
    env = smoke_repository(project)
    shutil.copy(PROJECT / "prefect.yaml", project / "prefect.yaml")
    monkeypatch.setenv("PREFECT_HOME", env["PREFECT_HOME"])  # the server's database, new for this test
    with prefect_and_mlflow_servers(project) as (api, tracking):
        env |= {"PREFECT_API_URL": api, "MLFLOW_TRACKING_URI": tracking}
        prefect = [sys.executable, "-m", "prefect"]
        run([*prefect, "work-pool", "create", "design-space", "--type", "process"], project, env)
        run([*prefect, "--no-prompt", "deploy", "--all"], project, env)
        with open(tmp_path / "worker.log", "w") as log:
            worker = subprocess.Popen(
                [*prefect, "worker", "start", "--pool", "design-space"],
                cwd=project,
                stdout=log,
                env=env | {"PREFECT_WORKER_QUERY_SECONDS": "1"},  # polls every second, not 10
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            output = run(
                [
                    *prefect,
                    "deployment",
                    "run",
                    "study/design-space",
                    "--param",
                    'overrides={"mlflow.experiment": "deployed"}',
                    "--watch",
                    "--watch-interval",
                    "2",
                    "--watch-timeout",
                    "900",
                ],
                project,
                env,
            )
        finally:
            stop(worker)
        assert "Completed" in output, output[-3000:]
        client = MlflowClient(tracking)
        runs = client.search_runs([client.get_experiment_by_name("deployed").experiment_id], max_results=1000)
        assert sorted(r.info.run_name for r in runs if "mlflow.parentRunId" not in r.data.tags) == ["edm", "eps", "report"]
        assert {r.info.status for r in runs} == {"FINISHED"} and len(runs) == 3 + 2 * (3 + 7)  # per configuration 3 series, 7 cells
    repro = json.loads((repo / "reports" / "summary.json").read_text())["configurations"]
    deployed = json.loads((project / "reports" / "summary.json").read_text())["configurations"]
    for name in ("edm", "eps"):
        assert deployed[name]["reference_fid"] == pytest.approx(repro[name]["reference_fid"], rel=1e-6)


def test_queued_experiments_run_and_log_to_the_repository_store(study):
    """`dvc exp run --queue` x 2, each evaluating another grid, and `dvc queue start -j 2`: each
    experiment runs in a temporary copy under .dvc/tmp/exps, its MLflow runs land in the repository's
    own mlflow.db, and each configuration's chart view shows exactly the finished series of one of
    the two evaluations, whichever made them current last."""
    repo, env, _, _, _ = study
    run(["git", "add", "-A"], repo, env)  # dvc.lock and DVC's .gitignore entries, committed as after any repro
    run(["git", "commit", "-qm", "reproduced"], repo, env)
    for budgets in ("[4]", "[8]"):
        run([sys.executable, "-m", "dvc", "exp", "run", "--queue", "-S", f"evaluate.nfe={budgets}"], repo, env)
    run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], repo, env)
    deadline, status = time.monotonic() + 900, ""
    while time.monotonic() < deadline:
        status = run([sys.executable, "-m", "dvc", "queue", "status"], repo, env)
        if status.count("Success") + status.count("Failed") >= 2:
            break
        time.sleep(3)
    assert status.count("Success") == 2, status
    client = MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    name = yaml.safe_load((repo / "params.yaml").read_text())["mlflow"]["experiment"]
    experiment_id = client.get_experiment_by_name(name).experiment_id
    reports = client.search_runs([experiment_id], "attributes.run_name = 'report'", max_results=100)
    assert len(reports) >= 2 and {run.info.status for run in reports} == {"FINISHED"}
    for configuration in ("edm", "eps"):
        current = client.search_runs([experiment_id], f"tags.kind = 'series' and tags.configuration = '{configuration}'")
        assert len(current) == 3 and {run.info.status for run in current} == {"FINISHED"}, configuration
        steps = [[point.step for point in client.get_metric_history(run.info.run_id, "fid")] for run in current]
        assert all(len(points) == 1 for points in steps), steps  # one budget each: finished, from one grid
        assert all(points[0] <= 4 for points in steps) or all(points[0] >= 7 for points in steps), (configuration, steps)

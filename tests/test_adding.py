"""docs/adding.md's recipes hold: in a copy of the project, each addition made in exactly the files the
page counts (a solver, a noise schedule, a per-cell metric, a figure, a dataset) works everywhere it
should: the study's tests pass there, params name the new entries, and the tiny study carries the new
metric into every file, run, view and table, and the new figure into the report and its page."""

import copy
import csv
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from tasks.compute.provenance import PROJECT
from tests.conftest import TINY

pytestmark = pytest.mark.slow

COPIED = ["models", "schema", "tasks", "flows", "tools", "tests", "profiles", "docs", "params.yaml", "dvc.yaml", "pyproject.toml"]


def after(anchor, text):
    """An edit: `text` inserted right after the one occurrence of `anchor`."""
    return anchor, anchor + text


RECIPES = {  # docs/adding.md's name of an addition -> {file: [edits]}
    "solver": {
        "models/solvers/runge_kutta.py": [
            (
                "def heun(",
                '''def ralston(denoise, x, sigmas, *, generator=None):
    """Ralston's 2nd-order Runge-Kutta method (Ralston 1962): the slope at 2/3 of the step weighs 3/4;
    Euler on the step into sigma = 0."""
    for sigma, sigma_next in steps(sigmas):
        d = derivative(denoise, x, sigma)
        if sigma_next == 0:
            x = x + (sigma_next - sigma) * d
            continue
        sigma_two_thirds = sigma + 2 / 3 * (sigma_next - sigma)
        d_late = derivative(denoise, x + (sigma_two_thirds - sigma) * d, sigma_two_thirds)
        x = x + (sigma_next - sigma) * (d / 4 + 3 * d_late / 4)
    return x


def heun(''',
            ),
        ],
        "models/axes.py": [
            after(
                "SOLVER_ENTRIES = {\n",
                '    "ralston": SolverEntry(paper="Ralston 1962", order=2, stochastic=False, calls_per_step=2, summary="RK2"),\n',
            )
        ],
        "models/solvers/__init__.py": [
            ("from .runge_kutta import euler, heun, midpoint", "from .runge_kutta import euler, heun, midpoint, ralston"),
            ('        Solver("ddpm", ddpm),\n', '        Solver("ralston", ralston),\n        Solver("ddpm", ddpm),\n'),
        ],
    },
    "noise schedule": {
        "models/noise_schedules.py": [
            (
                "\nNOISE_SCHEDULES = {",
                '''
class LogSNRLinear(NoiseSchedule):
    """VP with log-SNR linear in t (Kingma et al. 2021, VDM's fixed schedule): log sigma from sigma_min to sigma_max."""

    def __init__(self, sigma_min=0.002, sigma_max=80.0):
        super().__init__()
        self.log_min, self.log_max, self.t_min, self.t_max = math.log(sigma_min), math.log(sigma_max), 0.0, 1.0

    def edm_sigma(self, t):
        return torch.exp(self.log_min + (self.log_max - self.log_min) * torch.as_tensor(t))

    def time(self, sigma):
        return (torch.log(torch.as_tensor(sigma)) - self.log_min) / (self.log_max - self.log_min)


NOISE_SCHEDULES = {''',
            ),
            after("NOISE_SCHEDULES = {\n", '    "logsnr_linear": LogSNRLinear,\n'),
        ],
        "models/axes.py": [
            after(
                "NOISE_SCHEDULE_ENTRIES = {\n",
                '    "logsnr_linear": NoiseScheduleEntry(paper="Kingma et al. 2021", options=SigmaRange, summary="log-SNR linear"),\n',
            )
        ],
        "params.yaml": [
            after(
                "    schedule-learned: {parent: flow-uniform, varies: noise_schedule, noise_schedule: learned, grid: ablation}\n",
                "    schedule-logsnr_linear: {parent: flow-uniform, varies: noise_schedule, noise_schedule: logsnr_linear}\n",
            )
        ],
        "profiles/cifar10.yaml": [
            after(
                "    schedule-learned: {parent: flow-uniform, varies: noise_schedule, noise_schedule: learned, grid: ablation}\n",
                "    schedule-logsnr_linear: {parent: flow-uniform, varies: noise_schedule, noise_schedule: logsnr_linear}\n",
            )
        ],
    },
    "per-cell metric": {
        "tasks/compute/cells.py": [
            after(
                "    kid = kids(statistics.kid_real, statistics.kid_within, merged, weights)\n",
                "    norms = weights.double() @ merged.norm(dim=1).double() / weights.sum(1).double()  # mean feature norms\n",
            ),
            after(
                "        kid_bootstrap=kid[1:].tolist(),\n",
                "        norm=norms[0].item(),\n        norm_se=norms[1:].std().item(),\n        norm_bootstrap=norms[1:].tolist(),\n",
            ),
        ],
        "tasks/compute/rows.py": [
            after(
                "    kid_bootstrap: list[float]  # the KIDs of the same bootstrap resamples\n",
                '    norm: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC, CHART, TABLE, Score("feature norm")]\n'
                "    norm_se: Annotated[float, CSV, CELL_METRIC, SERIES_METRIC]\n"
                "    norm_bootstrap: list[float]\n",
            )
        ],
    },
    "figure": {
        "tasks/report/figures.py": [
            (
                "\ndef series_styles(rows):",
                '''
def seconds_figure(rows, floor=None, failures=None, layout=None):
    """`panel_figure` of each cell's sampling seconds against NFE."""

    def draw(axes, own, styles):
        for points, style, label in each_series(own, "seconds", styles):
            axes.plot([row["nfe"] for row in points], [row["seconds"] for row in points], marker="o", label=label, **style)
        nfe_axis(axes, own)
        axes.set(xlabel="NFE", ylabel="seconds")

    return panel_figure(rows, draw, failures, layout)


def series_styles(rows):''',
            )
        ],
        "tasks/report/outputs.py": [
            ("from .figures import fid_vs_nfe_figure,", "from .figures import seconds_figure, fid_vs_nfe_figure,"),
            after(
                '    model_figure("fid_vs_ode_error.png", fid_vs_ode_error_figure, "The solvers"),\n',
                '    model_figure("seconds_vs_nfe.png", seconds_figure, "The solvers"),\n',
            ),
        ],
        "dvc.yaml": [after("      - reports/fid_vs_ode_error.png\n", "      - reports/seconds_vs_nfe.png\n")],
    },
    "dataset": {
        "tasks/compute/data.py": [
            (
                "\nDATASETS = {",
                '''
def fashion_mnist(data):
    """Fashion-MNIST (Xiao et al. 2017): MNIST's format and sizes, clothes instead of digits."""
    return load_mnist(data.root, download=data.download, url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")


DATASETS = {''',
            ),
            after('"cifar10": cifar10', ', "fashion_mnist": fashion_mnist'),
        ],
        "schema/datasets.py": [
            after(
                "DATASET_ENTRIES = {\n",
                '    "fashion_mnist": DatasetEntry(source="Xiao et al. 2017", shape=(1, 28, 28), files=True, split="published"),\n',
            )
        ],
    },
}


def documented_counts():
    """docs/adding.md's "A new <name> (<n> files)" of each recipe."""
    text = (PROJECT / "docs" / "adding.md").read_text()
    return {name: int(count) for name, count in re.findall(r"\*\*A new ([a-z -]+) \((\d+) files?\)\*\*", text)}


def copy_with(recipes, target):
    """The project copied to `target` with every edit of `recipes` made; each edit's anchor must occur once."""
    for name in COPIED:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, target / name)
    for recipe in recipes.values():
        for path, edits in recipe.items():
            text = (target / path).read_text()
            for anchor, replacement in edits:
                assert text.count(anchor) == 1, (path, anchor)
                text = text.replace(anchor, replacement)
            (target / path).write_text(text)


def run(target, *command, env=None):
    done = subprocess.run(
        [sys.executable, *command], cwd=target, env={**os.environ, "PYTHONPATH": str(target), **(env or {})}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-6000:]
    return done.stdout


def test_each_recipe_touches_the_files_the_page_counts():
    assert documented_counts() == {name: len(recipe) for name, recipe in RECIPES.items()}


def test_every_recipe_made_in_a_copy_works_everywhere_it_should(tmp_path, prefect_api):
    target = tmp_path / "project"
    copy_with(RECIPES, target)
    run(target, "-m", "tools.axes_doc")
    run(target, "-m", "tools.dvc_deps")
    tests = [
        "test_axes.py",
        "test_solvers.py",
        "test_noise_schedules.py",
        "test_ablation.py",
        "test_provenance.py",
        "test_report.py",
        "test_rows.py",
        "test_data.py",
        "test_layers.py",
    ]
    run(target, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow", *(f"tests/{name}" for name in tests))
    root, params = tmp_path / "study", tmp_path / "tiny.yaml"
    tiny = copy.deepcopy(TINY)
    tiny["evaluate"]["solvers"].append({"name": "ralston"})
    tiny["train"]["configurations"]["tiny"]["noise_schedule"] = "logsnr_linear"
    params.write_text(yaml.safe_dump(tiny))
    run(target, "-m", "flows.study", "--params", str(params), "--root", str(root), env={"PREFECT_API_URL": prefect_api})
    cells = json.loads((root / "results" / "tiny" / "cells.json").read_text())["cells"]
    assert "ralston" in {row["solver"] for row in cells} and all(row["norm"] > 0 and len(row["norm_bootstrap"]) > 1 for row in cells)
    for path in (root / "results" / "tiny" / "fid.csv", root / "reports" / "best.csv"):
        with open(path, newline="") as file:
            assert {"norm", "norm_se"} <= set(next(csv.reader(file))), path
    with open(root / "reports" / "ablations.csv", newline="") as file:
        assert "reference_norm" in next(csv.reader(file))
    assert (root / "reports" / "seconds_vs_nfe.png").is_file() and (root / "results" / "tiny" / "seconds_vs_nfe.png").is_file()
    assert 'alt="seconds_vs_nfe.png"' in (root / "reports" / "index.html").read_text()
    checks = """
import sys
from mlflow import MlflowClient
from tasks.record.mlflow_views import VIEW_TAG
from tasks.record.tracking import tracking_uri
client = MlflowClient(tracking_uri(sys.argv[1]))
experiment = client.get_experiment_by_name("tiny")
series = client.search_runs([experiment.experiment_id], "tags.kind = 'series'")
cells = client.search_runs([experiment.experiment_id], "params.budget = '4'")
assert series and all("norm" in run.data.metrics for run in series + cells)
assert '"metricKey\\\\": \\\\"norm\\\\"' in experiment.tags[VIEW_TAG + "series-tiny"]
import json
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
with get_client(sync_client=True) as prefect:
    tables = prefect.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["cells-tiny"])))
assert any("feature norm" in json.loads(table.data)[0] for table in tables)
import numpy as np
from schema.study import Data
from tasks.compute.data import MNIST_FILES, prepare
from tests.test_data import write_idx
folder = sys.argv[2]
for name in MNIST_FILES:
    write_idx(f"{folder}/{name}", np.zeros((3, 28, 28) if "images" in name else (3,)), compress=False)
assert tuple(prepare(Data(dataset="fashion_mnist", root=folder)).train_images.shape) == (3, 1, 28, 28)
print("ok")
"""
    (tmp_path / "fashion").mkdir()
    done = run(target, "-c", checks, str(root), str(tmp_path / "fashion"), env={"PREFECT_API_URL": prefect_api})
    assert done.strip().endswith("ok")

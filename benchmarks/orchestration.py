"""What orchestration costs and what Dask workers gain, on the study itself.

    python -m benchmarks.orchestration overhead [--params params.yaml]
        `python -m flows.repro` (dvc repro, one Prefect server) on a fresh git copy of the project:
        wall time, time inside Prefect tasks (the union of their intervals, from the Prefect API),
        and the rest (process starts, imports, Prefect, MLflow, DVC) as a share of the wall time.
    python -m benchmarks.orchestration runners [--params profiles/smoke.yaml] [--repeats 3]
        `python -m flows.study` with the local task runner, Dask with 1 worker and with 2 workers,
        each repeat on a fresh root: median wall time and the speed-up of 2 workers over 1.

Prints a markdown table and writes JSON (--out)."""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefect.client.orchestration import get_client

from flows.servers import prefect_server

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = ["models", "flows", "tasks", "dvc.yaml", "prefect.toml", ".dvcignore", ".dvc/config", ".dvc/plots", "profiles"]
RUNNERS = {"local": {}, "dask, 1 worker": {"task_runner": "dask", "dask_workers": 1},
           "dask, 2 workers": {"task_runner": "dask", "dask_workers": 2}}


def copy_project(target, params):
    for name in SOURCES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)
    shutil.copy(params, target / "params.yaml")


def inside_tasks(api):
    """Seconds covered by at least one Prefect task run (the union of their intervals)."""
    os.environ["PREFECT_API_URL"] = api
    runs, page = [], None
    with get_client(sync_client=True) as client:
        while page is None or len(page) == 200:
            page = client.read_task_runs(limit=200, offset=len(runs))
            runs += page
    covered, end = 0.0, None
    for start, stop in sorted((run.start_time, run.end_time) for run in runs if run.start_time and run.end_time):
        if end is None or start > end:
            covered, end = covered + (stop - start).total_seconds(), stop
        elif stop > end:
            covered, end = covered + (stop - end).total_seconds(), stop
    return covered


def overhead(params):
    with tempfile.TemporaryDirectory() as folder, prefect_server() as api:
        repo = Path(folder)
        copy_project(repo, params)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")} | {"PREFECT_API_URL": api}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        for command in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"]):
            subprocess.run(command, cwd=repo, env=env, check=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows.repro"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        inside = inside_tasks(api)
    rows = [{"params": str(params), "wall_s": wall, "inside_tasks_s": inside, "orchestration_s": wall - inside,
             "orchestration_share": (wall - inside) / wall}]
    print("| params | wall | inside tasks | orchestration | share |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['params']} | {r['wall_s']:.0f} s | {r['inside_tasks_s']:.0f} s | {r['orchestration_s']:.0f} s | {100 * r['orchestration_share']:.1f} % |")
    return rows


def runners(params, repeats):
    times = {name: [] for name in RUNNERS}
    for _ in range(repeats):
        for name, orchestration in RUNNERS.items():  # interleaved, so that load drifts hit every runner alike
            with tempfile.TemporaryDirectory() as root:
                sets = [f"--set=orchestration.{key}={value}" for key, value in orchestration.items()]
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "flows.study", "--params", str(params), "--root", root, *sets], cwd=PROJECT,
                               check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"| task runner ({params}, median of {repeats}) | wall | speed-up over dask, 1 worker |\n|---|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.0f} s | {medians['dask, 1 worker'] / median:.2f}x |")
    return [{"runner": name, "wall_s": values, "median_s": medians[name]} for name, values in times.items()]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["overhead", "runners"])
    parser.add_argument("--params", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    if args.what == "overhead":
        rows = overhead((args.params or PROJECT / "params.yaml").resolve())
    else:
        rows = runners((args.params or PROJECT / "profiles" / "smoke.yaml").resolve(), args.repeats)
    out = args.out or PROJECT / "benchmarks" / "results" / f"orchestration_{args.what}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

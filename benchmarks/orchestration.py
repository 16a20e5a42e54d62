"""What orchestration costs and what Dask workers gain, on the study itself.

    python -m benchmarks.orchestration overhead [--params params.yaml] [--keep DIR] [--out benchmarks/results/orchestration_overhead.json]
        `python -m flows.runtime.repro` (dvc repro, one Prefect server) on a fresh git copy of the project and
        a fresh Prefect database made as bin/setup makes it, the server's start and stop included:
        per flow run (a stage, or one configuration's subflow in it), its time and the time inside its
        Prefect tasks (the union of their intervals, from the Prefect API; in a flow that runs subflows,
        such as train's one per configuration, only the subflows' tasks count as work); the time
        between flow runs (DVC, process starts, imports); and everything outside tasks (Prefect,
        MLflow, DVC, imports) as a share of the wall time.
    python -m benchmarks.orchestration runners [--params profiles/smoke.yaml] [--repeats 3]
            [--out benchmarks/results/orchestration_runners.json]
        `python -m flows.study` with the local task runner, Dask with 1 worker and with 2 workers,
        each repeat on a fresh root: median wall time and the speed-up of 2 workers over 1.

Prints a markdown table and writes JSON."""

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from prefect.client.orchestration import get_client

from flows.runtime.servers import prefect_server

from .helpers.measure import add_common, parse, write_json

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = ["models", "schema", "tasks", "flows", "dvc.yaml", "prefect.toml", ".dvcignore", ".dvc/config", ".dvc/plots", "profiles"]
RUNNERS = {
    "local": {},
    "dask, 1 worker": {"task_runner": "dask", "dask_workers": 1},
    "dask, 2 workers": {"task_runner": "dask", "dask_workers": 2},
}


def copy_project(target, params):
    for name in SOURCES:
        source = PROJECT / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target / name)
    shutil.copy(params, target / "params.yaml")


def union(intervals):
    """Seconds covered by at least one of the (start, end) intervals."""
    covered, end = 0.0, None
    for start, stop in sorted(intervals):
        if end is None or start > end:
            covered, end = covered + (stop - start).total_seconds(), stop
        elif stop > end:
            covered, end = covered + (stop - end).total_seconds(), stop
    return covered


def spans(runs):
    """(start, end) of every finished run."""
    return [(run.start_time, run.end_time) for run in runs if run.start_time and run.end_time]


def read_all(read):
    runs, page = [], None
    while page is None or len(page) == 200:
        page = read(limit=200, offset=len(runs))
        runs += page
    return runs


def stage_times(api):
    """[{stage, flow_s, tasks_s}] for every flow run on the Prefect server at `api` (one per DVC stage),
    in start order, and the union of all flow runs' and of all task runs' intervals."""
    os.environ["PREFECT_API_URL"] = api
    with get_client(sync_client=True) as client:
        flows = read_all(client.read_flow_runs)
        tasks = read_all(client.read_task_runs)
        names = {flow_id: client.read_flow(flow_id).name for flow_id in {run.flow_id for run in flows}}
    calls = {run.parent_task_run_id for run in flows}  # the task run that stands for a subflow in its parent flow
    parents = {task.flow_run_id for task in tasks if task.id in calls}
    tasks = [task for task in tasks if task.flow_run_id not in parents]  # the work is the tasks of flows that run no subflow
    stages = []
    for run in sorted(flows, key=lambda run: run.start_time):
        configuration = run.parameters.get("configuration")
        own = [task for task in tasks if task.flow_run_id == run.id]
        stages.append(
            {
                "stage": names[run.flow_id] + (f"@{configuration}" if configuration else ""),
                "flow_s": (run.end_time - run.start_time).total_seconds(),
                "tasks_s": union(spans(own)),
            }
        )
    return stages, union(spans(flows)), union(spans(tasks))


def overhead(params, keep=None):
    """`python -m flows.runtime.repro` as a user runs it (its own Prefect server's start and stop included), on
    a fresh Prefect database, which a second server then reads back; in the new folder `keep` (kept,
    with the study's results) or in a temporary one."""
    with contextlib.nullcontext(keep) if keep else tempfile.TemporaryDirectory() as folder:
        repo, home = Path(folder) / "repo", Path(folder) / "prefect-home"
        repo.mkdir(parents=True)
        copy_project(repo, params)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "PREFECT_"))} | {"PREFECT_HOME": str(home)}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
        for command in (
            [sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],  # as bin/setup does, before the study
            ["git", "init", "-q"],
            ["git", "add", "-A"],
            ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "b"],
        ):
            subprocess.run(command, cwd=repo, env=env, check=True)
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows.runtime.repro"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        os.environ["PREFECT_HOME"] = str(home)
        with prefect_server() as api:
            stages, in_flows, inside = stage_times(api)
    print("| stage | flow run | inside tasks | in the flow, outside tasks |\n|---|---|---|---|")
    for row in stages:
        print(f"| {row['stage']} | {row['flow_s']:.1f} s | {row['tasks_s']:.1f} s | {row['flow_s'] - row['tasks_s']:.1f} s |")
    print(f"| between flow runs (DVC, process starts, imports) | {wall - in_flows:.1f} s | | |")
    print(
        f"| whole `dvc repro` | {wall:.1f} s | {inside:.1f} s | "
        f"orchestration {wall - inside:.1f} s = {100 * (wall - inside) / wall:.1f} % |"
    )
    return [
        {
            "params": str(params),
            "wall_s": wall,
            "in_flow_runs_s": in_flows,
            "inside_tasks_s": inside,
            "orchestration_s": wall - inside,
            "orchestration_share": (wall - inside) / wall,
            "stages": stages,
        }
    ]


def runners(params, repeats):
    times = {name: [] for name in RUNNERS}
    for _ in range(repeats):
        for name, orchestration in RUNNERS.items():  # interleaved, so that load drifts hit every runner alike
            with tempfile.TemporaryDirectory() as root:
                sets = [f"--set=orchestration.{key}={value}" for key, value in orchestration.items()]
                start = time.perf_counter()
                subprocess.run(
                    [sys.executable, "-m", "flows.study", "--params", str(params), "--root", root, *sets],
                    cwd=PROJECT,
                    check=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values) for name, values in times.items()}
    print(f"| task runner ({params}, median of {repeats}) | wall | speed-up over dask, 1 worker |\n|---|---|---|")
    for name, median in medians.items():
        print(f"| {name} | {median:.0f} s | {medians['dask, 1 worker'] / median:.2f}x |")
    return [{"runner": name, "wall_s": values, "median_s": medians[name]} for name, values in times.items()]


def main():
    arguments = argparse.ArgumentParser(prog="python -m benchmarks.orchestration", description=__doc__.splitlines()[0])
    what = arguments.add_subparsers(dest="what", required=True)
    for name, params, repeats, purpose in (
        ("overhead", "params.yaml", None, "orchestration's share of `python -m flows.runtime.repro`"),
        ("runners", "profiles/smoke.yaml", 3, "`python -m flows.study` with each task runner"),
    ):
        command = add_common(what.add_parser(name, help=purpose, description=purpose), f"orchestration_{name}", repeats)
        command.add_argument("--params", type=Path, default=PROJECT / params, help=f"the study's parameters (default: {params})")
    what.choices["overhead"].add_argument(
        "--keep", type=Path, help="run the study in this new folder and keep it (default: a temporary one)"
    )
    args = parse(arguments)
    params = args.params.resolve()
    if args.what == "overhead":
        write_json({"rows": overhead(params, args.keep)}, args.out)
    else:
        write_json({"params": str(params), "repeats": args.repeats, "rows": runners(params, args.repeats)}, args.out)


if __name__ == "__main__":
    main()

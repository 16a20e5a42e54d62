"""Local servers for runs of more than one process: a `prefect server` (the API every flow, worker
and deployment talks to) and an `mlflow server` (a database backend and an artifacts destination,
instead of each process opening the SQLite file), both bound to 127.0.0.1 on free ports.

`python -m flows.runtime.servers [--root DIR]` starts both, prints the environment to export, and stops
them on Ctrl-C or SIGTERM. The MLflow server keeps the study's own store: DIR/mlflow.db and DIR/mlartifacts."""

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def server(command, health_url, name, timeout=120, env=None, wait=True):
    """Run `command` (with `env` added to the environment) until the block ends; enter once `health_url`
    answers, or at once if not `wait` (its users wait for it: `api_ready`)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
        try:
            if wait:
                wait_until_healthy(health_url, process, log, name, timeout)
            yield
        finally:
            stop(process)


def stop(process):
    """SIGTERM to the server and every process it started (uvicorn, gunicorn workers), SIGKILL to those left after 30 s."""
    try:
        processes = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for each in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            each.terminate()
    _, alive = psutil.wait_procs(processes, timeout=30)
    for each in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            each.kill()
    process.wait()


def wait_until_healthy(url, process, log, name, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{name} exited with status {process.returncode}:\n{log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"{name} at {url} not healthy after {timeout} s")


def api_ready(url, timeout=120):
    """Return once the Prefect API at `url` answers its health check; a TimeoutError naming it after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{url.rstrip('/')}/health", timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the Prefect API at {url} (PREFECT_API_URL) did not answer in {timeout} s") from None
            time.sleep(0.2)


@contextmanager
def prefect_server(port=None, wait=True):
    """The API URL of a `prefect server` on 127.0.0.1 (a free port unless given), stopped on exit;
    entered once it answers, or at once if not `wait` (then `api_ready` before using it)."""
    port = port or free_port()
    url = f"http://127.0.0.1:{port}/api"
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    with server(command, f"{url}/health", "prefect server", env={"PREFECT_SERVER_ANALYTICS_ENABLED": "false"}, wait=wait):
        yield url


@contextmanager
def mlflow_server(root=".", port=None):
    """The tracking URI of an `mlflow server` on 127.0.0.1 (a free port unless given) over the
    study's store under `root` (mlflow.db, artifacts in mlartifacts/), stopped on exit."""
    port, root = port or free_port(), Path(root).resolve()
    url = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "2",
        "--backend-store-uri",
        f"sqlite:///{root / 'mlflow.db'}",
        "--artifacts-destination",
        str(root / "mlartifacts"),
    ]
    # without MLflow's job runner (GenAI jobs; six processes the study never uses)
    with server(command, f"{url}/health", "mlflow server", env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}):
        yield url


@contextmanager
def prefect_and_mlflow_servers(root=".", prefect_port=None, mlflow_port=None):
    """(Prefect API URL, MLflow tracking URI) of `prefect_server()` and `mlflow_server(root)`, started
    at once: each takes 10-25 s to come up here, most of it migrating a new database."""
    managers = [prefect_server(prefect_port), mlflow_server(root, mlflow_port)]
    with ExitStack() as stack, ThreadPoolExecutor(len(managers)) as pool:
        started = [pool.submit(manager.__enter__) for manager in managers]
        wait(started)
        for manager, future in zip(managers, started):
            if future.exception() is None:
                stack.push(manager.__exit__)  # stopped on the way out, also when the other failed to start
        yield tuple(future.result() for future in started)


def interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m flows.runtime.servers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default=".", help="the repository root whose MLflow store the server serves (default: .)")
    parser.add_argument("--prefect-port", type=int, default=4200)
    parser.add_argument("--mlflow-port", type=int, default=5000)
    args = parser.parse_args(argv)
    for stop_signal in (signal.SIGTERM, signal.SIGINT):  # a process manager's or `kill`'s stop as Ctrl-C (even where
        signal.signal(stop_signal, interrupted)  # a parent shell left SIGINT ignored): the servers stop too
    servers = prefect_and_mlflow_servers(args.root, args.prefect_port, args.mlflow_port)
    with contextlib.suppress(KeyboardInterrupt), servers as (prefect, mlflow):  # stopped whenever the signal comes
        print(
            f"export PREFECT_API_URL={prefect}\nexport MLFLOW_TRACKING_URI={mlflow}\n"
            f"Prefect UI: {prefect.removesuffix('/api')}   MLflow UI: {mlflow}   (Ctrl-C stops both)",
            flush=True,
        )
        signal.pause()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

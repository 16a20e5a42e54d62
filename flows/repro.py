"""`python -m flows.repro [dvc repro arguments]`: `dvc repro` with one Prefect server for all its
stages. Without PREFECT_API_URL every stage's process would start (and stop) Prefect's ephemeral
API, ~8 s each; here a local `prefect server` on 127.0.0.1 is started first, shared by every stage,
and stopped at the end. With PREFECT_API_URL set, that server is used instead."""

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager

from tasks.tracking import tracking_uri


WHERE_TO_LOOK = """
Results: reports/fid_vs_nfe.png, reports/best.csv, reports/summary.json, reports/samples/
         dvc metrics show; dvc plots show (then open dvc_plots/index.html)
MLflow:  mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)"""


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def prefect_server(timeout=120):
    """The API URL of a `prefect server` started on 127.0.0.1 (a free port) and stopped on exit."""
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"},
        )
        try:
            wait_until_healthy(url, server, log, timeout)
            yield url
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def wait_until_healthy(url, server, log, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"prefect server exited with status {server.returncode}:\n{log.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"prefect server at {url} not healthy after {timeout} s")


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    command = [sys.executable, "-m", "dvc", "repro", *args]
    # the stages' `python` is this interpreter, whether or not its environment is activated
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    if env.get("PREFECT_API_URL"):
        status = subprocess.call(command, env=env)
    else:
        with prefect_server() as url:
            print(f"Prefect server for this run: {url.removesuffix('/api')} (stopped at the end)", flush=True)
            status = subprocess.call(command, env={**env, "PREFECT_API_URL": url})
    if status == 0:
        print(WHERE_TO_LOOK.format(uri=tracking_uri(".")))
    return status


if __name__ == "__main__":
    raise SystemExit(main())

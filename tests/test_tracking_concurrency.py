"""Several threads and processes logging to one SQLite MLflow store at once lose nothing and raise
no "database is locked": the store is created and migrated once, before the fan-out."""

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlflow import MlflowClient

from tasks.record.tracking import open_experiment, run_for, tracking_uri

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

PROJECT = Path(__file__).resolve().parents[1]
METRICS = 200
CHILD = textwrap.dedent("""
    import sys
    from mlflow import MlflowClient
    uri, run_id, name = sys.argv[1:]
    client = MlflowClient(uri)
    for step in range({metrics}):
        client.log_metric(run_id, name, float(step), step=step)
""").format(metrics=METRICS)


def test_eight_threads_and_four_processes_log_every_metric(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    client, experiment_id = open_experiment(tmp_path, "concurrency", tmp_path / "artifacts")  # created and migrated once
    run_id = run_for(client, experiment_id, "concurrency/run", "run")
    uri = tracking_uri(tmp_path)
    children = [
        subprocess.Popen([sys.executable, "-c", CHILD, uri, run_id, f"process-{i}"], cwd=PROJECT, stderr=subprocess.PIPE, text=True)
        for i in range(4)
    ]

    def log(name):
        thread_client = MlflowClient(uri)
        for step in range(METRICS):
            thread_client.log_metric(run_id, name, float(step), step=step)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(log, [f"thread-{i}" for i in range(8)]))
    for child in children:
        assert child.wait(timeout=300) == 0, child.stderr.read()
    names = [f"thread-{i}" for i in range(8)] + [f"process-{i}" for i in range(4)]
    for name in names:
        history = client.get_metric_history(run_id, name)
        assert sorted(m.step for m in history) == list(range(METRICS)), name

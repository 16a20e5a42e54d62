"""`python -m flows.runtime.servers`: the local Prefect and MLflow servers stop with it, whether it is
stopped by Ctrl-C or by SIGTERM (a process manager, `kill`)."""

import contextlib
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from flows.runtime.servers import free_port

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

PROJECT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_the_servers_stop_with_their_command_on_sigterm_as_on_ctrl_c(tmp_path, stop):
    command = [sys.executable, "-m", "flows.runtime.servers", "--root", str(tmp_path)]
    command += ["--prefect-port", str(free_port()), "--mlflow-port", str(free_port())]
    process = subprocess.Popen(command, cwd=PROJECT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    children = []
    try:
        lines = []
        while not any("Ctrl-C" in line for line in lines):  # printed once both servers answer
            line = process.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        children = psutil.Process(process.pid).children(recursive=True)
        assert len(children) >= 2  # the Prefect server, the MLflow server and their workers
        process.send_signal(stop)
        assert process.wait(timeout=150) == 0  # each server has 30 s to stop before it is killed
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == []
    finally:  # nothing left behind, whatever failed
        process.kill()  # a no-op once it has exited
        for each in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                each.kill()

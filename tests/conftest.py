"""Shared by the tests: the same global random state at every test's start (a failure reproduces),
one temporary Prefect API for the tests that run flows, torch on one thread for tests that compare
weights bit for bit, and the small studies, configurations and noise schedules many tests build."""

import pytest
import torch
from prefect.logging.handlers import APILogWorker
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness

from models.noise_schedules import NOISE_SCHEDULES, LearnedVP
from schema.configurations import Configuration

TINY_NETWORK = {"name": "unet", "options": {"channels": 8, "channel_mult": [1, 2], "attention": False}}  # about 10k parameters

TINY = {  # a whole study in seconds: one configuration of 30 steps, 64 samples per cell
    "features": {"num_features": 16, "steps": 60},
    "train": {
        "configurations": {
            "tiny": {
                "network": TINY_NETWORK,
                "steps": 30,
                "batch_size": 32,
                "warmup_steps": 5,
                "ema_decay": 0.9,
                "checkpoint_every": 10,
            }
        }
    },
    "evaluate": {
        "solvers": [{"name": "euler"}, {"name": "ddim", "options": {"eta": 1.0}}],
        "step_schedules": [{"name": "karras"}],
        "nfe": [4],
        "reference_nfe": 7,
        "num_samples": 64,
    },
    "mlflow": {"experiment": "tiny"},
}


def tiny_configuration(**changes):
    """The configuration "tiny": the tiny U-Net, batches of 16, 3 warm-up steps, EMA 0.9, with `changes`."""
    fields = dict(name="tiny", network=TINY_NETWORK, steps=12, batch_size=16, warmup_steps=3, ema_decay=0.9, checkpoint_every=4)
    return Configuration(**{**fields, **changes})


def noise_schedule(name, hidden=64, dtype=torch.float64):
    """The noise schedule `name` with its defaults; a learned one small (`hidden` units) in `dtype`."""
    return LearnedVP(hidden=hidden).to(dtype) if name == "learned" else NOISE_SCHEDULES[name]()


@pytest.fixture(autouse=True)
def seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module's tests, restored after: runs in this process compute the
    same bits as one-threaded children and Dask workers (and small ops do not wait on a busy core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def prefect_api():
    """The URL of a temporary Prefect API (its own database) that flows in this process and in the
    subprocesses given the URL report to; 120 s for its server to start (the harness's default 30 s
    were too few on a loaded 2-core machine)."""
    with prefect_test_harness(server_startup_timeout=120):
        yield PREFECT_API_URL.value()


@pytest.fixture(scope="session", autouse=True)
def ephemeral_prefect_api_stopped_in_the_session():
    """Prefect stops the temporary API server that a flow run without PREFECT_API_URL starts at
    interpreter exit, when pytest has closed the stream its log handler writes to: a "Logging error"
    traceback after a green run. Stopped here, at the end of the session, instead, once the logs
    still queued for it have been sent."""
    yield
    APILogWorker.drain_all(timeout=30)
    for server in list(SubprocessASGIServer._instances.values()):
        server.stop()

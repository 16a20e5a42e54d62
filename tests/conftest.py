"""Every test starts from the same global random state, so a failure reproduces; the tests that run
flows share one temporary Prefect API; tests that compare weights bit for bit compute on one thread."""

import pytest
import torch
from prefect.settings import PREFECT_API_URL
from prefect.testing.utilities import prefect_test_harness


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

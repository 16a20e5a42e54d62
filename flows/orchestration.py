"""The task runner that params' `orchestration` section asks for: Prefect's thread pool in this
process, or Dask through prefect-dask, on a LocalCluster of worker processes started here or on a
running Dask scheduler (whose workers may be other machines, one GPU each)."""

from prefect.task_runners import ThreadPoolTaskRunner


def task_runner(orchestration):
    """A fresh task runner for `orchestration` (a validated `flows.params.Orchestration`). Dask's
    nanny starts each LocalCluster worker with OMP_NUM_THREADS=1: one core per worker."""
    if orchestration.task_runner == "local":
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner  # imported here: it loads Dask (0.3 s) into every stage otherwise

    if orchestration.dask_address:
        return DaskTaskRunner(address=orchestration.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": orchestration.dask_workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    )

"""The task runner that params' `orchestration` section asks for: Prefect's thread pool in this
process, or Dask through prefect-dask, on a LocalCluster of worker processes started here or on a
running Dask scheduler (whose workers may be other machines, one GPU each)."""

import os
import threading

import torch
from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner


def cores():
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def at_once(orchestration, count):
    """How many of `count` configurations the local runner trains or evaluates at once: `parallel`, or one per core."""
    return max(1, min(count, orchestration.parallel or cores()))


def task_runner(orchestration, count=1):
    """A fresh task runner for `orchestration` (a validated `schema.study.Orchestration`) that runs
    `count` configurations. Locally, threads that share the cores: each of `at_once` tasks computes
    on cores / at_once of them (torch's intra-op threads), which on a small network gives more than
    one task on all cores. Dask's nanny starts each LocalCluster worker with OMP_NUM_THREADS=1: one
    core per worker."""
    if orchestration.task_runner == "local":
        workers = at_once(orchestration, count)
        torch.set_num_threads(max(1, cores() // workers))
        return ThreadPoolTaskRunner(max_workers=workers)
    from prefect_dask import DaskTaskRunner  # imported here: it loads Dask (0.3 s) into every stage otherwise

    if orchestration.dask_address:
        return DaskTaskRunner(address=orchestration.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": orchestration.dask_workers, "threads_per_worker": 1, "processes": True, "dashboard_address": None}
    )


@task(cache_policy=NO_CACHE)
def configuration_task(run_one, configuration, stage):
    run_one(configuration=configuration, **stage)


def each_configuration(run_one, names, cost, task_name=None, **stage):
    """`run_one` (a flow of one configuration, or a function that runs such flows, called with
    `stage`'s keywords) for each of `names` as concurrent tasks named `task_name` (default: the flow's
    name without " one") on the running flow's task runner, the highest `cost(name)` first (longest
    processing time first: the tasks running at once end about together); a failure is raised once
    all have ended."""
    run = configuration_task.with_options(name=task_name or run_one.name.removesuffix(" one"))
    futures = [run.submit(run_one, name, stage) for name in sorted(names, key=cost, reverse=True)]
    try:
        wait(futures)
    except BaseException:  # SIGTERM or Ctrl-C, raised in this thread: the tasks' threads stop at their next step
        STOP.set()
        wait(futures)
        raise
    for future in futures:
        future.result()


STOP = threading.Event()  # set once the flow that runs the configurations' tasks in threads is interrupted


def go_on():
    """Raise InterruptedError in a configuration's task once its stage is interrupted (`STOP`)."""
    if STOP.is_set():
        raise InterruptedError("stopped: the stage was interrupted")

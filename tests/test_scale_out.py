"""Scale-out on one machine: the study flow on a Dask LocalCluster of two worker processes (through
prefect-dask and a real Prefect API) gives the local run's FIDs to float64 rounding, with the
configurations running at the same time, and each cell's samples split into shards. Both runs
compute on one torch thread: this process (`one_thread`) and each worker (Dask's nanny starts it
with OMP_NUM_THREADS=1), so that they train the same weights bit for bit."""

import json
import os

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterId, FlowRunFilterParentFlowRunId

from flows.study import run_study
from tasks.workspace import Workspace
from tests.conftest import TINY

pytestmark = pytest.mark.slow  # runs flows, servers or DVC: out of the quick tier

TWO = {
    **TINY,
    "train": {
        "configurations": {"tiny": TINY["train"]["configurations"]["tiny"], "other": {**TINY["train"]["configurations"]["tiny"], "seed": 1}}
    },
    "evaluate": {**TINY["evaluate"], "batch_size": 16},
}


def study_run(tmp_path, name, orchestration):
    """Run the TWO study under `tmp_path/name`: ({configuration: {cell label: fid}}, [(start, end)] of its configurations' tasks)."""
    params = tmp_path / f"{name}.yaml"
    params.write_text(yaml.safe_dump({**TWO, "orchestration": orchestration}))
    state = run_study(params=str(params), root=str(tmp_path / name), return_state=True)
    with get_client(sync_client=True) as client:
        (configurations,) = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[state.state_details.flow_run_id])),
            flow_filter=FlowFilter(name=FlowFilterName(any_=["configurations"])),
        )
        tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[configurations.id])))
    spans = [(run.start_time, run.end_time) for run in tasks if run.name.startswith("train and evaluate")]
    workspace = Workspace(tmp_path / name)
    fids = {
        c: {
            f"{r['solver']}/{r['step_schedule']}/{r['budget']}": r["fid"]
            for r in json.loads((workspace.results(c) / "cells.json").read_text())["cells"]
        }
        for c in ("tiny", "other")
    }
    return fids, spans


def test_two_dask_workers_give_the_local_fids_and_run_configurations_at_once(tmp_path, monkeypatch, prefect_api, one_thread):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    local, _ = study_run(tmp_path, "local", {"task_runner": "local"})
    environment = dict(os.environ)  # Dask's nanny sets OMP_NUM_THREADS & co. in this process too
    try:
        dask, spans = study_run(tmp_path, "dask", {"task_runner": "dask", "dask_workers": 2, "fid_shards": 2})
    finally:
        os.environ.clear()
        os.environ.update(environment)
    assert local.keys() == dask.keys() and all(local[c].keys() == dask[c].keys() for c in local)
    for configuration, cells in local.items():
        for label, fid in cells.items():
            assert dask[configuration][label] == pytest.approx(fid, rel=1e-9), (configuration, label)
    first, second = sorted(spans)
    assert second[0] < first[1], f"the configurations ran one after the other: {spans}"

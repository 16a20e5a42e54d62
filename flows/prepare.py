"""Stage `prepare`: the dataset split into train and test tensors under data/prepared/, and the
MLflow store and experiment created once, before any stage that could log in parallel."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.runtime.cli import main
from schema.params_file import load_params
from tasks.compute.data import prepare_saved
from tasks.record.tracking import open_experiment
from tasks.workspace import Workspace

load_split_save = task(prepare_saved, name="load, split and save data", cache_policy=NO_CACHE)
create_experiment = task(open_experiment, name="create MLflow experiment", cache_policy=NO_CACHE)


@flow(name="prepare", description="Prepare the dataset: train/test tensors in [-1, 1] under data/prepared/.")
def prepare_data(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    data = load_split_save(study.data, workspace.data)
    log.info(
        f"{study.data.dataset}: {len(data.train_images)} train and {len(data.test_images)} test images of shape "
        f"{tuple(data.train_images.shape[1:])} in {workspace.data}"
    )
    create_experiment(workspace.root, study.mlflow.experiment, workspace.artifacts)


if __name__ == "__main__":
    raise SystemExit(main(prepare_data))

"""Stage `features`: the FID feature space, fitted once (the classifier trained on the data, or
Inception-v3 from its weights file), with the real-data statistics every evaluation reuses and the
data's own FID floor, under features/."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.device import device
from tasks.checkpoints import save_atomic
from tasks.data import TrainTest, load_dataset
from tasks.features import fit
from tasks.files import write_json

from .params import load_params
from .workspace import Workspace, main

fit_features = task(fit, name="fit FID features", cache_policy=NO_CACHE)


@flow(name="features", description="Fit the FID feature network and the real-data statistics.")
def fit_feature_space(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    data = TrainTest(*load_dataset(workspace.data / "train.pt"), *load_dataset(workspace.data / "test.pt"))
    state, metrics = fit_features(study.features, data, device=device(), log=log.info)
    save_atomic(state, workspace.features / "statistics.pt")
    write_json(metrics, workspace.features / "metrics.json")


if __name__ == "__main__":
    raise SystemExit(main(fit_feature_space))

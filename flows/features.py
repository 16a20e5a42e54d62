"""Stage `features`: the FID feature space, fitted once (the classifier trained on the data, or
Inception-v3 from its weights file), with the real-data statistics every evaluation reuses and the
data's own FID floor, under features/."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from flows.runtime.cli import main
from schema.params_file import load_params
from tasks.compute.feature_space import fit_saved
from tasks.device import device
from tasks.workspace import Workspace

fit_features = task(fit_saved, name="fit FID features", cache_policy=NO_CACHE)


@flow(name="features", description="Fit the FID feature network and the real-data statistics.")
def fit_feature_space(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    fit_features(study.features, workspace, device=device(), log=log.info)


if __name__ == "__main__":
    raise SystemExit(main(fit_feature_space))

"""The whole study as one Prefect flow: prepare -> features -> train and evaluate every
configuration -> report, the stages of dvc.yaml run in order in one process (no DVC caching;
training resumes from its checkpoints)."""

from prefect import flow

from .evaluate import evaluate_one
from .features import fit_feature_space
from .params import load_params
from .prepare import prepare_data
from .report import report_study
from .train import train_one
from .workspace import main


@flow(name="study", description="The whole study: prepare, features, train and evaluate every configuration, report.")
def run_study(params: str = "params.yaml", root: str = "."):
    study = load_params(params)
    prepare_data(params=params, root=root)
    fit_feature_space(params=params, root=root)
    for name in study.train.configurations:
        train_one(configuration=name, params=params, root=root)
        evaluate_one(configuration=name, params=params, root=root)
    report_study(params=params, root=root)


if __name__ == "__main__":
    raise SystemExit(main(run_study))

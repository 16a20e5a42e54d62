"""The whole study as one Prefect flow: prepare -> features -> train and evaluate every
configuration -> report, the stages of dvc.yaml in one process (no DVC caching; training resumes
from its checkpoints). The configurations run as concurrent tasks on the task runner of params'
orchestration section: in threads of this process, or in parallel on Dask workers."""

from typing import Any

from prefect import flow

from flows.runtime.cli import main
from flows.runtime.orchestration import each_configuration, task_runner
from schema.params_file import load_params

from .evaluate import evaluate_one
from .features import fit_feature_space
from .prepare import prepare_data
from .report import report_study
from .train import train_one


def configuration_stages(configuration, params, root, overrides):
    """The stages train@<configuration> and evaluate@<configuration>, on the worker that runs them."""
    train_one(configuration=configuration, params=params, root=root, overrides=overrides)
    evaluate_one(configuration=configuration, params=params, root=root, overrides=overrides)


@flow(name="configurations", description="Train and evaluate every configuration, as concurrent tasks.")
def every_configuration(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    """`configuration_stages` of each configuration as a task, the longest training (steps x batch)
    first; an interrupted flow stops them at their next step."""
    configurations = load_params(params, overrides).train.configurations
    cost = lambda name: configurations[name].steps * configurations[name].batch_size
    stage = dict(params=params, root=root, overrides=overrides)
    each_configuration(configuration_stages, list(configurations), cost, task_name="train and evaluate", **stage)


@flow(name="study", description="The whole study: prepare, features, train and evaluate every configuration, report.")
def run_study(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study = load_params(params, overrides)
    stage = dict(params=params, root=root, overrides=overrides)
    prepare_data(**stage)
    fit_feature_space(**stage)
    every_configuration.with_options(task_runner=task_runner(study.orchestration, len(study.train.configurations)))(**stage)
    report_study(**stage)


if __name__ == "__main__":
    raise SystemExit(main(run_study))

"""Stage `train`: train every configuration (or those named), resumably, with checkpoints under
checkpoints/<configuration>/ and its loss curve in the configuration's MLflow run. The
configurations run as concurrent tasks on params' task runner; one already trained to its steps
with the same identity (`tasks.compute.provenance.training_identity`) costs a check, so that a change to
one configuration trains that one only."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from flows.runtime.cli import main
from flows.runtime.orchestration import each_configuration, go_on
from schema.params_file import load_params
from tasks.compute.data import training_images
from tasks.compute.provenance import training_identity
from tasks.compute.train import train
from tasks.device import device
from tasks.record.tracking import configuration_run, fail_run, finish_run, log_curve
from tasks.workspace import Workspace

LOG_EVERY = 100  # steps of loss sent to MLflow at once


@task(name="train configuration", cache_policy=NO_CACHE)
def train_configuration(study, config, workspace):
    """Train `config` from (or resuming) its checkpoints; the loss of every step goes to MLflow. A
    diverging configuration marks its run FAILED and raises; its last good checkpoint stays."""
    log = get_run_logger()
    images = training_images(workspace)
    identity = training_identity(config, images)
    client, _, run_id = configuration_run(study, config, workspace.root, workspace.artifacts, identity)
    progress = tqdm(total=config.steps, desc=f"train {config.name}", unit="step", mininterval=5)
    losses = []

    def on_step(step, loss):
        go_on()
        progress.update(step - progress.n)
        losses.append((step, loss))
        if len(losses) == LOG_EVERY:
            log_curve(client, run_id, "loss", losses)
            losses.clear()

    try:
        train(config, images, workspace.checkpoints(config.name), fingerprint=identity, device=device(), on_step=on_step, log=log.info)
    except BaseException as error:
        fail_run(client, run_id, error)
        raise
    finally:
        log_curve(client, run_id, "loss", losses)
        progress.close()
    finish_run(client, run_id)
    log.info(f"{config.name}: trained {config.steps} steps; checkpoints in {workspace.checkpoints(config.name)}")


@flow(name="train one", description="Train one configuration of train.configurations, resumably.")
def train_one(configuration: str, params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    """A configuration that diverges is recorded in checkpoints/<name>/diverged.json (its evaluation
    and the report then mark it failed) and the flow ends normally, so that the other
    configurations' stages still run; any other error fails the flow."""
    study, workspace = load_params(params, overrides), Workspace(root)
    config = study.configuration(configuration)
    workspace.record_divergence(config.name, None)
    try:
        train_configuration(study, config, workspace)
    except FloatingPointError as error:
        get_run_logger().error(f"{error}; recorded in {workspace.diverged(config.name)}; the other configurations go on")
        workspace.record_divergence(config.name, str(error))


@flow(name="train", description="Train every configuration of train.configurations (or those named), resumably, at once.")
def train_configurations(
    params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None, configurations: list[str] | None = None
):
    """`train_one` of each configuration as a task, the longest training (steps x batch) first."""
    study = load_params(params, overrides)
    names = configurations or list(study.train.configurations)
    cost = lambda name: study.configuration(name).steps * study.configuration(name).batch_size
    each_configuration(train_one, names, cost, params=params, root=root, overrides=overrides)


if __name__ == "__main__":
    raise SystemExit(main(train_configurations, per_configuration=True))

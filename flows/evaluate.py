"""Stage `evaluate`: sample every trained configuration (or those named) with every cell of its
grid (clipping x solver x step schedule x NFE budget) from the same initial noise, score each cell
with FID, and record the cells under results/<configuration>/ and as nested MLflow runs. The
configurations run as concurrent tasks on params' task runner; a cell's samples are split into
orchestration.fid_shards tasks whose features are merged into one FID. A cell already logged as the same computation (same settings,
model weights, feature space and code: `tasks.evaluate.cell_key`) is read back from MLflow
instead of sampled again; any other is computed, and an older run of it is left as it was."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from tasks.data import training_images
from tasks.device import device
from tasks.evaluate import cell_key, cell_row, cells, logged_row, record_cell, sample_shard, shard_ranges
from tasks.features import feature_space_digest, load_statistics
from tasks.provenance import tensors_digest, training_identity
from tasks.report import file_name
from tasks.results import write_results
from tasks.sample import initial_noise
from tasks.tracking import axis_tags, configuration_run
from tasks.train import load_trained
from tasks.workspace import Workspace

from .cli import main
from .orchestration import each_configuration, go_on
from .params_file import load_params

load_model = task(load_trained, name="load trained model", cache_policy=NO_CACHE)
load_real_statistics = task(load_statistics, name="load real statistics", cache_policy=NO_CACHE)
reuse = task(logged_row, name="reuse logged cell", cache_policy=NO_CACHE)
record = task(record_cell, name="log cell to MLflow", cache_policy=NO_CACHE)
write = task(write_results, name="write results", cache_policy=NO_CACHE)


@task(name="sample and score a shard", cache_policy=NO_CACHE)
def score_shard(model, cell, noise, extractor, evaluate, first):
    """`tasks.evaluate.sample_shard` on the device of the worker that runs it."""
    where = device()
    return sample_shard(model, cell, noise, extractor.to(where), evaluate, first, device=where)


@flow(name="evaluate one", description="Sample one trained configuration with every cell of its grid; score with FID.")
def evaluate_one(configuration: str, params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    config, evaluate = study.configuration(configuration), study.evaluate
    grid = study.grid(config)
    folder = workspace.results(config.name)
    training = training_identity(config, training_images(workspace))
    client, experiment_id, run_id = configuration_run(study, config, workspace.root, workspace.artifacts, training)
    failure = workspace.divergence(config.name)
    if failure:
        log.error(f"{config.name}: not evaluated, its training diverged: {failure}")
        for path in write([], workspace.data_floor(), folder, failure):
            client.log_artifact(run_id, str(path))
        client.set_terminated(run_id, "FAILED")
        return
    statistics, sample_shape = load_real_statistics(study.features, workspace.features / "statistics.pt", device=device())
    model = load_model(config, workspace.checkpoints(config.name), sample_shape, fingerprint=training, device=device(), log=log.info)
    noise = initial_noise(evaluate.num_samples, sample_shape, evaluate.seed)
    weights, features = tensors_digest(model.state_dict()), feature_space_digest(study.features, workspace.features / "statistics.pt")
    tags = {**axis_tags(study, config), "model": weights}
    rows = []
    for cell in tqdm(cells(grid, config.name), desc=f"evaluate {config.name}", unit="cell"):
        go_on()
        grid = folder / "samples" / f"{file_name(cell.label)}.png"
        key, identity = cell_key(study, config, training, cell, weights, features)
        row = reuse(client, experiment_id, key, cell, grid)
        reused = row is not None
        if not reused:
            shards = [
                score_shard.submit(model, cell, noise[start:end], statistics.inception, evaluate, start)
                for start, end in shard_ranges(len(noise), evaluate.batch_size, study.orchestration.fid_shards)
            ]
            row, samples = cell_row(cell, [shard.result() for shard in shards], statistics)
            record(
                client, experiment_id, run_id, key, row, {**tags, "solver_name": cell.solver.name, "evaluation": identity}, samples, grid
            )
        log.info(
            f"{config.name}: {cell.label} spent NFE {row['nfe']}: FID {row['fid']:.3f} ({row['seconds']:.2f} s)"
            + (" [reused: logged before by the same computation]" if reused else "")
        )
        rows.append(row)
    for path in write(rows, workspace.data_floor(), folder):
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")


@flow(name="evaluate", description="Sample and score every trained configuration (or those named), at once.")
def evaluate_configurations(
    params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None, configurations: list[str] | None = None
):
    """`evaluate_one` of each configuration as a task, the largest grid (NFE summed over its cells) first."""
    study = load_params(params, overrides)
    names = configurations or list(study.train.configurations)
    cost = lambda name: sum(cell.budget for cell in cells(study.grid(study.configuration(name)), name))
    each_configuration(evaluate_one, names, cost, params=params, root=root, overrides=overrides)


if __name__ == "__main__":
    raise SystemExit(main(evaluate_configurations, per_configuration=True))

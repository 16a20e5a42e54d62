"""Stage `evaluate@<configuration>`: sample the trained configuration with every solver x step
schedule x NFE budget from the same initial noise, score each cell with FID, and record the cells
under results/<configuration>/ and as nested MLflow runs. A cell's samples are split into
orchestration.fid_shards tasks (run by the flow's task runner: threads, or Dask workers) whose
features are merged into one FID. A cell already logged as the same computation (same settings,
model weights, real statistics and code: `tasks.evaluate.cell_identity`) is read back from MLflow
instead of sampled again; any other is computed, and an older run of it is left as it was."""

import json

import torch

from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from tasks.device import device
from tasks.evaluate import cell_identity, cell_row, cells, sample_shard, shard_ranges
from tasks.features import load_statistics
from tasks.files import write_csv, write_json
from tasks.provenance import saved_digest, tensors_digest
from tasks.report import COLUMNS, fid_vs_nfe_figure, file_name, sample_grid, save_figure, summary
from tasks.sample import initial_noise
from tasks.tracking import log_cell, logged_cell
from tasks.train import load_trained

from .params import load_params
from .workspace import Workspace, axis_tags, configuration_identity, configuration_key, configuration_run, main, named_configuration

GRID_IMAGES = 64  # samples shown per cell
load_model = task(load_trained, name="load trained model", cache_policy=NO_CACHE)
load_real_statistics = task(load_statistics, name="load real statistics", cache_policy=NO_CACHE)
record = task(log_cell, name="log cell to MLflow", cache_policy=NO_CACHE)


@task(name="sample and score a shard", cache_policy=NO_CACHE)
def score_shard(model, cell, noise, extractor, evaluate, first):
    """`tasks.evaluate.sample_shard` on the device of the worker that runs it, keeping the samples a grid shows."""
    where = device()
    return sample_shard(model, cell, noise, extractor.to(where), evaluate, first, device=where, keep=GRID_IMAGES)


@task(name="reuse logged cell", cache_policy=NO_CACHE)
def logged_row(client, experiment_id, key, cell, grid):
    """The row of a cell already scored and logged under `key` (same configuration, features, noise
    and cell), with its sample grid downloaded to `grid`; None if it has to be computed."""
    logged = logged_cell(client, experiment_id, key)
    if logged is None:
        return None
    cell_run, metrics = logged
    grid.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_artifacts(run_id=cell_run, artifact_path=grid.name, dst_path=str(grid.parent), tracking_uri=client.tracking_uri)
    except MlflowException:
        return None
    return dict(solver=cell.solver_label, step_schedule=cell.schedule_label, budget=cell.budget, nfe=int(metrics["nfe"]),
                fid=metrics["fid"], seconds=metrics["seconds"], reference=cell.reference)


@task(name="write results", cache_policy=NO_CACHE)
def write_results(rows, floor, folder, client, run_id, failures=None):
    """cells.json (every row; `failed` if training diverged), fid.csv (the grid, for plots),
    summary.json (DVC metrics) and the FID-vs-NFE figure, also logged to the configuration's run."""
    write_json({"data_floor_fid": floor, "cells": rows, **({"failed": next(iter(failures.values()))} if failures else {})},
               folder / "cells.json")
    write_csv([row for row in rows if not row["reference"]], folder / "fid.csv", COLUMNS)
    write_json(summary(rows, floor, failures), folder / "summary.json")
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    figure = fid_vs_nfe_figure(rows, floors=floor, failures=failures)
    save_figure(figure, folder / "fid_vs_nfe.png")
    for name in ("cells.json", "fid_vs_nfe.png"):
        client.log_artifact(run_id, str(folder / name))


@flow(name="evaluate", description="Sample one trained configuration with every solver, step schedule and NFE budget; score with FID.")
def evaluate_one(configuration: str, params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    config, evaluate = named_configuration(study, configuration), study.evaluate
    folder = workspace.results(config.name)
    training = configuration_identity(study, config, workspace)
    client, experiment_id, run_id = configuration_run(study, config, workspace, training)
    if workspace.diverged(config.name).is_file():
        failure = json.loads(workspace.diverged(config.name).read_text())["error"]
        log.error(f"{config.name}: not evaluated, its training diverged: {failure}")
        write_results([], workspace.data_floor(), folder, client, run_id, failures={config.name: failure})
        client.set_terminated(run_id, "FAILED")
        return
    statistics, sample_shape = load_real_statistics(study.features, workspace.features / "statistics.pt", device=device())
    model = load_model(config, workspace.checkpoints(config.name), sample_shape, fingerprint=training, device=device(), log=log.info)
    noise = initial_noise(evaluate.num_samples, sample_shape, evaluate.seed)
    settings = [study.features, evaluate.model_dump(mode="json", include={"num_samples", "seed", "batch_size"})]
    weights, real = tensors_digest(model.state_dict()), saved_digest(workspace.features / "statistics.pt")
    tags = {**axis_tags(study, config), "model": weights}
    rows = []
    for cell in tqdm(cells(evaluate), desc=f"evaluate {config.name}", unit="cell"):
        grid = folder / "samples" / f"{file_name(cell.label)}.png"
        identity = cell_identity(cell, settings, weights, real)
        key = f"{configuration_key(study, config, training)}/{identity}/{cell.label}"
        row = logged_row(client, experiment_id, key, cell, grid)
        reused = row is not None
        if not reused:
            shards = [score_shard.submit(model, cell, noise[start:end], statistics.inception, evaluate, start)
                      for start, end in shard_ranges(len(noise), evaluate.batch_size, study.orchestration.fid_shards)]
            parts = [shard.result() for shard in shards]
            row = cell_row(cell, parts, statistics)
            sample_grid(torch.cat([part[1] for part in parts])[:GRID_IMAGES], grid)
            cell_run = record(client, experiment_id, run_id, key, row, {**tags, "solver_name": cell.solver, "evaluation": identity})
            client.log_artifact(cell_run, str(grid))
        log.info(f"{config.name}: {cell.label} spent NFE {row['nfe']}: FID {row['fid']:.3f} ({row['seconds']:.2f} s)"
                 + (" [reused: logged before by the same computation]" if reused else ""))
        rows.append({"configuration": config.name, "series": f"{row['solver']} / {row['step_schedule']}", **row})
    write_results(rows, workspace.data_floor(), folder, client, run_id)
    client.set_terminated(run_id, "FINISHED")


if __name__ == "__main__":
    raise SystemExit(main(evaluate_one, per_configuration=True, submits=True))

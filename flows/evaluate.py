"""Stage `evaluate`: sample every trained configuration (or those named) with every cell of its
grid (clipping x solver x step schedule x NFE budget) from the same initial noise, score each cell
with FID (and its bootstrap standard error) and, for a deterministic solver, its distance to the
converged ODE solution (`tasks.evaluate`), and record the cells under results/<configuration>/ and
as nested MLflow runs, with a run per (solver, step schedule) series whose metrics are logged at
step = NFE for MLflow's charts. The
configurations run as concurrent tasks on params' task runner; a cell's samples are split into
orchestration.fid_shards tasks whose features are merged into one FID. A cell already logged as the same computation (same settings,
model weights, feature space and code: `tasks.evaluate.cell_key`) is read back from MLflow
instead of sampled again; any other is computed, and an older run of it is left as it was."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from models.fid import resampling_weights
from tasks.data import training_images
from tasks.device import device
from tasks.evaluate import (
    cell_key,
    cell_row,
    cells,
    logged_row,
    ode_solution,
    record_cell,
    sample_shard,
    shard_ranges,
)
from tasks.features import feature_space_digest, load_statistics
from tasks.mlflow_views import save_series_view
from tasks.provenance import tensors_digest, training_identity
from tasks.report import convergence_checks, file_name
from tasks.results import write_results
from tasks.sample import initial_noise
from tasks.tracking import axis_tags, configuration_run, log_series, series_run, supersede_series
from tasks.train import load_trained
from tasks.workspace import Workspace

from .cli import main
from .orchestration import each_configuration, go_on
from .params_file import load_params

load_model = task(load_trained, name="load trained model", cache_policy=NO_CACHE)
load_real_statistics = task(load_statistics, name="load real statistics", cache_policy=NO_CACHE)
reuse = task(logged_row, name="reuse logged cell", cache_policy=NO_CACHE)
record = task(record_cell, name="log cell to MLflow", cache_policy=NO_CACHE)
record_series = task(log_series, name="log series to MLflow", cache_policy=NO_CACHE)
write = task(write_results, name="write results", cache_policy=NO_CACHE)


@task(name="sample and score a shard", cache_policy=NO_CACHE)
def score_shard(model, cell, noise, extractor, evaluate, first):
    """`tasks.evaluate.sample_shard` on the device of the worker that runs it."""
    where = device()
    return sample_shard(model, cell, noise, extractor.to(where), evaluate, first, device=where)


@task(name="solve the ODE to convergence", cache_policy=NO_CACHE)
def solve(model, reference, noise, evaluate):
    """`tasks.evaluate.ode_solution` on the device of the worker that runs it."""
    return ode_solution(model, reference, noise, evaluate, device=device()).cpu()


def check_convergence(log, name, rows):
    """Log each ODE reference's check (`convergence_checks`): an error when it did not converge."""
    for check in convergence_checks(rows):
        if check["converged"] is None:
            continue
        said = (
            f"{name}: ODE reference {check['reference']} differs by {check['reference_error']:.2e} from twice its steps, "
            f"the solution the cells are measured against (its error, extrapolated: {check['solution_error']:.2e}); "
            f"smallest ode_error {check['smallest_ode_error']:.2e}"
        )
        if check["converged"]:
            log.info(f"{said}: converged (at most 1/10)")
        else:
            log.error(f"{said}: NOT converged (over 1/10); raise evaluate.reference_nfe")


@flow(name="evaluate one", description="Sample one trained configuration with every cell of its grid; score with FID and ODE error.")
def evaluate_one(configuration: str, params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    config, evaluate = study.configuration(configuration), study.evaluate
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
    weights = resampling_weights(evaluate.num_samples, evaluate.bootstrap, evaluate.seed)
    model_digest, features = tensors_digest(model.state_dict()), feature_space_digest(study.features, workspace.features / "statistics.pt")
    tags = {**axis_tags(study, config), "model": model_digest}
    grid = cells(study.grid(config), config.name)
    keys = {cell.label: cell_key(study, config, training, cell, model_digest, features) for cell in grid}
    members = {}
    for cell in grid:
        if not cell.reference:
            members.setdefault(cell.series, []).append(cell)
    series = {
        name: series_run(
            client, experiment_id, run_id, f"{config.name}: {name}", [keys[cell.label][1] for cell in own], {**tags, **own[0].tags}
        )
        for name, own in members.items()
    }
    rows, samples, solutions = [], {}, {}
    for cell in tqdm(grid, desc=f"evaluate {config.name}", unit="cell"):
        go_on()
        grid_file = folder / "samples" / f"{file_name(cell.label)}.png"
        key, identity = keys[cell.label]
        logged = reuse(client, experiment_id, key, cell, grid_file)
        if logged is not None:
            row, samples[cell.label], solution = logged
        else:
            solution = (
                solve(model, cell, noise, evaluate) if cell.reference else solutions[cell.ode_reference(evaluate.reference_nfe).label]
            )
            shards = [
                score_shard.submit(model, cell, noise[start:end], statistics.inception, evaluate, start)
                for start, end in shard_ranges(len(noise), evaluate.batch_size, study.orchestration.fid_shards)
            ]
            row, samples[cell.label] = cell_row(
                cell, [shard.result() for shard in shards], statistics, weights, solution, evaluate.reference_nfe
            )
            parent = run_id if cell.reference else series[cell.series]
            cell_tags = {**tags, "solver_name": cell.solver.name, "evaluation": identity}
            record(client, experiment_id, parent, key, row, cell_tags, samples[cell.label], solution if cell.reference else None, grid_file)
        if cell.reference:
            solutions[cell.label] = solution
        log.info(
            f"{config.name}: {cell.label} spent NFE {row['nfe']}: FID {row['fid']:.3f} ± {row['fid_se']:.3f}"
            + (f", ODE error {row['ode_error']:.2e}" if row["ode_error"] is not None else "")
            + f" ({row['seconds']:.2f} s)"
            + (" [reused: logged before by the same computation]" if logged is not None else "")
        )
        rows.append(row)
    for clipping in dict.fromkeys(row["clipping"] for row in rows):
        check_convergence(log, f"{config.name} ({clipping})", [row for row in rows if row["clipping"] == clipping])
    for name, run in series.items():
        record_series(client, run, [row for row in rows if row["series"] == name and not row["reference"]])
    supersede_series(client, experiment_id, config.name, series.values())
    save_series_view(client, experiment_id, config.name)
    for path in write(rows, workspace.data_floor(), folder, samples=samples):
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

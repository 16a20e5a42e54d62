"""Stage `evaluate`: sample every trained configuration (or those named) with every cell of its grid
(clipping x solver x step schedule x NFE budget) from the same initial noise, score each cell with FID
(and its bootstrap standard error) and, for a deterministic solver, its distance to the converged ODE
solution (`tasks.compute.cells`), and record the cells under results/<configuration>/ and as nested MLflow
runs, with a run per (solver, step schedule) series whose metrics are logged at step = NFE for MLflow's
charts, made current once the evaluation has finished. The configurations run as concurrent tasks on
params' task runner; a cell's samples are split into orchestration.fid_shards tasks whose features are
merged into one FID. A cell already logged as the same computation (`tasks.compute.cells.cell_identity`) is
read back from MLflow instead of sampled again; any other is computed, and an older run of it is left
as it was."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from tqdm import tqdm

from flows.runtime.cli import main
from flows.runtime.orchestration import each_configuration, go_on
from schema.params_file import load_params
from tasks.compute.cells import (
    cell_identity,
    cells,
    fit_sigmas,
    measured_against,
    ode_solution,
    sample_shard,
    schedule_identity,
    score,
    shard_ranges,
    shared_inputs,
)
from tasks.compute.data import training_images
from tasks.compute.feature_space import feature_space_digest, load_statistics
from tasks.compute.noise_levels import training_noise_levels
from tasks.compute.provenance import tensors_digest, training_identity
from tasks.compute.rows import charted
from tasks.compute.train import load_trained
from tasks.device import device
from tasks.files import file_name
from tasks.record.cell_runs import logged_row, logged_schedule, record_cell, record_schedule
from tasks.record.mlflow_views import save_series_view
from tasks.record.prefect_artifacts import artifact_key, cells_table, mlflow_link
from tasks.record.tracking import CellRun, axis_tags, cell_key, close_series, configuration_run, finish_run, open_series
from tasks.report.analysis import convergence_checks
from tasks.report.results import write_results
from tasks.workspace import Workspace

load_model = task(load_trained, name="load trained model", cache_policy=NO_CACHE)
load_real_statistics = task(load_statistics, name="load real statistics", cache_policy=NO_CACHE)
reuse = task(logged_row, name="reuse logged cell", cache_policy=NO_CACHE)
record = task(record_cell, name="log cell to MLflow", cache_policy=NO_CACHE)
write = task(write_results, name="write results", cache_policy=NO_CACHE)
noise_levels = task(training_noise_levels, name="draw the training noise levels", cache_policy=NO_CACHE)


@task(name="sample and score a shard", cache_policy=NO_CACHE)
def score_shard(model, cell, noise, extractor, evaluate, first, fitted_sigmas):
    """`tasks.compute.cells.sample_shard` on the device of the worker that runs it."""
    on = device()
    return sample_shard(model, cell, noise, extractor.to(on), evaluate, first, fitted_sigmas, device=on)


@task(name="fit a step schedule", cache_policy=NO_CACHE)
def fit(model, cell, evaluate, sample_shape, run):
    """(sigmas, seconds) of a cell's fitted step schedule: read back from its `run` (keyed by
    `tasks.compute.cells.schedule_identity`) if logged there, else fitted on the device of the worker that runs
    it (`tasks.compute.cells.fit_sigmas`) and logged."""
    logged = logged_schedule(run)
    if logged is None:
        logged = fit_sigmas(model, cell, evaluate, sample_shape, device=device())
        record_schedule(run, cell, *logged)
    return logged


def schedule_run(study, config, training, cell, model, parent, tags):
    """The `CellRun` of a fitted cell's step schedule, keyed by its `schedule_identity`, under the
    configuration's run `parent` (`tasks.record.tracking.ConfigurationRun`); None for a cell on a fixed schedule."""
    if not cell.fitted:
        return None
    identity = schedule_identity(study.evaluate, cell, model)
    key = cell_key(study, config, training, identity, f"step schedule {cell.label}")
    tags = {**tags, "kind": "step schedule", "step_schedule": cell.step_schedule.label}
    return CellRun(parent.client, parent.experiment_id, key, parent.run_id, tags)


@task(name="solve the ODE to convergence", cache_policy=NO_CACHE)
def solve(model, reference, noise, evaluate, doublings):
    """`tasks.compute.cells.ode_solution` on the device of the worker that runs it."""
    return ode_solution(model, reference, noise, evaluate, doublings, device=device()).cpu()


def check_convergence(log, name, rows):
    """Log each ODE reference's check (`convergence_checks`): an error when it did not converge."""
    for check in convergence_checks(rows):
        if check["converged"] is None:
            continue
        line = (
            f"{name}: ODE reference {check['reference']} differs by {check['reference_error']:.2e} from twice its steps, "
            f"the solution the cells are measured against, and that by 1/{check['error_ratio']:.2f} of it from twice its steps "
            f"again (order {check['measured_order']:.2f}, expected {check['expected_order']}); the solution's error, "
            f"extrapolated: {check['solution_error']:.2e}; smallest ode_error {check['smallest_ode_error']:.2e}"
        )
        if check["converged"]:
            log.info(f"{line}: converged (at most 1/10)")
        elif not check["ratio_as_expected"]:
            log.error(f"{line}: NOT converged: its error ratio is not near 2^order; raise the grid's reference_nfe")
        else:
            log.error(f"{line}: NOT converged (over 1/10); raise the grid's reference_nfe")


def evaluate_cell(cell, model, study, statistics, inputs, solutions, run, samples_png, schedule=None):
    """(row, kept samples, ODE solution or None, reused?) of one cell: read back if its `run`
    (`tasks.record.tracking.CellRun`) is logged, else sampled and scored in shards (on its fitted step
    schedule, whose run is `schedule`) and logged; a reference also solves its ODE at twice and four
    times its steps; its samples drawn as `samples_png`."""
    logged = reuse(run, cell, samples_png)
    if logged is not None:
        return (*logged, True)
    evaluate, noise = study.evaluate, inputs.noise
    solution = solve(model, cell, noise, evaluate, 1) if cell.reference else measured_against(cell, solutions)
    finer = solve(model, cell, noise, evaluate, 2) if cell.reference else None
    fitted_sigmas, fit_seconds = fit(model, cell, evaluate, noise.shape[1:], schedule) if cell.fitted else (None, None)
    shards = [
        score_shard.submit(model, cell, noise[start:end], statistics.inception, evaluate, start, fitted_sigmas)
        for start, end in shard_ranges(len(noise), evaluate.batch_size, study.orchestration.fid_shards)
    ]
    row, kept = score(cell, [shard.result() for shard in shards], statistics, inputs.resamples, solution, finer, fit_seconds)
    record(run, row, kept, solution if cell.reference else None, samples_png)
    return row, kept, solution, False


def cell_line(configuration, row, reused):
    """The log line of an evaluated cell: its NFE, FID, ODE error, seconds, and whether it was reused."""
    return (
        f"{configuration}: {row['label']} spent NFE {row['nfe']}: FID {row['fid']:.3f} ± {row['fid_se']:.3f}"
        + (f", ODE error {row['ode_error']:.2e}" if row["ode_error"] is not None else "")
        + f" ({row['seconds']:.2f} s"
        + (f"; its grid fitted in {row['fit_seconds']:.1f} s" if row["fit_seconds"] is not None else "")
        + ")"
        + (" [reused: logged before by the same computation]" if reused else "")
    )


def evaluate_cells(study, config, training, model, statistics, inputs, parent, workspace, log):
    """(rows, label -> kept samples) of every cell of the configuration's grid from the shared
    `inputs`, in order (references first), each logged under its series in the configuration's run
    `parent` (`tasks.record.tracking.ConfigurationRun`); the series become current once all are done."""
    folder, digest = workspace.results(config.name), tensors_digest(model.state_dict())
    feature_space = feature_space_digest(study.features, workspace.features / "statistics.pt")
    tags, every_cell = {**axis_tags(study, config), "model": digest}, cells(study.grid(config), config.name)
    identities = {cell.label: cell_identity(study, cell, digest, feature_space) for cell in every_cell}
    series = open_series(*parent, config.name, every_cell, identities, tags)
    rows, samples, solutions = [], {}, {}
    for cell in tqdm(every_cell, desc=f"evaluate {config.name}", unit="cell"):
        go_on()
        identity, key = identities[cell.label], cell_key(study, config, training, identities[cell.label], cell.label)
        nests_under = parent.run_id if cell.reference else series[cell.series]
        run = CellRun(parent.client, parent.experiment_id, key, nests_under, {**tags, "evaluation": identity})
        samples_png = folder / "samples" / f"{file_name(cell.label)}.png"
        schedule = schedule_run(study, config, training, cell, digest, parent, tags)
        row, samples[cell.label], solution, reused = evaluate_cell(
            cell, model, study, statistics, inputs, solutions, run, samples_png, schedule
        )
        solutions.update({cell.label: solution} if cell.reference else {})
        log.info(cell_line(config.name, row, reused))
        rows.append(row)
    close_series(parent.client, parent.experiment_id, config.name, series, rows)
    return rows, samples


@flow(name="evaluate one", description="Sample one trained configuration with every cell of its grid and score each.")
def evaluate_one(configuration: str, params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    config = study.configuration(configuration)
    folder, training = workspace.results(config.name), training_identity(config, training_images(workspace))
    parent = configuration_run(study, config, workspace.root, workspace.artifacts, training)
    client, experiment_id, run_id = parent
    if failure := workspace.divergence(config.name):
        log.error(f"{config.name}: not evaluated, its training diverged: {failure}")
        return finish_run(client, run_id, write([], workspace.data_floor(), folder, training, failure), "FAILED")
    statistics, sample_shape = load_real_statistics(study.features, workspace.features / "statistics.pt", device=device())
    model = load_model(config, workspace.checkpoints(config.name), sample_shape, fingerprint=training, device=device(), log=log.info)
    inputs = shared_inputs(study.evaluate, sample_shape)
    rows, samples = evaluate_cells(study, config, training, model, statistics, inputs, parent, workspace, log)
    for clipping in dict.fromkeys(row["clipping"] for row in rows):
        check_convergence(log, f"{config.name} ({clipping})", [row for row in rows if row["clipping"] == clipping])
    save_series_view(client, experiment_id, config.name)
    levels = noise_levels(model, config)
    finish_run(client, run_id, write(rows, workspace.data_floor(), folder, training, samples=samples, noise_levels=levels))
    create_table_artifact(cells_table(rows), key=artifact_key("cells", config.name), description=f"{config.name}: every cell")
    link = mlflow_link(client.tracking_uri, experiment_id, config.name)
    description = f"{charted()} against NFE"
    create_link_artifact(link, link_text=f"{config.name} in MLflow", key=artifact_key("mlflow", config.name), description=description)


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

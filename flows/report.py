"""Stage `report`: the study's comparison under reports/ — FID vs NFE for every configuration
(figure grouped by ablation, and CSV for `dvc plots show`), a table per ablation (what each varied
axis does), the best (solver, step schedule) per NFE budget, the numbers to read them against, and
sample grids; all of it on one page, reports/index.html — logged to MLflow as the study's report
run, and its tables and page as Prefect artifacts of the flow run."""

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from flows.runtime.cli import main
from schema.params_file import load_params
from tasks.compute.data import training_images
from tasks.compute.provenance import training_identity
from tasks.record.prefect_artifacts import artifact_key, mlflow_link, report_markdown
from tasks.record.tracking import existing_experiment, log_report, tracking_uri
from tasks.report.outputs import Report, write_report
from tasks.report.results import read_results
from tasks.workspace import Workspace

collect = task(read_results, name="collect results", cache_policy=NO_CACHE)
write = task(write_report, name="write report", cache_policy=NO_CACHE)
record = task(log_report, name="log report to MLflow", cache_policy=NO_CACHE)


def ablations(configurations, groups):
    """(axis, its configurations: the parent first, configuration -> its entry of the axis) of each
    ablation (`groups`: `schema.configurations.Train.ablations`)."""
    return [
        (" & ".join(axes), members, {name: " & ".join(configurations[name].entry(axis) for axis in axes) for name in members})
        for (_, axes), members in groups.items()
    ]


@flow(name="report", description="Compare every configuration: FID vs NFE, best solver per budget, sample grids.")
def report_study(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    configurations, images = study.train.configurations, training_images(workspace)
    rows, failures, noise_levels = collect({name: training_identity(config, images) for name, config in configurations.items()}, workspace)
    experiment = existing_experiment(workspace.root, study.mlflow.experiment)
    links = {name: mlflow_link(tracking_uri(workspace.root), experiment, name) for name in configurations} if experiment else {}
    design = dict(ablations=ablations(configurations, study.train.ablations()), noise_levels=noise_levels, compared=study.compared())
    report = Report(
        rows, failures, workspace.data_floor(), workspace, **design, title=f"Design-space study: {study.mlflow.experiment}", links=links
    )
    for name, message in failures.items():
        log.error(f"{name}: FAILED, no results: {message}")
    for row in write(report):
        log.info(
            f"{row['configuration']} at NFE <= {row['budget']}: best {row['solver']} / {row['step_schedule']} "
            f"(NFE {row['nfe']}), FID {row['fid']:.3f} ± {row['fid_se']:.3f}"
            + (f"; runner-up within 2 standard errors: {row['runner_up']}" if row["within_spread"] else "")
        )
    record(study, workspace.root, workspace.artifacts, workspace.reports, inputs=(rows, failures, report.floor))
    tables, page_link = (artifact_key(kind, study.mlflow.experiment) for kind in ("report", "report-page"))
    description = "The ablations, optimized step schedules, convergence checks"
    create_markdown_artifact(report_markdown(workspace.reports), key=tables, description=description)
    index = (workspace.reports / "index.html").resolve().as_uri()
    create_link_artifact(index, link_text="the report page", key=page_link, description="reports/index.html: all of it")


if __name__ == "__main__":
    raise SystemExit(main(report_study))

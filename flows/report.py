"""Stage `report`: the study's comparison under reports/ — FID vs NFE for every configuration
(figure and CSV for `dvc plots show`), the best (solver, step schedule) per NFE budget, the numbers
to read them against, and sample grids — logged to MLflow as the study's report run."""

import json
import math
import shutil

from typing import Any

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.files import write_csv, write_json
from tasks.provenance import computation_files, digest, files_digest
from tasks.report import COLUMNS, best_per_budget, fid_vs_nfe_figure, file_name, save_figure, summary
from tasks.tracking import open_experiment, run_for

from .params import load_params
from .workspace import Workspace, main

BEST_COLUMNS = ["configuration", "budget", "solver", "step_schedule", "nfe", "fid", "failed"]


@task(name="collect results", cache_policy=NO_CACHE)
def collect(study, workspace):
    """(rows, failures): every configuration's rows from results/<configuration>/cells.json (null FID
    read as NaN), and configuration -> message for those whose training failed."""
    rows, failures = [], {}
    for name in study.train.configurations:
        path = workspace.results(name) / "cells.json"
        if not path.is_file():
            raise FileNotFoundError(f"report: {path} is missing; run the evaluate@{name} stage first")
        results = json.loads(path.read_text())
        if "failed" in results:
            failures[name] = results["failed"]
        for row in results["cells"]:
            rows.append({**row, "fid": math.nan if row["fid"] is None else row["fid"]})
    return rows, failures


@task(name="write report", cache_policy=NO_CACHE)
def write_report(rows, failures, floor, workspace):
    """The report files; a failed configuration is marked in the figure, best.csv and summary.json."""
    reports = workspace.reports
    save_figure(fid_vs_nfe_figure(rows, floors=floor, failures=failures), reports / "fid_vs_nfe.png")
    write_csv([row for row in rows if not row["reference"]], reports / "fid_vs_nfe.csv", COLUMNS)
    best = best_per_budget(rows)
    failed = [dict(configuration=name, failed=message) for name, message in failures.items()]
    write_csv(best + failed, reports / "best.csv", BEST_COLUMNS)
    write_json(summary(rows, floor, failures), reports / "summary.json")
    for row in [*best, *(row for row in rows if row["reference"])]:
        if row["solver"] is not None:
            label = file_name(f"{row['solver']}/{row['step_schedule']}/{row['budget']}")
            target = reports / "samples" / f"{row['configuration']}-{label}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workspace.results(row["configuration"]) / "samples" / f"{label}.png", target)
    return best


@task(name="log report to MLflow", cache_policy=NO_CACHE)
def log_report(study, workspace, inputs):
    """The report run of these params, results (`inputs`, a digest) and report code: a new run when any changed."""
    client, experiment_id = open_experiment(workspace.root, study.mlflow.experiment, workspace.artifacts)
    made = digest(study.model_dump(mode="json", exclude={"orchestration"}), inputs, files_digest(computation_files("flows.report")))
    run_id = run_for(client, experiment_id, f"{study.mlflow.experiment}/report/{made}", "report", tags={"report": "true"})
    client.log_artifacts(run_id, str(workspace.reports))
    client.set_terminated(run_id, "FINISHED")


@flow(name="report", description="Compare every configuration: FID vs NFE, best solver per budget, sample grids.")
def report_study(params: str = "params.yaml", root: str = ".", overrides: dict[str, Any] | None = None):
    study, workspace, log = load_params(params, overrides), Workspace(root), get_run_logger()
    rows, failures = collect(study, workspace)
    floor = workspace.data_floor()
    best = write_report(rows, failures, floor, workspace)
    for name, message in failures.items():
        log.error(f"{name}: FAILED, no results: {message}")
    for row in best:
        log.info(f"{row['configuration']} at NFE <= {row['budget']}: best {row['solver']} / {row['step_schedule']} (NFE {row['nfe']}), FID {row['fid']:.3f}")
    log_report(study, workspace, digest(rows, failures, floor))


if __name__ == "__main__":
    raise SystemExit(main(report_study))

"""The study's result files: each configuration's results/<name>/ (cells.json, fid.csv,
summary.json, its FID-vs-NFE figure) written by its evaluation, and reports/ (the figure of every
configuration, fid_vs_nfe.csv, best.csv, summary.json, sample grids) written from them."""

import json
import math
import shutil

from .files import write_csv, write_json
from .report import COLUMNS, best_per_budget, fid_vs_nfe_figure, file_name, save_figure, summary

BEST_COLUMNS = ["configuration", "budget", "solver", "step_schedule", "nfe", "fid", "failed"]


def write_results(rows, floor, folder, failure=None):
    """A configuration's results under `folder`: cells.json (every row; `failed` if its training
    diverged), fid.csv (the grid, for plots), summary.json (DVC metrics), fid_vs_nfe.png. The files
    to log with its run come back."""
    name = folder.name
    write_json({"data_floor_fid": floor, "cells": rows, **({"failed": failure} if failure else {})}, folder / "cells.json")
    write_csv([row for row in rows if not row["reference"]], folder / "fid.csv", COLUMNS)
    failures = {name: failure} if failure else None
    write_json(summary(rows, floor, failures), folder / "summary.json")
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    save_figure(fid_vs_nfe_figure(rows, floors=floor, failures=failures), folder / "fid_vs_nfe.png")
    return [folder / "cells.json", folder / "fid_vs_nfe.png"]


def read_results(names, workspace):
    """(rows, failures): the rows of every configuration in `names` from results/<name>/cells.json
    (a null FID read as NaN), and configuration -> message for those whose training failed."""
    rows, failures = [], {}
    for name in names:
        path = workspace.results(name) / "cells.json"
        if not path.is_file():
            raise FileNotFoundError(f"report: {path} is missing; run the evaluate@{name} stage first")
        results = json.loads(path.read_text())
        if "failed" in results:
            failures[name] = results["failed"]
        rows += [{**row, "fid": math.nan if row["fid"] is None else row["fid"]} for row in results["cells"]]
    return rows, failures


def write_report(rows, failures, floor, workspace):
    """reports/: the figure, fid_vs_nfe.csv, best.csv, summary.json and the sample grids of each
    configuration's reference and best cell per budget; a failed configuration is marked in the
    figure, best.csv and summary.json. The best cells come back."""
    reports = workspace.reports
    save_figure(fid_vs_nfe_figure(rows, floors=floor, failures=failures), reports / "fid_vs_nfe.png")
    write_csv([row for row in rows if not row["reference"]], reports / "fid_vs_nfe.csv", COLUMNS)
    best = best_per_budget(rows)
    write_csv(best + [dict(configuration=name, failed=message) for name, message in failures.items()], reports / "best.csv", BEST_COLUMNS)
    write_json(summary(rows, floor, failures), reports / "summary.json")
    labels = {(row["configuration"], row["solver"], row["step_schedule"], row["budget"]): row["label"] for row in rows}
    for row in [*best, *(row for row in rows if row["reference"])]:
        if row["solver"] is not None:
            label = file_name(labels[row["configuration"], row["solver"], row["step_schedule"], row["budget"]])
            target = reports / "samples" / f"{row['configuration']}-{label}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workspace.results(row["configuration"]) / "samples" / f"{label}.png", target)
    return best

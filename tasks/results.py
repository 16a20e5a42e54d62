"""The study's result files: each configuration's results/<name>/ (cells.json, fid.csv,
summary.json, measured_order.csv, its three figures and convergence pictures) written by its
evaluation, and reports/ (the figures of every configuration, fid_vs_nfe.csv, best.csv,
measured_order.csv/.md, ablations.csv/.md, summary.json, sample grids, convergence pictures)
written from them."""

import json
import math
import shutil

import matplotlib.image

from .files import write_csv, write_json, write_text
from .report import (
    ABLATION_COLUMNS,
    COLUMNS,
    ablation_markdown,
    ablation_table,
    best_per_budget,
    convergence_figure,
    fid_vs_nfe_figure,
    fid_vs_ode_error_figure,
    file_name,
    measured_orders,
    ode_error_figure,
    orders_markdown,
    reference_samples_figure,
    save_figure,
    summary,
    variant,
)

BEST_COLUMNS = ["configuration", "budget", "solver", "step_schedule", "nfe", "fid", "fid_se", "runner_up", "within_spread", "failed"]
ORDER_COLUMNS = ["configuration", "series", "order", "measured_order", "over_nfe", "slopes", "ode_error_at_most_nfe"]
FIGURES = {  # file -> the figure of rows, the data floor, failures and a layout
    "fid_vs_nfe.png": fid_vs_nfe_figure,
    "ode_error_vs_nfe.png": lambda rows, floor, failures, layout: ode_error_figure(rows, failures, layout),
    "fid_vs_ode_error.png": lambda rows, floor, failures, layout: fid_vs_ode_error_figure(rows, failures, layout),
}


def save_figures(rows, floor, failures, folder, layout=None):
    """The three figures of `FIGURES` under `folder`; their paths come back."""
    for file, figure in FIGURES.items():
        save_figure(figure(rows, floor, failures, layout), folder / file)
    return [folder / file for file in FIGURES]


def convergence_file(model):
    """The file name of a model's (`variant`'s) convergence picture."""
    return f"convergence-{file_name(model)}.png"


def write_results(rows, floor, folder, failure=None, samples=None):
    """A configuration's results under `folder`: cells.json (every row; `failed` if its training
    diverged), fid.csv (the grid, for plots), summary.json (DVC metrics), measured_order.csv, the
    three figures (`FIGURES`) and per model its convergence picture from `samples` (label -> the
    first samples of each cell). The files to log with its run come back."""
    name = folder.name
    write_json({"data_floor_fid": floor, "cells": rows, **({"failed": failure} if failure else {})}, folder / "cells.json")
    write_csv([row for row in rows if not row["reference"]], folder / "fid.csv", COLUMNS)
    failures = {name: failure} if failure else None
    write_json(summary(rows, floor, failures), folder / "summary.json")
    write_csv(measured_orders(rows), folder / "measured_order.csv", ORDER_COLUMNS)
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    pictures = []
    for model in dict.fromkeys(variant(row) for row in rows):
        pictures.append(folder / convergence_file(model))
        save_figure(convergence_figure([row for row in rows if variant(row) == model], samples), pictures[-1])
    return [folder / "cells.json", folder / "measured_order.csv", *save_figures(rows, floor, failures, folder), *pictures]


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
        rows += [{**row, **{key: math.nan if row[key] is None else row[key] for key in ("fid", "fid_se")}} for row in results["cells"]]
    return rows, failures


def write_report(rows, failures, floor, workspace, ablations=()):
    """reports/: the three figures (`FIGURES`), fid_vs_nfe.csv, best.csv, measured_order.csv and .md,
    summary.json, each model's convergence picture and the sample grids of its reference and best
    cell per budget; with `ablations` ((axis, configurations: the parent first, configuration -> its
    entry of the axis) each), the figures grouped by ablation, the tables ablations.csv and
    ablations.md (empty without ablations); reference_samples.png. A failed configuration is marked
    in the figures, best.csv and summary.json. The best cells come back."""
    reports = workspace.reports
    grouped = {name for _, members, _ in ablations for name in members}
    others = [name for name in dict.fromkeys([row["configuration"] for row in rows] + list(failures)) if name not in grouped]
    layout = [(f"{axis} from {members[0]}", members) for axis, members, _ in ablations] + [("", others)] * bool(others)
    save_figures(rows, floor, failures, reports, layout)
    write_csv([row for row in rows if not row["reference"]], reports / "fid_vs_nfe.csv", COLUMNS)
    orders = measured_orders(rows)
    write_csv(orders, reports / "measured_order.csv", ORDER_COLUMNS)
    write_text(orders_markdown(orders), reports / "measured_order.md")
    for model, name in {variant(row): row["configuration"] for row in rows}.items():
        target = reports / "convergence" / convergence_file(model)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(workspace.results(name) / convergence_file(model), target)
    best = best_per_budget(rows)
    write_csv(best + [dict(configuration=name, failed=message) for name, message in failures.items()], reports / "best.csv", BEST_COLUMNS)
    write_json(summary(rows, floor, failures), reports / "summary.json")
    tables = [ablation_table(rows, axis, members, entries) for axis, members, entries in ablations]
    write_csv([line for table in tables for line in table], reports / "ablations.csv", ABLATION_COLUMNS)
    write_text(ablation_markdown(tables, floor), reports / "ablations.md")
    references = {variant(row): row for row in rows if row["reference"]}
    grids = {
        model: (
            matplotlib.image.imread(workspace.results(row["configuration"]) / "samples" / f"{file_name(row['label'])}.png"),
            model,
        )
        for model, row in references.items()
    }
    models = [(title, [model for model, row in references.items() if row["configuration"] in members]) for title, members in layout]
    save_figure(reference_samples_figure([line for line in models if line[1]], grids), reports / "reference_samples.png")
    labels = {(variant(row), row["solver"], row["step_schedule"], row["budget"]): row["label"] for row in rows}
    configuration_of = {variant(row): row["configuration"] for row in rows}
    for row in [*best, *({**row, "configuration": variant(row)} for row in rows if row["reference"])]:
        if row["solver"] is not None:
            name = configuration_of[row["configuration"]]
            label = file_name(labels[row["configuration"], row["solver"], row["step_schedule"], row["budget"]])
            target = reports / "samples" / f"{name}-{label}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(workspace.results(name) / "samples" / f"{label}.png", target)
    return best

"""The study's result files: each configuration's results/<name>/ (cells.json with the training it
was computed from, fid.csv, summary.json, measured_order.csv, noise_levels.json, its three figures
and convergence pictures) written by its evaluation, and reports/ (the figures of every
configuration, fid_vs_nfe.csv, best.csv, measured_order.csv/.md, ablations.csv/.md, summary.json,
training_noise_levels.png, optimized_schedules.csv/.md and step_schedules.png, sample grids,
convergence pictures) written from them."""

import json
import math
import shutil

import matplotlib.image

from tasks.compute.rows import CSV, fields
from tasks.files import file_name, write_csv, write_json, write_text

from .analysis import (
    ABLATION_COLUMNS,
    SCHEDULE_COLUMNS,
    ablation_table,
    best_per_budget,
    convergence_checks,
    measured_orders,
    schedule_comparison,
    summary,
    variant,
)
from .figures import convergence_figure, fid_vs_nfe_figure, fid_vs_ode_error_figure, ode_error_figure, save_figure, schedules_figure
from .markdown import ablation_markdown, orders_markdown, schedules_markdown
from .study_figures import ablations_figure, noise_levels_figure, reference_samples_figure

BEST_COLUMNS = [
    "configuration",
    "budget",
    "solver",
    "step_schedule",
    "nfe",
    "fid",
    "fid_se",
    "kid",
    "kid_se",
    "runner_up",
    "within_spread",
    "failed",
]
ORDER_COLUMNS = ["configuration", "series", "order", "measured_order", "over_nfe", "slopes", "ode_error_at_most_nfe"]
FIGURES = {  # file -> the figure of rows, the data floor, failures and a layout
    "fid_vs_nfe.png": fid_vs_nfe_figure,
    "ode_error_vs_nfe.png": lambda rows, floor, failures, layout: ode_error_figure(rows, failures, layout),
    "fid_vs_ode_error.png": lambda rows, floor, failures, layout: fid_vs_ode_error_figure(rows, failures, layout),
}
NOISE_AXES = {"noise_sampling", "noise_schedule"}  # the ablations whose training noise levels the report draws


def save_figures(rows, floor, failures, folder, layout=None):
    """The three figures of `FIGURES` under `folder`; their paths come back."""
    for file, figure in FIGURES.items():
        save_figure(figure(rows, floor, failures, layout), folder / file)
    return [folder / file for file in FIGURES]


def convergence_file(model):
    """The file name of a model's (`variant`'s) convergence picture."""
    return f"convergence-{file_name(model)}.png"


def write_results(rows, floor, folder, training, failure=None, samples=None, noise_levels=None):
    """A configuration's results under `folder`: cells.json (the `training` identity they come from,
    every row; `failed` if its training diverged), fid.csv (the grid, for plots), summary.json (DVC
    metrics), measured_order.csv, noise_levels.json (`tasks.compute.noise_levels`), the three figures
    (`FIGURES`) and per model its convergence picture from `samples` (label -> the first samples of
    each cell). The files to log with its run come back."""
    name = folder.name
    results = {"training": training, "data_floor_fid": floor, "cells": rows, **({"failed": failure} if failure else {})}
    write_json(results, folder / "cells.json")
    write_csv([row for row in rows if not row["reference"]], folder / "fid.csv", fields(CSV))
    failures = {name: failure} if failure else None
    write_json(summary(rows, floor, failures), folder / "summary.json")
    write_csv(measured_orders(rows), folder / "measured_order.csv", ORDER_COLUMNS)
    if noise_levels is not None:
        write_json(noise_levels, folder / "noise_levels.json")
    (folder / "samples").mkdir(parents=True, exist_ok=True)
    pictures = []
    for model in dict.fromkeys(variant(row) for row in rows):
        pictures.append(folder / convergence_file(model))
        save_figure(convergence_figure([row for row in rows if variant(row) == model], samples), pictures[-1])
    return [folder / "cells.json", folder / "measured_order.csv", *save_figures(rows, floor, failures, folder), *pictures]


class StaleResults(ValueError):
    """Results of a configuration computed from another training than its current one."""


def read_results(trainings, workspace):
    """(rows, failures, noise levels): the rows of every configuration of `trainings` (name -> its
    current training identity) from results/<name>/cells.json (a null FID read as NaN), configuration
    -> message for those whose training failed, and configuration -> its noise_levels.json. Results
    of another training than the current one are refused (`StaleResults`), naming the configuration
    and the command that brings them up to date."""
    rows, failures, levels = [], {}, {}
    for name, training in trainings.items():
        path = workspace.results(name) / "cells.json"
        if not path.is_file():
            raise FileNotFoundError(f"report: {path} is missing; run `python -m flows.evaluate --configuration {name}` first")
        results = json.loads(path.read_text())
        if results.get("training") != training:
            raise StaleResults(
                f"report: results of configuration {name!r} ({path}) were computed from training {results.get('training')}, "
                f"but it now trains as {training} (its settings, data or training code changed): run "
                f"`python -m flows.train --configuration {name}` and `python -m flows.evaluate --configuration {name}` "
                "(or `bin/study`), then the report"
            )
        if "failed" in results:
            failures[name] = results["failed"]
        rows += [
            {**row, **{key: math.nan if row[key] is None else row[key] for key in ("fid", "fid_se", "kid", "kid_se")}}
            for row in results["cells"]
        ]
        noise_levels = workspace.results(name) / "noise_levels.json"
        if noise_levels.is_file():
            levels[name] = json.loads(noise_levels.read_text())
    return rows, failures, levels


def noise_panels(noise_levels, ablations):
    """(title, configuration -> noise levels) per ablation of noise sampling or noise schedule, or one
    panel of every configuration when the study has no such ablation."""
    panels = [
        (f"{axis} from {members[0]}", {name: noise_levels[name] for name in members if name in noise_levels})
        for axis, members, _ in ablations
        if NOISE_AXES & set(axis.split(" & "))
    ]
    return [panel for panel in panels if panel[1]] or [("every configuration", noise_levels)]


def write_report(rows, failures, floor, workspace, ablations=(), noise_levels=None, compared=None):
    """reports/: the three figures (`FIGURES`) of the configurations `compared` (those on the full
    grid; when none is, every one), fid_vs_nfe.csv, best.csv, measured_order.csv and .md, summary.json,
    each model's convergence picture and the sample grids of its reference and best cell per budget;
    with `ablations` ((axis, configurations: the parent first, configuration -> its entry of the axis)
    each), the tables ablations.csv and ablations.md and their figure ablations.png (empty without
    ablations); reference_samples.png, a row per ablation; and, for the ablations of noise sampling
    and noise schedule, training_noise_levels.png from `noise_levels` (configuration -> its
    noise_levels.json); the fitted step schedules against the best fixed ones, optimized_schedules.csv
    and .md, and their grids, step_schedules.png. A failed configuration is marked in the figures,
    best.csv and summary.json. The best cells come back."""
    reports = workspace.reports
    names = list(dict.fromkeys([row["configuration"] for row in rows] + list(failures)))
    shown = [name for name in names if not compared or name in compared]
    save_figures([row for row in rows if row["configuration"] in shown], floor, {k: v for k, v in failures.items() if k in shown}, reports)
    grouped = {name for _, members, _ in ablations for name in members}
    others = [name for name in names if name not in grouped]
    layout = [(f"{axis} from {members[0]}", members) for axis, members, _ in ablations] + [("", others)] * bool(others)
    write_csv([row for row in rows if not row["reference"]], reports / "fid_vs_nfe.csv", fields(CSV))
    orders = measured_orders(rows)
    write_csv(orders, reports / "measured_order.csv", ORDER_COLUMNS)
    checks = {model: convergence_checks([row for row in rows if variant(row) == model]) for model in dict.fromkeys(map(variant, rows))}
    write_text(orders_markdown(orders, checks), reports / "measured_order.md")
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
    save_figure(ablations_figure(tables, floor), reports / "ablations.png")
    comparison = schedule_comparison(rows)
    write_csv(comparison, reports / "optimized_schedules.csv", SCHEDULE_COLUMNS)
    write_text(schedules_markdown(comparison), reports / "optimized_schedules.md")
    save_figure(schedules_figure(rows), reports / "step_schedules.png")
    save_figure(noise_levels_figure(noise_panels(noise_levels or {}, ablations)), reports / "training_noise_levels.png")
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

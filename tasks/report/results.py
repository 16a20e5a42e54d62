"""Each configuration's results/<name>/, written by its evaluation (cells.json with the training it
was computed from, fid.csv, summary.json, measured_order.csv, noise_levels.json, its model figures
and convergence pictures), and read back for the report (`tasks.report.outputs`)."""

import json
import math

from tasks.compute.rows import CSV, fields, scores
from tasks.files import write_csv, write_json

from .analysis import measured_orders, summary, variant
from .figures import convergence_figure, save_figure
from .outputs import ORDER_COLUMNS, OUTPUTS, convergence_file


def write_results(rows, floor, folder, training, failure=None, samples=None, noise_levels=None):
    """A configuration's results under `folder`: cells.json (the `training` identity they come from,
    every row; `failed` if its training diverged), fid.csv (the grid, for plots), summary.json (DVC
    metrics), measured_order.csv, noise_levels.json (`tasks.compute.noise_levels`), the model figures
    of `OUTPUTS` and per model its convergence picture from `samples` (label -> the first samples of
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
    figures = [output for output in OUTPUTS if output.figure]
    for output in figures:
        save_figure(output.figure(rows, floor, failures, None), folder / output.file)
    pictures = []
    for model in dict.fromkeys(variant(row) for row in rows):
        pictures.append(folder / convergence_file(model))
        save_figure(convergence_figure([row for row in rows if variant(row) == model], samples), pictures[-1])
    return [folder / "cells.json", folder / "measured_order.csv", *(folder / output.file for output in figures), *pictures]


class StaleResults(ValueError):
    """Results of a configuration computed from another training than its current one."""


def read_results(trainings, workspace):
    """(rows, failures, noise levels): the rows of every configuration of `trainings` (name -> its
    current training identity) from results/<name>/cells.json (a null score read as NaN), configuration
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
            {**row, **{key: math.nan if row[key] is None else row[key] for name in scores() for key in (name, f"{name}_se")}}
            for row in results["cells"]
        ]
        noise_levels = workspace.results(name) / "noise_levels.json"
        if noise_levels.is_file():
            levels[name] = json.loads(noise_levels.read_text())
    return rows, failures, levels

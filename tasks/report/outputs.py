"""The report's outputs, declared once: `OUTPUTS`, a line per file or folder under reports/ with what
writes it, the section of the report page that shows it and how DVC keeps it. `write_report` writes
them in this order (the page last), the page's sections are theirs, dvc.yaml's report outs are held to
them (tests/test_report.py), and `bin/study`'s closing message lists them. A new figure: its function
and one line here (and, because DVC needs it literally, its out in dvc.yaml, which that test checks)."""

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import matplotlib.image

from tasks.compute.rows import CSV, fields
from tasks.files import file_name, write_csv, write_json, write_text

from .analysis import (
    SCHEDULE_COLUMNS,
    ablation_columns,
    ablation_table,
    best_per_budget,
    convergence_checks,
    measured,
    measured_orders,
    schedule_comparison,
    summary,
    variant,
)
from .figures import fid_vs_nfe_figure, fid_vs_ode_error_figure, ode_error_figure, save_figure, schedules_figure
from .markdown import ablation_markdown, orders_markdown, schedules_markdown
from .page import report_page
from .study_figures import ablations_figure, noise_levels_figure, reference_samples_figure

ORDER_COLUMNS = ["configuration", "series", "order", "measured_order", "over_nfe", "slopes", "ode_error_at_most_nfe"]
NOISE_AXES = {"noise_sampling", "noise_schedule"}  # the ablations whose training noise levels the report draws


@dataclass
class Report:
    """What the report is made of: every configuration's rows and failures (configuration -> message),
    the data floor, the study's `ablations` ((axis, configurations: the parent first, configuration ->
    its entry of the axis) each), each configuration's noise levels, the configurations `compared` on
    the full grid (the solver comparison; none: every one), the page's title and each configuration's
    MLflow view (`links`); and the numbers derived from them once."""

    rows: list
    failures: dict
    floor: float
    workspace: object  # `tasks.workspace.Workspace`
    ablations: list = ()
    noise_levels: dict | None = None
    compared: list | None = None
    title: str = "Design-space study"
    links: dict | None = None

    @cached_property
    def best(self):
        return best_per_budget(self.rows)

    @cached_property
    def tables(self):
        return [ablation_table(self.rows, axis, members, entries) for axis, members, entries in self.ablations]

    @cached_property
    def orders(self):
        return measured_orders(self.rows)

    @cached_property
    def schedules(self):
        return schedule_comparison(self.rows)

    def shown(self):
        """(rows, failures) of the configurations of the solver comparison."""
        names = list(dict.fromkeys([row["configuration"] for row in self.rows] + list(self.failures)))
        keep = {name for name in names if not self.compared or name in self.compared}
        return [row for row in self.rows if row["configuration"] in keep], {k: v for k, v in self.failures.items() if k in keep}

    def layout(self):
        """(title, configurations) per ablation, then one of the configurations in none."""
        grouped = {name for _, members, _ in self.ablations for name in members}
        others = [name for name in dict.fromkeys([row["configuration"] for row in self.rows] + list(self.failures)) if name not in grouped]
        return [(f"{axis} from {members[0]}", members) for axis, members, _ in self.ablations] + [("", others)] * bool(others)


WRITTEN = {  # a file's suffix -> how what it holds is written: text, (lines, columns), a JSON value, a figure
    ".md": write_text,
    ".html": write_text,
    ".csv": lambda table, path: write_csv(table[0], path, table[1]),
    ".json": write_json,
    ".png": save_figure,
}


class Output(NamedTuple):
    """A file (or folder) under reports/: `holds(report)` is what it holds, written by its suffix
    (`WRITTEN`); a folder's `holds(report, folder)` writes it. `section`: the report page's section
    that shows it (None: not on the page); `dvc`: "out" (cached), "plot" (a plot's data, not cached) or
    "metrics"; `figure`: for a figure of each model, `f(rows, floor, failures, layout)`, which each
    configuration's results/<name>/ also holds."""

    file: str
    holds: Callable
    section: str | None = None
    dvc: str = "out"
    figure: Callable | None = None

    def write(self, report, path):
        suffix = Path(self.file).suffix
        return WRITTEN[suffix](self.holds(report), path) if suffix else self.holds(report, path)


def model_figure(file, figure, section):
    """The `Output` of a figure of each model's rows, drawn for the configurations compared."""

    def holds(report):
        rows, failures = report.shown()
        return figure(rows, report.floor, failures, None)

    return Output(file, holds, section, figure=figure)


def convergence_file(model):
    """The file name of a model's (`variant`'s) convergence picture."""
    return f"convergence-{file_name(model)}.png"


def convergence_pictures(report, folder):
    """Each model's convergence picture, from its configuration's results."""
    folder.mkdir(parents=True, exist_ok=True)
    for model, name in {variant(row): row["configuration"] for row in report.rows}.items():
        shutil.copyfile(report.workspace.results(name) / convergence_file(model), folder / convergence_file(model))


def orders_text(report):
    """measured_order.md: the measured orders and each model's ODE reference checks."""
    models = dict.fromkeys(map(variant, report.rows))
    checks = {model: convergence_checks([row for row in report.rows if variant(row) == model]) for model in models}
    return orders_markdown(report.orders, checks)


def best_table(report):
    """best.csv: the best cell per model and budget, with its scores, and each failed configuration."""
    columns = ["configuration", "budget", "solver", "step_schedule", "nfe", *measured(), "runner_up", "within_spread", "failed"]
    return report.best + [dict(configuration=name, failed=message) for name, message in report.failures.items()], columns


def noise_panels(noise_levels, ablations):
    """(title, configuration -> noise levels) per ablation of noise sampling or noise schedule, or one
    panel of every configuration when the study has no such ablation."""
    panels = [
        (f"{axis} from {members[0]}", {name: noise_levels[name] for name in members if name in noise_levels})
        for axis, members, _ in ablations
        if NOISE_AXES & set(axis.split(" & "))
    ]
    return [panel for panel in panels if panel[1]] or [("every configuration", noise_levels)]


def noise_levels_picture(report):
    """The density of log sigma that training draws, a panel per ablation of the noise (`noise_panels`)."""
    return noise_levels_figure(noise_panels(report.noise_levels or {}, report.ablations))


def page(report):
    """The report page: every section of `sections`, and each configuration's MLflow view."""
    return report_page(report.workspace.reports, sections(), report.title, report.links or {})


def reference_samples(report):
    """Every model's reference samples, a row per ablation (`Report.layout`)."""
    references = {variant(row): row for row in report.rows if row["reference"]}
    pictures = {model: (matplotlib.image.imread(samples_png(report, row)), model) for model, row in references.items()}
    models = [
        (title, [model for model, row in references.items() if row["configuration"] in members]) for title, members in report.layout()
    ]
    return reference_samples_figure([line for line in models if line[1]], pictures)


def samples_png(report, row):
    """The sample picture of a row's cell in its configuration's results."""
    return report.workspace.results(row["configuration"]) / "samples" / f"{file_name(row['label'])}.png"


def best_samples(report, folder):
    """The sample pictures of each model's reference and best cell per budget, named by configuration and cell."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = {(variant(row), row["solver"], row["step_schedule"], row["budget"]): row for row in report.rows}
    picked = [rows[best["configuration"], best["solver"], best["step_schedule"], best["budget"]] for best in report.best if best["solver"]]
    for row in [*picked, *(row for row in report.rows if row["reference"])]:
        shutil.copyfile(samples_png(report, row), folder / f"{row['configuration']}-{file_name(row['label'])}.png")


OUTPUTS = [  # in the order of the report page
    Output("ablations.md", lambda report: ablation_markdown(report.tables, report.floor), "Ablations"),
    Output("ablations.csv", lambda report: ([line for table in report.tables for line in table], ablation_columns())),
    Output("ablations.png", lambda report: ablations_figure(report.tables, report.floor), "Ablations"),
    Output("training_noise_levels.png", noise_levels_picture, "Ablations"),
    Output("reference_samples.png", reference_samples, "Ablations"),
    Output("best.csv", best_table, "The best cell per budget"),
    Output("samples", best_samples),
    model_figure("fid_vs_nfe.png", fid_vs_nfe_figure, "The solvers"),
    model_figure("ode_error_vs_nfe.png", ode_error_figure, "The solvers"),
    model_figure("fid_vs_ode_error.png", fid_vs_ode_error_figure, "The solvers"),
    Output("fid_vs_nfe.csv", lambda report: ([row for row in report.rows if not row["reference"]], fields(CSV)), dvc="plot"),
    Output("optimized_schedules.md", lambda report: schedules_markdown(report.schedules), "Optimized step schedules"),
    Output("optimized_schedules.csv", lambda report: (report.schedules, SCHEDULE_COLUMNS)),
    Output("step_schedules.png", lambda report: schedules_figure(report.rows), "Optimized step schedules"),
    Output("measured_order.md", orders_text, "Convergence to the ODE solution"),
    Output("measured_order.csv", lambda report: (report.orders, ORDER_COLUMNS)),
    Output("convergence", convergence_pictures, "Convergence to the ODE solution"),
    Output("summary.json", lambda report: summary(report.rows, report.floor, report.failures), dvc="metrics"),
    Output("index.html", page),  # last: it shows the rest
]


def sections():
    """(title, [the files it shows]) of each section of the report page, in the order of `OUTPUTS`."""
    shown = {}
    for output in OUTPUTS:
        if output.section:
            shown.setdefault(output.section, []).append(output.file)
    return list(shown.items())


def write_report(report):
    """Every output of `OUTPUTS` under the study's reports/, in order; the best cells come back. A
    failed configuration is marked in the figures, best.csv and summary.json."""
    for output in OUTPUTS:
        output.write(report, report.workspace.reports / output.file)
    return report.best

"""Report: sample grids, FID-versus-NFE figures, the best cell per budget, a closing summary (its CSV and
JSON files through tasks/files.py), PNG files written atomically; pure functions of the evaluation rows.

A row is a dict (`tasks.evaluate.Cell.row`): configuration, solver, step_schedule, clipping, series,
budget, nfe (spent), fid (NaN or inf for a failed cell), seconds, reference (True for the high-NFE
reference cell of each configuration and clipping), label. A configuration sampled with a clipped
denoiser is a model of its own here (`variant`): its own panel, reference and best cells.
"""

import math
import re
from textwrap import fill

import torch
from matplotlib.figure import Figure

from .files import atomic_open

COLUMNS = [
    "configuration",
    "solver",
    "step_schedule",
    "clipping",
    "series",
    "budget",
    "nfe",
    "fid",
    "fid_se",
    "ode_error",
    "seconds",
]  # of the CSV files
SEPARATOR = 255  # white 1-pixel lines between the images of a grid, and white empty slots
GRID_WIDTH, DPI, CAPTION_LINE = 512, 100, 22  # a sample grid PNG: its least width and its caption's line height, in pixels


def sample_grid_array(images, columns=None):
    """Images [N, C, H, W] in [-1, 1] (C = 1 gray or 3 RGB; clipped, NaN drawn mid-gray) as one uint8
    [rows * (H + 1) - 1, columns * (W + 1) - 1, 3] grid, row-major, 1-pixel white separation;
    `columns` defaults to ceil(sqrt(N)). Pixel -1 is 0 (black), 1 is 255 (white)."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images have shape {tuple(images.shape)}; allowed: [N, 1, H, W] or [N, 3, H, W]")
    count, _, height, width = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    if columns < 1:
        raise ValueError(f"columns is {columns}; allowed: a positive integer or None")
    rows = math.ceil(count / columns)
    pixels = ((images.detach().cpu().float().nan_to_num(0.0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    pixels = pixels.expand(-1, 3, -1, -1).permute(0, 2, 3, 1)
    grid = torch.full((rows * (height + 1) - 1, columns * (width + 1) - 1, 3), SEPARATOR, dtype=torch.uint8)
    for index, image in enumerate(pixels):
        top, left = (index // columns) * (height + 1), (index % columns) * (width + 1)
        grid[top : top + height, left : left + width] = image
    return grid.numpy()


def sample_grid(images, path, columns=None, caption=None):
    """Write `sample_grid_array(images, columns)` to `path` as one PNG, atomically: upscaled by the
    smallest whole factor that makes it at least `GRID_WIDTH` pixels wide (nearest neighbour: every
    pixel a square block), with `caption` above it."""
    grid = sample_grid_array(images, columns)
    scale = math.ceil(GRID_WIDTH / grid.shape[1])
    grid = grid.repeat(scale, axis=0).repeat(scale, axis=1)
    lines = caption.count("\n") + 1 if caption else 0
    top = CAPTION_LINE * lines + CAPTION_LINE // 2 * bool(lines)
    figure = Figure(figsize=(grid.shape[1] / DPI, (grid.shape[0] + top) / DPI), dpi=DPI, facecolor="white")
    figure.figimage(grid, xo=0, yo=0, origin="upper")
    if caption:
        figure.text(0.5, 1 - CAPTION_LINE / 4 / (grid.shape[0] + top), caption, ha="center", va="top", fontsize=CAPTION_LINE * 0.55)
    with atomic_open(path) as file:
        figure.savefig(file, format="png", dpi=DPI)


def variant(row):
    """The configuration of a row, with its clipping where the denoiser was clipped: "edm", "eps + clip"."""
    clipping = row.get("clipping", "none")
    return row["configuration"] if clipping == "none" else f"{row['configuration']} + {clipping}"


def file_name(label):
    """A cell label such as "heun/karras/8" as a file name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


LINE_STYLES = ["-", "--", ":", "-."]


def fid_vs_nfe_figure(rows, floors=None, failures=None, layout=None):
    """`panel_figure` of FID against NFE (`draw_fid_vs_nfe`); `floors`: the data floor as a dotted
    line, a float for all or configuration -> float."""

    def draw(axes, configuration, own, styles):
        draw_fid_vs_nfe(axes, own, floors.get(configuration) if isinstance(floors, dict) else floors, styles)

    return panel_figure(rows, draw, failures, layout)


def ode_error_figure(rows, failures=None, layout=None):
    """`panel_figure` of ode_error against NFE on log-log axes (`draw_ode_error_vs_nfe`)."""
    return panel_figure(rows, lambda axes, configuration, own, styles: draw_ode_error_vs_nfe(axes, own, styles), failures, layout)


def fid_vs_ode_error_figure(rows, failures=None, layout=None):
    """`panel_figure` of FID against ode_error (`draw_fid_vs_ode_error`)."""
    return panel_figure(rows, lambda axes, configuration, own, styles: draw_fid_vs_ode_error(axes, own, styles), failures, layout)


def panel_figure(rows, draw, failures=None, layout=None):
    """A panel per model (`variant`) drawn by `draw(axes, configuration, its rows, styles)`, one line
    per (solver, step schedule) with a colour per solver and a line style per step schedule, the same
    in every panel, in one legend. A configuration in `failures` (configuration -> message) gets a
    panel that says why it has no results. `layout`: a row of panels per (title, configurations),
    e.g. an ablation's parent and the configurations that vary one axis from it; by default one row
    of every model."""
    failures = failures or {}
    models = list(dict.fromkeys([variant(row) for row in rows] + list(failures)))
    if not models:
        raise ValueError("rows and failures are empty; allowed: at least one row or failure")
    of = {}
    for row in rows:
        of.setdefault(row["configuration"], {}).setdefault(variant(row), []).append(row)
    layout = layout or [(None, list(dict.fromkeys([row["configuration"] for row in rows] + list(failures))))]
    panels = [(title, [(name, model) for name in names for model in (of.get(name) or {name: []})]) for title, names in layout]
    cells = [row for row in rows if not row["reference"]]
    solvers = list(dict.fromkeys(row["solver"] for row in cells))
    schedules = list(dict.fromkeys(row["step_schedule"] for row in cells))
    styles = {
        (solver, schedule): dict(color=f"C{i % 10}", linestyle=LINE_STYLES[j % len(LINE_STYLES)])
        for i, solver in enumerate(solvers)
        for j, schedule in enumerate(schedules)
    }
    labels = {f"{solver} / {schedule}" for solver, schedule in styles}
    columns = max(len(names) for _, names in panels)
    figure = Figure(figsize=(4.2 * columns + 2.5, 3.8 * len(panels)), layout="constrained")
    grid = figure.subplots(len(panels), columns, squeeze=False)
    series = {}
    for axes_row, (title, names) in zip(grid, panels):
        for axes in axes_row[len(names) :]:
            axes.set_axis_off()
        for axes, (configuration, model) in zip(axes_row, names):
            axes.set_title(fill(f"{title}: {model}" if title else model, 45), fontsize="medium")
            if configuration in failures:
                message = fill(f"failed: {failures[configuration]}", 40)
                axes.text(0.5, 0.5, message, ha="center", va="center", color="darkred", transform=axes.transAxes)
                axes.set_axis_off()
                continue
            draw(axes, configuration, of.get(configuration, {}).get(model, []), styles)
            series.update({label: handle for handle, label in zip(*axes.get_legend_handles_labels()) if label in labels})
    if series:
        figure.legend(list(series.values()), list(series), loc="outside right upper", fontsize="small")
    return figure


def series_points(rows, y, x="nfe"):
    """(solver, step schedule) -> its cells' rows sorted by `x`, those with a finite `x` and `y`."""
    finite = lambda value: value is not None and math.isfinite(value)
    series = {}
    for row in rows:
        if not row["reference"] and finite(row[x]) and finite(row[y]):
            series.setdefault((row["solver"], row["step_schedule"]), []).append(row)
    return {key: sorted(points, key=lambda row: row[x]) for key, points in series.items()}


def nfe_axis(axes, rows):
    """x = NFE spent on a base-2 log scale, ticked at the budgets (a solver may spend fewer, e.g.
    Heun 2n - 1), with a quarter octave of room on either side so that no marker sits on the frame."""
    cells = [row for row in rows if not row["reference"]]
    axes.set_xscale("log", base=2)
    budgets = sorted({row["budget"] for row in cells})
    axes.set_xticks(budgets, labels=[str(budget) for budget in budgets])
    axes.set_xticks([], minor=True)
    if cells:
        spent = [row["nfe"] for row in cells] + budgets
        axes.set_xlim(min(spent) / 2**0.25, max(spent) * 2**0.25)


def draw_fid_vs_nfe(axes, rows, floor=None, styles=None):
    """One configuration's panel on `axes`: FID against NFE (`nfe_axis`), a band of +-1 standard error
    (fid_se) around each line, on a log scale when the finite values span more than 10x; the panel's
    legend names its reference and floor."""
    for (solver, step_schedule), points in series_points(rows, "fid").items():
        style = (styles or {}).get((solver, step_schedule), {})
        nfe, fid = [row["nfe"] for row in points], [row["fid"] for row in points]
        axes.plot(nfe, fid, marker="o", markersize=3, label=f"{solver} / {step_schedule}", **style)
        se = [row.get("fid_se") or 0.0 for row in points]
        low, high = [f - e for f, e in zip(fid, se)], [f + e for f, e in zip(fid, se)]
        axes.fill_between(nfe, low, high, color=style.get("color"), alpha=0.15, linewidth=0)
    levels = []
    for row in rows:
        if row["reference"] and math.isfinite(row["fid"]):
            label = f"reference ({row['solver']}, NFE {row['nfe']}): FID {row['fid']:.3g}"
            levels.append(axes.axhline(row["fid"], color="black", linestyle="--", label=label))
            se = row.get("fid_se") or 0.0
            axes.axhspan(row["fid"] - se, row["fid"] + se, color="black", alpha=0.08, linewidth=0)
    if floor is not None and math.isfinite(floor):
        levels.append(axes.axhline(floor, color="gray", linestyle=":", label=f"data floor: FID {floor:.3g}"))
    nfe_axis(axes, rows)
    wide_log_scale(axes, [row["fid"] for row in rows] + [floor])
    axes.set(xlabel="NFE", ylabel="FID (band: ±1 standard error)")
    if levels:
        axes.legend(handles=levels, fontsize="small", loc="upper right")


def wide_log_scale(axes, values):
    """A log y scale when the finite values (None ignored) are positive and span more than 10x."""
    finite = [value for value in values if value is not None and math.isfinite(value)]
    if finite and min(finite) > 0 and max(finite) > 10 * min(finite):
        axes.set_yscale("log")


def stochastic_note(axes, rows):
    """[A legend entry without a line that names the series whose solver draws noise (they have no
    ODE error)], or [] when there are none."""
    stochastic = list(dict.fromkeys(row["series"] for row in rows if not row["reference"] and row["ode_error"] is None))
    note = fill("stochastic, FID only: " + ", ".join(stochastic), 32)
    return [axes.plot([], [], linestyle="none", label=note)[0]] if stochastic else []


def draw_ode_error_vs_nfe(axes, rows, styles=None):
    """One configuration's panel: each deterministic series' ode_error against NFE on log-log axes
    (a line of slope -p is order p), and the reference's own error (against twice its steps) as a
    dashed black line: the floor below which no cell's error can be read."""
    for (solver, step_schedule), points in series_points(rows, "ode_error").items():
        style = (styles or {}).get((solver, step_schedule), {})
        axes.plot(
            [r["nfe"] for r in points],
            [r["ode_error"] for r in points],
            marker="o",
            markersize=3,
            label=f"{solver} / {step_schedule}",
            **style,
        )
    levels = [
        axes.axhline(row["ode_error"], color="black", linestyle="--", label=f"reference {row['solver']} NFE {row['nfe']}: vs 2x steps")
        for row in rows
        if row["reference"] and row["ode_error"] is not None and row["ode_error"] > 0
    ]
    nfe_axis(axes, rows)
    axes.set_yscale("log")
    axes.set(xlabel="NFE", ylabel="ODE error (RMS per pixel)")
    if handles := levels + stochastic_note(axes, rows):
        axes.legend(handles=handles, fontsize="small", loc="lower left")  # below the coarse grids' errors


def draw_fid_vs_ode_error(axes, rows, styles=None):
    """One configuration's panel: FID (error bars: ±1 standard error; a log scale when the values span
    more than 10x) against ode_error, a line per deterministic series from its smallest budget to its
    largest; the reference as a black star."""
    for (solver, step_schedule), points in series_points(rows, "ode_error").items():
        style = (styles or {}).get((solver, step_schedule), {})
        axes.errorbar(
            [r["ode_error"] for r in points],
            [r["fid"] for r in points],
            yerr=[r.get("fid_se") or 0.0 for r in points],
            marker="o",
            markersize=3,
            capsize=2,
            label=f"{solver} / {step_schedule}",
            **style,
        )
    levels = [
        axes.plot([row["ode_error"]], [row["fid"]], "k*", markersize=9, label=f"reference ({row['solver']}, NFE {row['nfe']})")[0]
        for row in rows
        if row["reference"] and row["ode_error"] is not None and row["ode_error"] > 0 and math.isfinite(row["fid"])
    ]
    axes.set_xscale("log")
    wide_log_scale(axes, [row["fid"] for row in rows])
    axes.set(xlabel="ODE error (RMS per pixel)", ylabel="FID")
    if handles := levels + stochastic_note(axes, rows):
        axes.legend(handles=handles, fontsize="small", loc="upper left")  # above the converged cells


def save_figure(figure, path):
    """Write `figure` to `path` as a PNG, atomically."""
    with atomic_open(path) as file:
        figure.savefig(file, format="png")


def by_fid(rows):
    """The rows with a finite FID, lowest first."""
    return sorted((row for row in rows if math.isfinite(row["fid"])), key=lambda row: row["fid"])


def best_cell(rows):
    """Solver, step schedule, NFE, FID and fid_se of the row with the lowest finite FID, and whether
    the runner-up is `within_spread` of it; all None and FID NaN when no row has a finite FID."""
    ranked = by_fid(rows)
    if not ranked:
        return dict(solver=None, step_schedule=None, nfe=None, fid=math.nan, fid_se=math.nan, runner_up=None, within_spread=None)
    best, runner_up = ranked[0], (ranked[1:] or [None])[0]
    return dict(
        **{key: best[key] for key in ("solver", "step_schedule", "nfe", "fid")},
        fid_se=best.get("fid_se", math.nan),
        runner_up=None if runner_up is None else f"{runner_up['series']}, NFE {runner_up['nfe']}: FID {runner_up['fid']:.3f}",
        within_spread=None if runner_up is None else within_spread(best, runner_up),
    )


def within_spread(best, runner_up, z=2.0, paired=True):
    """Whether `runner_up`'s FID is within `z` standard errors of the difference from `best`'s; None
    when either has no bootstrap. `paired` (cells of one model): the standard deviation of their
    paired bootstrap FIDs' differences (the same resamples of samples from the same initial noise).
    Unpaired (cells of two models, each its own training): sqrt(se_best^2 + se_runner_up^2), since
    pairing by noise removes the spread of the samples but not that of training."""
    a, b = best.get("fid_bootstrap"), runner_up.get("fid_bootstrap")
    if not a or not b or len(a) != len(b):
        return None
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    error = (b - a).std() if paired else (a.var() + b.var()).sqrt()
    return bool(runner_up["fid"] - best["fid"] <= z * error.item())


def best_per_budget(rows):
    """For each (model, budget) of the non-reference rows, sorted: configuration (the `variant`), budget
    and the `best_cell` of its rows."""
    groups = {}
    for row in rows:
        if not row["reference"]:
            groups.setdefault((variant(row), row["budget"]), []).append(row)
    return [
        dict(configuration=configuration, budget=budget, **best_cell(groups[configuration, budget]))
        for configuration, budget in sorted(groups)
    ]


def measured_orders(rows, agree=0.5):
    """Per model (`variant`) and deterministic series, its convergence to the ODE solution: the
    theoretical order, the local slopes -d log(ode_error) / d log(NFE) between consecutive budgets,
    and the measured order, the least-squares slope over the asymptotic range: the largest budgets
    whose local slopes are within `agree` of the last one. Of budgets that spent the same NFE (a
    discrete model's grids can merge), one point counts; an ode_error of 0 has no logarithm."""
    table = []
    for model in dict.fromkeys(variant(row) for row in rows):
        for series in series_points([row for row in rows if variant(row) == model], "ode_error").values():
            points = list({row["nfe"]: row for row in series if row["ode_error"] > 0}.values())
            if not points:
                continue
            nfe = [math.log(row["nfe"]) for row in points]
            error = [math.log(row["ode_error"]) for row in points]
            slopes = [-(e1 - e0) / (n1 - n0) for n0, n1, e0, e1 in zip(nfe, nfe[1:], error, error[1:])]
            start = len(slopes)
            while start > 0 and abs(slopes[start - 1] - slopes[-1]) <= agree:
                start -= 1
            fitted = points[start:] if slopes else []
            table.append(
                dict(
                    configuration=model,
                    series=points[0]["series"],
                    order=points[0]["order"],
                    slopes=" ".join(f"{r0['nfe']}-{r1['nfe']}: {slope:.2f}" for r0, r1, slope in zip(points, points[1:], slopes)),
                    measured_order=-fit_slope(nfe[start:], error[start:]) if len(fitted) > 1 else math.nan,
                    over_nfe=f"{fitted[0]['nfe']}-{fitted[-1]['nfe']}" if len(fitted) > 1 else "",
                    ode_error_at_most_nfe=points[-1]["ode_error"],
                )
            )
    return table


def fit_slope(x, y):
    """The least-squares slope of y against x."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def orders_markdown(table):
    """The measured-order table as Markdown: theoretical order next to the measured one."""
    lines = [
        "# Convergence to the ODE solution\n",
        "Measured order: the least-squares slope of log(ode_error) against log(NFE) over the largest budgets",
        'whose local slopes agree within 0.5 (the asymptotic range). README "Reading a study" explains it.\n',
        "| model | solver / step schedule | theoretical order | measured order | over NFE | local slopes |",
        "|---|---|---|---|---|---|",
    ]
    for line in table:
        measured = f"{line['measured_order']:.2f}" if math.isfinite(line["measured_order"]) else "n/a"
        lines.append(
            f"| {line['configuration']} | {line['series']} | {line['order']} | {measured} | {line['over_nfe']} | {line['slopes']} |"
        )
    return "\n".join(lines) + "\n"


def convergence_checks(rows):
    """Per ODE reference of `rows` (one model: a configuration and clipping): its own error d (its
    distance to the solution at twice its steps, the one the cells are measured against), that
    solution's error estimated by Richardson extrapolation, d / (2^p - 1) for the reference
    solver's order p, the smallest `ode_error` of the cells measured against it, and whether it
    converged: the solution's error at most 1/10 of the smallest `ode_error`."""
    checks = []
    for reference in (row for row in rows if row["reference"]):
        errors = [row["ode_error"] for row in rows if not row["reference"] and row["ode_reference"] == reference["label"]]
        smallest = min((error for error in errors if error is not None), default=None)
        own = reference["ode_error"]
        solution = None if own is None else own / (2 ** reference["order"] - 1)
        checks.append(
            dict(
                reference=reference["label"],
                reference_error=own,
                solution_error=solution,
                smallest_ode_error=smallest,
                converged=None if smallest is None or solution is None else solution <= smallest / 10,
            )
        )
    return checks


def summary(rows, floor, failures=None):
    """The closing note's numbers: data_floor_fid, and under configurations, per model (`variant`) its
    reference FID, standard error and NFE (NaN and None if it has none), the `convergence_checks` of
    its ODE references, and the `best_cell` among non-reference cells with NFE <= 10 and <= 20; a
    configuration in `failures` (configuration -> message) appears as {"failed": message}."""
    result = {"data_floor_fid": floor, "configurations": {name: {"failed": message} for name, message in (failures or {}).items()}}
    for configuration in dict.fromkeys(variant(row) for row in rows):
        own = [row for row in rows if variant(row) == configuration]
        reference = next((row for row in own if row["reference"]), dict(fid=math.nan, fid_se=math.nan, nfe=None))
        cells = [row for row in own if not row["reference"]]
        result["configurations"][configuration] = {
            "reference_fid": reference["fid"],
            "reference_fid_se": reference.get("fid_se", math.nan),
            "reference_nfe": reference["nfe"],
            "ode_references": convergence_checks(own),
            "best_nfe_le_10": best_cell([row for row in cells if row["nfe"] <= 10]),
            "best_nfe_le_20": best_cell([row for row in cells if row["nfe"] <= 20]),
        }
    return result


RANKED = ("reference_fid", "fid_nfe_le_10", "fid_nfe_le_20")  # the columns of an ablation table that name a winner
ABLATION_COLUMNS = [
    "axis",
    "parent",
    "configuration",
    "entry",
    *(f"{column}{part}" for column in RANKED for part in ("", "_se", "_winner")),
    "cell_nfe_le_10",
    "cell_nfe_le_20",
]


def ablation_table(rows, axis, members, entries):
    """One ablation's table (EDM's Table 2): a row per model of the configurations `members` (the
    parent first; `entries`: configuration -> its entry of the varied `axis`) with its reference FID
    and its best FID at NFE <= 10 and <= 20 with the cell that got it, chosen among the (solver, step
    schedule, budget) cells that every model of the table has, so that each row picks from the same
    cells. Each FID comes with its standard error (`<column>_se`); the winner of each column is
    marked "clear", "within spread" when the runner-up is `within_spread` of it (unpaired: the rows
    are models trained apart), or "best" when no bootstrap tells."""
    models = {}
    for name in members:
        for row in rows:
            if row["configuration"] == name:
                models.setdefault(variant(row), []).append(row)
    cells = [{(r["solver"], r["step_schedule"], r["budget"]) for r in own if not r["reference"]} for own in models.values()]
    common = set.intersection(*cells) if cells else set()
    table, chosen = [], []
    for model, own in models.items():
        reference = next((row for row in own if row["reference"]), dict(fid=math.nan))
        shared = [row for row in own if not row["reference"] and (row["solver"], row["step_schedule"], row["budget"]) in common]
        line = dict(axis=axis, parent=members[0], configuration=model, entry=entries[own[0]["configuration"]])
        picked = {"reference_fid": reference}
        for most in (10, 20):
            finite = by_fid([row for row in shared if row["nfe"] <= most])
            picked[f"fid_nfe_le_{most}"] = finite[0] if finite else dict(fid=math.nan)
            line[f"cell_nfe_le_{most}"] = f"{finite[0]['solver']} / {finite[0]['step_schedule']}, NFE {finite[0]['nfe']}" if finite else ""
        for column, row in picked.items():
            line.update({column: row["fid"], f"{column}_se": row.get("fid_se", math.nan), f"{column}_winner": ""})
        table.append(line)
        chosen.append(picked)
    for column in RANKED:
        ranked = sorted((i for i, line in enumerate(table) if math.isfinite(line[column])), key=lambda i: table[i][column])
        if len(ranked) > 1:
            close = within_spread(chosen[ranked[0]][column], chosen[ranked[1]][column], paired=False)
            table[ranked[0]][f"{column}_winner"] = {True: "within spread", False: "clear", None: "best"}[close]
    return table


def ablation_markdown(tables, floor):
    """The ablation tables as Markdown: a section per varied axis, FID ± standard error, the best of
    each column in bold, marked ≈ when the runner-up is within its spread."""
    lines = [
        f"# Ablations\n\nData floor (held-out real images): FID {floor:.2f}. FID ± its bootstrap standard error; best of each "
        "column in bold, ≈ where the runner-up is within 2 standard errors of the difference, sqrt(se^2 + se'^2) (no clear "
        "winner): the rows are models trained apart, and FID moves between trainings too (see the seed table, where there "
        'is one, and README "Reading a study").\n'
    ]
    if not tables:
        lines.append("No configuration names a parent: there is no ablation to tabulate.")
    for table in tables:
        axis, parent = table[0]["axis"], table[0]["parent"]
        lines += [
            f"\n## {axis} (varied from `{parent}`)\n",
            f"| configuration | {axis} | reference FID | best FID, NFE <= 10 | best FID, NFE <= 20 |",
            "|---|---|---|---|---|",
        ]
        for line in table:
            value = {}
            for key in RANKED:
                text = f"{line[key]:.2f} ± {line[f'{key}_se']:.2f}" if math.isfinite(line[key]) else "n/a"
                winner = line[f"{key}_winner"]
                value[key] = f"**{text}**" + " ≈" * (winner == "within spread") if winner else text
            name = f"{line['configuration']} (parent)" if line["configuration"] == parent else line["configuration"]
            lines.append(
                f"| {name} | {line['entry']} | {value['reference_fid']} | {value['fid_nfe_le_10']} ({line['cell_nfe_le_10']}) "
                f"| {value['fid_nfe_le_20']} ({line['cell_nfe_le_20']}) |"
            )
    return "\n".join(lines) + "\n"


def convergence_figure(rows, samples, count=4):
    """One model's convergence picture: a row per (solver, step schedule) series, a column per NFE
    budget and last the converged reference, each cell its first `count` samples (`samples`: label
    -> images [N, C, H, W] in [-1, 1]), the same initial noises everywhere, so that a reader sees each
    solver arrive at the reference's images."""
    cells = [row for row in rows if not row["reference"]]
    series = list(dict.fromkeys(row["series"] for row in cells))
    budgets = sorted({row["budget"] for row in cells})
    reference = next(row for row in rows if row["reference"])
    figure = Figure(figsize=(1.5 * (len(budgets) + 1) + 2.2, 0.55 * len(series) + 0.9), layout="constrained")
    grid = figure.subplots(len(series), len(budgets) + 1, squeeze=False)
    for axes_row, name in zip(grid, series):
        own = {row["budget"]: row for row in cells if row["series"] == name}
        for column, (axes, budget) in enumerate(zip(axes_row, [*budgets, None])):
            row = reference if budget is None else own.get(budget)
            axes.set_xticks([]), axes.set_yticks([])
            if row is not None:
                axes.imshow(sample_grid_array(samples[row["label"]][:count], columns=count), interpolation="nearest")
            if column == 0:
                axes.set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    for axes, budget in zip(grid[0], [*budgets, None]):
        title = f"NFE {budget}" if budget else f"reference\n{reference['solver']}, NFE {reference['nfe']}"
        axes.set_title(title, fontsize="small")
    figure.suptitle(f"{variant(reference)}: the same {count} initial noises through every solver", fontsize="medium")
    return figure


def reference_samples_figure(layout, grids):
    """The reference samples of every model, a row of grids per (title, models) of `layout`; `grids`:
    model -> (image array, caption)."""
    columns = max(len(models) for _, models in layout)
    figure = Figure(figsize=(2.6 * columns, 3.0 * len(layout)), layout="constrained")
    for axes_row, (title, models) in zip(figure.subplots(len(layout), columns, squeeze=False), layout):
        for axes in axes_row:
            axes.set_axis_off()
        for axes, model in zip(axes_row, models):
            image, caption = grids[model]
            axes.imshow(image, interpolation="nearest")
            axes.set_title(f"{title}\n{caption}" if title and axes is axes_row[0] else caption, fontsize="small")
    return figure

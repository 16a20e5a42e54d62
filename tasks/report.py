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

import matplotlib.image
import torch
from matplotlib.figure import Figure

from .files import atomic_open

COLUMNS = ["configuration", "solver", "step_schedule", "clipping", "series", "budget", "nfe", "fid", "seconds"]  # of the CSV files
SEPARATOR = 255  # white 1-pixel lines between the images of a grid, and white empty slots


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


def sample_grid(images, path, columns=None):
    """Write `sample_grid_array(images, columns)` to `path` as one PNG, atomically."""
    with atomic_open(path) as file:
        matplotlib.image.imsave(file, sample_grid_array(images, columns), format="png")


def variant(row):
    """The configuration of a row, with its clipping where the denoiser was clipped: "edm", "eps + clip"."""
    clipping = row.get("clipping", "none")
    return row["configuration"] if clipping == "none" else f"{row['configuration']} + {clipping}"


def file_name(label):
    """A cell label such as "heun/karras/8" as a file name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


LINE_STYLES = ["-", "--", ":", "-."]


def fid_vs_nfe_figure(rows, floors=None, failures=None, layout=None):
    """A panel per model (`variant`): FID against NFE, one line per (solver, step schedule) (a colour
    per solver and a line style per step schedule, the same in every panel, in one legend), the
    reference as a dashed black line and, if `floors` is given (a float for all, or configuration ->
    float), the data floor as a dotted line. Non-finite FIDs are left out. A configuration in
    `failures` (configuration -> message) gets a panel that says why it has no results. `layout`:
    a row of panels per (title, configurations), e.g. an ablation's parent and the configurations
    that vary one axis from it; by default one row of every model."""
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
            axes.set_title(f"{title}: {model}" if title else model, fontsize="medium")
            if configuration in failures:
                message = fill(f"failed: {failures[configuration]}", 40)
                axes.text(0.5, 0.5, message, ha="center", va="center", color="darkred", transform=axes.transAxes)
                axes.set_axis_off()
                continue
            floor = floors.get(configuration) if isinstance(floors, dict) else floors
            draw_fid_vs_nfe(axes, of.get(configuration, {}).get(model, []), floor, styles)
            series.update({line.get_label(): line for line in axes.get_lines() if line.get_label() in labels})
    if series:
        figure.legend(list(series.values()), list(series), loc="outside right upper", fontsize="small")
    return figure


def draw_fid_vs_nfe(axes, rows, floor=None, styles=None):
    """One configuration's panel on `axes`: x = NFE spent on a base-2 log scale, ticked at the budgets
    (a solver may spend fewer, e.g. Heun 2n - 1), y = FID, on a log scale when the finite values span
    more than 10x; the panel's legend names its reference and floor."""
    cells = [row for row in rows if not row["reference"]]
    for solver, step_schedule in dict.fromkeys((row["solver"], row["step_schedule"]) for row in cells):
        points = sorted(
            (row["nfe"], row["fid"])
            for row in cells
            if (row["solver"], row["step_schedule"]) == (solver, step_schedule) and math.isfinite(row["fid"])
        )
        axes.plot(
            [nfe for nfe, _ in points],
            [fid for _, fid in points],
            marker="o",
            markersize=3,
            label=f"{solver} / {step_schedule}",
            **(styles or {}).get((solver, step_schedule), {}),
        )
    levels = []
    for row in rows:
        if row["reference"] and math.isfinite(row["fid"]):
            levels.append(
                axes.axhline(
                    row["fid"], color="black", linestyle="--", label=f"reference ({row['solver']}, NFE {row['nfe']}): FID {row['fid']:.3g}"
                )
            )
    if floor is not None and math.isfinite(floor):
        levels.append(axes.axhline(floor, color="gray", linestyle=":", label=f"data floor: FID {floor:.3g}"))
    axes.set_xscale("log", base=2)
    budgets = sorted({row["budget"] for row in cells})
    axes.set_xticks(budgets, labels=[str(budget) for budget in budgets])
    axes.set_xticks([], minor=True)
    if cells:  # a quarter octave of room on either side, so that no marker sits on the frame
        spent = [row["nfe"] for row in cells] + budgets
        axes.set_xlim(min(spent) / 2**0.25, max(spent) * 2**0.25)
    values = [fid for fid in [row["fid"] for row in rows] + [floor] if fid is not None and math.isfinite(fid)]
    if values and min(values) > 0 and max(values) > 10 * min(values):
        axes.set_yscale("log")
    axes.set(xlabel="NFE", ylabel="FID")
    if levels:
        axes.legend(handles=levels, fontsize="small", loc="upper right")


def save_figure(figure, path):
    """Write `figure` to `path` as a PNG, atomically."""
    with atomic_open(path) as file:
        figure.savefig(file, format="png")


def best_cell(rows):
    """Solver, step schedule, NFE and FID of the row with the lowest finite FID; all None and FID NaN
    when no row has a finite FID."""
    finite = [row for row in rows if math.isfinite(row["fid"])]
    if not finite:
        return dict(solver=None, step_schedule=None, nfe=None, fid=math.nan)
    best = min(finite, key=lambda row: row["fid"])
    return {key: best[key] for key in ("solver", "step_schedule", "nfe", "fid")}


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


def summary(rows, floor, failures=None):
    """The closing note's numbers: data_floor_fid, and under configurations, per model (`variant`) its reference FID and NFE
    (NaN and None if it has none) and the `best_cell` among non-reference cells with NFE <= 10 and <= 20;
    a configuration in `failures` (configuration -> message) appears as {"failed": message}."""
    result = {"data_floor_fid": floor, "configurations": {name: {"failed": message} for name, message in (failures or {}).items()}}
    for configuration in dict.fromkeys(variant(row) for row in rows):
        own = [row for row in rows if variant(row) == configuration]
        reference = next((row for row in own if row["reference"]), dict(fid=math.nan, nfe=None))
        cells = [row for row in own if not row["reference"]]
        result["configurations"][configuration] = {
            "reference_fid": reference["fid"],
            "reference_nfe": reference["nfe"],
            "best_nfe_le_10": best_cell([row for row in cells if row["nfe"] <= 10]),
            "best_nfe_le_20": best_cell([row for row in cells if row["nfe"] <= 20]),
        }
    return result


ABLATION_COLUMNS = [
    "axis",
    "parent",
    "configuration",
    "entry",
    "reference_fid",
    "fid_nfe_le_10",
    "cell_nfe_le_10",
    "fid_nfe_le_20",
    "cell_nfe_le_20",
]


def ablation_table(rows, axis, members, entries):
    """One ablation's table (EDM's Table 2): a row per model of the configurations `members` (the
    parent first; `entries`: configuration -> its entry of the varied `axis`) with its reference FID
    and its best FID at NFE <= 10 and <= 20 with the cell that got it, chosen among the (solver, step
    schedule, budget) cells that every model of the table has, so that each row picks from the same
    cells."""
    models = {}
    for name in members:
        for row in rows:
            if row["configuration"] == name:
                models.setdefault(variant(row), []).append(row)
    cells = [{(r["solver"], r["step_schedule"], r["budget"]) for r in own if not r["reference"]} for own in models.values()]
    common = set.intersection(*cells) if cells else set()
    table = []
    for model, own in models.items():
        reference = next((row for row in own if row["reference"]), dict(fid=math.nan))
        shared = [row for row in own if not row["reference"] and (row["solver"], row["step_schedule"], row["budget"]) in common]
        line = dict(
            axis=axis, parent=members[0], configuration=model, entry=entries[own[0]["configuration"]], reference_fid=reference["fid"]
        )
        for most in (10, 20):
            best = best_cell([row for row in shared if row["nfe"] <= most])
            line[f"fid_nfe_le_{most}"] = best["fid"]
            line[f"cell_nfe_le_{most}"] = f"{best['solver']} / {best['step_schedule']}, NFE {best['nfe']}" if best["solver"] else ""
        table.append(line)
    return table


def ablation_markdown(tables, floor):
    """The ablation tables as Markdown: a section per varied axis, the best value of each column in bold."""
    lines = [f"# Ablations\n\nData floor (held-out real images): FID {floor:.2f}. Best of each column in bold.\n"]
    if not tables:
        lines.append("No configuration names a parent: there is no ablation to tabulate.")
    for table in tables:
        axis, parent = table[0]["axis"], table[0]["parent"]
        lines += [
            f"\n## {axis} (varied from `{parent}`)\n",
            f"| configuration | {axis} | reference FID | best FID, NFE <= 10 | best FID, NFE <= 20 |",
            "|---|---|---|---|---|",
        ]
        best = {
            key: min((line[key] for line in table if math.isfinite(line[key])), default=None)
            for key in ("reference_fid", "fid_nfe_le_10", "fid_nfe_le_20")
        }

        for line in table:
            value = {key: f"{line[key]:.2f}" if math.isfinite(line[key]) else "n/a" for key in best}
            value = {key: f"**{text}**" if line[key] == best[key] else text for key, text in value.items()}
            name = f"{line['configuration']} (parent)" if line["configuration"] == parent else line["configuration"]
            lines.append(
                f"| {name} | {line['entry']} | {value['reference_fid']} | {value['fid_nfe_le_10']} ({line['cell_nfe_le_10']}) "
                f"| {value['fid_nfe_le_20']} ({line['cell_nfe_le_20']}) |"
            )
    return "\n".join(lines) + "\n"


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

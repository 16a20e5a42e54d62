"""The report's figures, pure functions of the evaluation rows (`tasks.compute.cells.Cell.row`): FID against
NFE, ODE error against NFE and FID against ODE error, a panel per model; each model's convergence
picture; every model's reference samples; PNG files written atomically. A configuration sampled with
a clipped denoiser is a model of its own here (`tasks.report.analysis.variant`): its own panel and reference.
"""

import math
from textwrap import fill

from matplotlib.figure import Figure

from tasks.files import atomic_open

from .analysis import fitted, series_points, variant
from .sample_images import tiled_samples

LINE_STYLES = ["-", "--", ":", "-."]


def fid_vs_nfe_figure(rows, floor=None, failures=None, layout=None):
    """`panel_figure` of FID against NFE (`draw_fid_vs_nfe`), the data `floor` dotted."""
    return panel_figure(rows, lambda axes, own, styles: draw_fid_vs_nfe(axes, own, floor, styles), failures, layout)


def ode_error_figure(rows, floor=None, failures=None, layout=None):
    """`panel_figure` of ode_error against NFE on log-log axes (`draw_ode_error_vs_nfe`); no floor."""
    return panel_figure(rows, draw_ode_error_vs_nfe, failures, layout)


def fid_vs_ode_error_figure(rows, floor=None, failures=None, layout=None):
    """`panel_figure` of FID against ode_error (`draw_fid_vs_ode_error`); no floor."""
    return panel_figure(rows, draw_fid_vs_ode_error, failures, layout)


def series_styles(rows):
    """(solver, step schedule) -> its line's style: a colour per solver, a line style per step schedule."""
    cells = [row for row in rows if not row["reference"]]
    solvers = list(dict.fromkeys(row["solver"] for row in cells))
    schedules = list(dict.fromkeys(row["step_schedule"] for row in cells))
    return {
        (solver, schedule): dict(color=f"C{i % 10}", linestyle=LINE_STYLES[j % len(LINE_STYLES)])
        for i, solver in enumerate(solvers)
        for j, schedule in enumerate(schedules)
    }


def panels_of(rows, failures, layout):
    """[(title, [(configuration, model), ...]) per row of panels]: `layout` (a row per (title,
    configurations)) or one row of every configuration, each configuration's models (`variant`s)."""
    of = {}
    for row in rows:
        of.setdefault(row["configuration"], []).append(variant(row))
    layout = layout or [(None, list(dict.fromkeys([row["configuration"] for row in rows] + list(failures))))]
    return [(title, [(name, model) for name in names for model in dict.fromkeys(of.get(name) or [name])]) for title, names in layout]


def panel_figure(rows, draw, failures=None, layout=None):
    """A panel per model (`variant`) drawn by `draw(axes, its rows, styles)`, one line per (solver,
    step schedule) styled alike in every panel (`series_styles`), in one legend. A configuration in
    `failures` (configuration -> message) gets a panel that says why it has no results. `layout`: a
    row of panels per (title, configurations), e.g. an ablation's parent and the configurations that
    vary one axis from it; by default one row of every model."""
    failures = failures or {}
    if not rows and not failures:
        raise ValueError("rows and failures are empty; allowed: at least one row or failure")
    panels, styles = panels_of(rows, failures, layout), series_styles(rows)
    labels = {f"{solver} / {schedule}" for solver, schedule in styles}
    columns = max(len(names) for _, names in panels)
    figure = Figure(figsize=(4.2 * columns + 2.5, 3.8 * len(panels)), layout="constrained")
    series = {}
    for axes_row, (title, names) in zip(figure.subplots(len(panels), columns, squeeze=False), panels):
        for axes in axes_row[len(names) :]:
            axes.set_axis_off()
        for axes, (configuration, model) in zip(axes_row, names):
            axes.set_title(fill(f"{title}: {model}" if title else model, 45), fontsize="medium")
            if configuration in failures:
                message = fill(f"failed: {failures[configuration]}", 40)
                axes.text(0.5, 0.5, message, ha="center", va="center", color="darkred", transform=axes.transAxes)
                axes.set_axis_off()
                continue
            draw(axes, [row for row in rows if row["configuration"] == configuration and variant(row) == model], styles)
            series.update({label: handle for handle, label in zip(*axes.get_legend_handles_labels()) if label in labels})
    if series:
        figure.legend(list(series.values()), list(series), loc="outside right upper", fontsize="small")
    return figure


def each_series(rows, y, styles):
    """(its rows by NFE, its style, its label) of each (solver, step schedule) series of `rows` with a
    finite `y` (`series_points`)."""
    for (solver, step_schedule), points in series_points(rows, y).items():
        yield points, (styles or {}).get((solver, step_schedule), {}), f"{solver} / {step_schedule}"


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
    for points, style, label in each_series(rows, "fid", styles):
        nfe, fid = [row["nfe"] for row in points], [row["fid"] for row in points]
        axes.plot(nfe, fid, marker="o", markersize=3, label=label, **style)
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
    for points, style, label in each_series(rows, "ode_error", styles):
        axes.plot([r["nfe"] for r in points], [r["ode_error"] for r in points], marker="o", markersize=3, label=label, **style)
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
    for points, style, label in each_series(rows, "ode_error", styles):
        ode_error, fid, se = [r["ode_error"] for r in points], [r["fid"] for r in points], [r.get("fid_se") or 0.0 for r in points]
        axes.errorbar(ode_error, fid, yerr=se, marker="o", markersize=3, capsize=2, label=label, **style)
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
    panels = figure.subplots(len(series), len(budgets) + 1, squeeze=False)
    for axes_row, name in zip(panels, series):
        own = {row["budget"]: row for row in cells if row["series"] == name}
        for column, (axes, budget) in enumerate(zip(axes_row, [*budgets, None])):
            row = reference if budget is None else own.get(budget)
            axes.set_xticks([]), axes.set_yticks([])
            if row is not None:
                axes.imshow(tiled_samples(samples[row["label"]][:count], columns=count), interpolation="nearest")
            if column == 0:
                axes.set_ylabel(name, rotation=0, ha="right", va="center", fontsize="small")
    for axes, budget in zip(panels[0], [*budgets, None]):
        title = f"NFE {budget}" if budget else f"reference\n{reference['solver']}, NFE {reference['nfe']}"
        axes.set_title(title, fontsize="small")
    figure.suptitle(f"{variant(reference)}: the same {count} initial noises through every solver", fontsize="medium")
    return figure


def sigmas_figure(panels, title=""):
    """The step schedules' grids: a panel per (title, {label: sigmas from sigma_max to 0}) of
    `panels`, sigma against step on a log scale (the final sigma = 0 left out), one line per label,
    so that a reader sees where each schedule spends its steps."""
    figure = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    for axes, (name, lines) in zip(figure.subplots(1, len(panels), squeeze=False)[0], panels):
        for i, (label, sigmas) in enumerate(lines.items()):
            shown = [sigma for sigma in sigmas if sigma > 0]
            axes.plot(range(len(shown)), shown, LINE_STYLES[i % len(LINE_STYLES)], marker="o", markersize=3, label=label)
        axes.set_yscale("log"), axes.set_xlabel("step"), axes.set_ylabel("sigma"), axes.set_title(name, fontsize="small")
        axes.legend(fontsize="x-small")
    figure.suptitle(title, fontsize="medium")
    return figure


def schedules_figure(rows):
    """Where each step schedule spends its steps: per model with a fitted step schedule
    (`tasks.report.analysis.fitted`), a panel per budget of `sigmas_figure`: a line per fixed schedule (its
    grid for the first solver fitted) and per (solver, fitted schedule)."""
    panels = []
    for model in dict.fromkeys(variant(row) for row in rows if not row["reference"] and fitted(row)):
        own = [row for row in rows if variant(row) == model and not row["reference"]]
        solvers = list(dict.fromkeys(row["solver"] for row in own if fitted(row)))
        for budget in sorted({row["budget"] for row in own if fitted(row)}):
            at = [row for row in own if row["budget"] == budget and row["solver"] in solvers]
            lines = {row["step_schedule"]: row["sigmas"] for row in at if row["solver"] == solvers[0] and not fitted(row)}
            lines.update({row["series"]: row["sigmas"] for row in at if fitted(row)})
            panels.append((f"{model}, NFE {budget}", lines))
    if not panels:
        figure = Figure(figsize=(4, 1))
        figure.text(0.5, 0.5, "no fitted step schedule in this study", ha="center", va="center")
        return figure
    return sigmas_figure(panels, "step schedules: sigma at each step (the last step goes to 0)")

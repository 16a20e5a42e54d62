"""The study at a glance, across configurations: every ablation's entries side by side against the
seed replicates' spread, the density of log sigma that training draws, every model's reference
samples. Pure functions of the report's tables and results; `tasks.report.figures.save_figure` writes them."""

import math

from matplotlib.figure import Figure


def ablations_figure(tables, floor=None, columns=2):
    """A panel per ablation table (`tasks.report.analysis.ablation_table`): its entries side by side, each
    with its reference FID (circle) and best FID at NFE <= 10 (diamond), ±1 standard error, on a log
    scale; the parent's label in bold; the range of the seed replicates' FIDs (a table whose axis is
    "seed") drawn in every panel as two bands, and the data floor dotted: which entry of each axis is
    best, and by how much, against how far one recipe moves between trainings."""
    seeds = next((table for table in tables if table[0]["axis"] == "seed"), None)
    rows_of_panels = max(1, math.ceil(len(tables) / columns))
    heights = [max(len(table) for table in tables[i : i + columns]) for i in range(0, len(tables), columns)] or [1]
    figure = Figure(figsize=(15, sum(0.32 * h + 1.3 for h in heights)), layout="constrained")
    panels = figure.subplots(rows_of_panels, columns, squeeze=False, gridspec_kw=dict(height_ratios=heights))
    for axes in panels.flat[len(tables) :]:
        axes.set_axis_off()
    for axes, table in zip(panels.flat, tables):
        draw_ablation(axes, table, seeds, floor)
    handles, labels = panels.flat[0].get_legend_handles_labels()
    if labels:
        figure.legend(handles, labels, loc="outside upper center", ncols=min(len(labels), 5), fontsize="small")
    return figure


MARKS = {  # an ablation table's column -> its marker, colour and label in the figure
    "reference_fid": ("o", "black", "reference (converged ODE)"),
    "fid_nfe_le_10": ("D", "C1", "best at NFE <= 10"),
}


def draw_ablation(axes, table, seeds, floor):
    """One ablation table's panel of `ablations_figure`: each entry's `MARKS` columns ±1 standard error,
    the seed replicates' range of each (`seeds`: their table, or None) as a band, the data `floor` dotted."""
    positions = list(range(len(table)))[::-1]
    for column, (marker, color, label) in MARKS.items():
        values = [line[column] for line in table]
        errors = [line[f"{column}_se"] if math.isfinite(line[f"{column}_se"]) else 0 for line in table]
        axes.errorbar(values, positions, xerr=errors, fmt=marker, color=color, markersize=5, capsize=3, label=label)
        spread = [line[column] for line in seeds or [] if math.isfinite(line[column])]
        if spread:
            axes.axvspan(min(spread), max(spread), color=color, alpha=0.12, linewidth=0, label=f"seed replicates: {label}")
    if floor is not None:
        axes.axvline(floor, color="gray", linestyle=":", label=f"data floor: FID {floor:.3g}")
    axes.set_yticks(positions, labels=[entry_label(line) for line in table])
    for tick, line in zip(axes.get_yticklabels(), table):
        tick.set_fontweight("bold" if line["configuration"] == line["parent"] else "normal")
    axes.set_xscale("log")
    low, high = axes.get_xlim()
    ticks = [value * 10**power for power in range(-1, 4) for value in (1, 2, 5) if low <= value * 10**power <= high]
    axes.set_xticks(ticks, labels=[f"{tick:g}" for tick in ticks])
    axes.set_xticks([], minor=True)
    axes.set_ylim(-0.7, len(table) - 0.3)
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(f"{table[0]['axis']} (from {table[0]['parent']})", fontsize="medium")
    axes.set_xlabel("FID (±1 standard error)")


def entry_label(line):
    """An ablation table line's entry as a figure labels it: with its clipping where the denoiser was
    clipped, and "(parent)" for the parent."""
    clipping = line["configuration"].partition(" + ")[2]
    label = " + ".join([line["entry"], *[clipping] * bool(clipping)])
    return f"{label} (parent)" if line["configuration"] == line["parent"] else label


def noise_levels_figure(panels):
    """The density of log sigma that training draws, a panel per (title, configuration -> its
    `tasks.compute.noise_levels` histogram) of `panels`, a line per configuration, its sampling range (the
    noise schedule's [sigma_min, sigma_max], where every step schedule starts and ends) marked by ticks
    of its colour on the axis; the data's scale sigma = 0.5 dotted."""
    figure = Figure(figsize=(7.5, 3.6 * len(panels)), layout="constrained")
    for axes, (title, levels) in zip(figure.subplots(len(panels), 1, squeeze=False)[:, 0], panels):
        for i, (name, level) in enumerate(levels.items()):
            centres = [math.exp((a + b) / 2) for a, b in zip(level["edges"], level["edges"][1:])]
            line = axes.plot(centres, level["density"], color=f"C{i % 10}", label=name)[0]
            ends = [level["sigma_min"], level["sigma_max"]]
            axes.plot(ends, [0, 0], linestyle="none", marker="|", markersize=14, markeredgewidth=2, color=line.get_color(), clip_on=False)
        axes.axvline(0.5, color="gray", linestyle=":", linewidth=1, label="sigma_data = 0.5")
        axes.set_xscale("log")
        axes.set_ylim(bottom=0)
        axes.set(xlabel="sigma (ticks on the axis: each model's sampling range)", ylabel="density of log sigma in training", title=title)
        axes.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return figure


def reference_samples_figure(layout, pictures):
    """The reference samples of every model, a row of pictures per (title, models) of `layout`; `pictures`:
    model -> (image array, caption)."""
    columns = max(len(models) for _, models in layout)
    figure = Figure(figsize=(2.6 * columns, 3.0 * len(layout)), layout="constrained")
    for axes_row, (title, models) in zip(figure.subplots(len(layout), columns, squeeze=False), layout):
        for axes in axes_row:
            axes.set_axis_off()
        for axes, model in zip(axes_row, models):
            image, caption = pictures[model]
            axes.imshow(image, interpolation="nearest")
            axes.set_title(f"{title}\n{caption}" if title and axes is axes_row[0] else caption, fontsize="small")
    return figure

"""The report's tables as Markdown: the measured orders of convergence, a table per ablation and the
fitted step schedules against the fixed ones."""

import math

from tasks.compute.rows import Score, scores, shown

from .analysis import ranked


def with_error(value, error):
    """ "value ± error", both to the decimals that give `error` two significant digits (KID's scale is
    the feature space's: tens on the digits classifier's features, thousandths on Inception's)."""
    decimals = max(0, 1 - math.floor(math.log10(error))) if error > 0 and math.isfinite(error) else 2
    return f"{value:.{decimals}f} ± {error:.{decimals}f}"


def value(row, name):
    """The row's field `name` as text, as its `Shown` says (`tasks.compute.rows`): a score with its
    standard error, a number in its format; "" where it is None (not measured)."""
    how, measured = shown(name), row[name]
    if isinstance(how, Score):
        return with_score_error(name, measured, row[f"{name}_se"])
    return "" if measured is None else format(measured, how.spec or "")


def with_score_error(name, value, error):
    """ "value ± error" of the score `name`: to its `decimals`, else as `with_error`."""
    decimals = shown(name).decimals
    return f"{value:.{decimals}f} ± {error:.{decimals}f}" if decimals is not None else with_error(value, error)


def number(value, spec):
    """`value` formatted by `spec`, or n/a for None."""
    return "n/a" if value is None else format(value, spec)


def orders_markdown(table, checks=None):
    """The measured-order table as Markdown, theoretical order next to the measured one; then the
    check of each model's ODE references (`checks`: model -> `tasks.report.analysis.convergence_checks`)."""
    lines = [
        "# Convergence to the ODE solution\n",
        "Measured order: the least-squares slope of log(ode_error) against log(NFE) over the largest budgets",
        "whose local slopes agree within 0.5 (the asymptotic range), at least 3 of them (else n/a). docs/reading.md",
        "explains it.\n",
        "| model | solver / step schedule | theoretical order | measured order | over NFE | local slopes |",
        "|---|---|---|---|---|---|",
    ]
    for line in table:
        measured = f"{line['measured_order']:.2f}" if math.isfinite(line["measured_order"]) else "n/a"
        lines.append(
            f"| {line['configuration']} | {line['series']} | {line['order']} | {measured} | {line['over_nfe']} | {line['slopes']} |"
        )
    lines += [
        "\n## The ODE references\n",
        "Each cell's ode_error is measured against Heun at twice its reference's steps; one more solve at twice those steps",
        "gives the error ratio r (2^order: about 4 for Heun) and that solution's own error, d / (r - 1). A reference that",
        "did not converge (its ratio not near 2^order, or the solution's error over 1/10 of the smallest ode_error) makes",
        "that model's ODE errors no measure of its solvers.\n",
        "| model | reference | distance d to 2x steps | error ratio r | order log2 r | solution's error | smallest ode_error | converged |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for model, own in (checks or {}).items():
        for check in own:
            verdict = {True: "yes", False: "**NO**", None: "n/a"}[check["converged"]]
            lines.append(
                f"| {model} | {check['reference']} | {number(check['reference_error'], '.2e')} | {number(check['error_ratio'], '.2f')} "
                f"| {number(check['measured_order'], '.2f')} | {number(check['solution_error'], '.2e')} "
                f"| {number(check['smallest_ode_error'], '.2e')} | {verdict} |"
            )
    return "\n".join(lines) + "\n"


def ablation_markdown(tables, floor):
    """The ablation tables as Markdown: a section per varied axis, a column per `ranked` column (the
    reference's scores, the best FIDs) ± standard error, the best of each column in bold, marked ≈ when
    the runner-up is within its spread."""
    labels = [shown(name).label for name in scores()]
    lines = [
        f"# Ablations\n\nData floor (held-out real images): FID {floor:.2f}. {' and '.join(labels)} ± their bootstrap standard "
        "errors (each on its own scale; KID's is the feature space's); best of each column in bold, ≈ where the "
        "runner-up is within 2 standard errors of the difference, sqrt(se^2 + se'^2) (no clear winner): the rows are models "
        "trained apart, and FID moves between trainings too (see the seed table, where there is one, and docs/reading.md).\n"
    ]
    if not tables:
        lines.append("No configuration names a parent: there is no ablation to tabulate.")
    columns = ranked()
    heads = [
        f"reference {shown(metric).label}" if key.startswith("reference_") else f"best FID, NFE <= {key.rpartition('_')[2]}"
        for key, metric in columns.items()
    ]
    for table in tables:
        axis, parent = table[0]["axis"], table[0]["parent"]
        lines += [
            f"\n## {axis} (varied from `{parent}`)\n",
            f"| configuration | {axis} | {' | '.join(heads)} |",
            "|---" * (len(heads) + 2) + "|",
        ]
        for line in table:
            name = f"{line['configuration']} (parent)" if line["configuration"] == parent else line["configuration"]
            cells = [ranked_cell(line, key, metric) for key, metric in columns.items()]
            lines.append(f"| {name} | {line['entry']} | {' | '.join(cells)} |")
    return "\n".join(lines) + "\n"


def ranked_cell(line, key, metric):
    """An ablation table's cell of column `key` (ranked by `metric`): its value ± standard error, bold
    for the column's winner, ≈ when within spread; a best cell with the cell that got it."""
    text = with_score_error(metric, line[key], line[f"{key}_se"]) if math.isfinite(line[key]) else "n/a"
    winner = line[f"{key}_winner"]
    text = f"**{text}**" + " ≈" * (winner == "within spread") if winner else text
    cell = line.get(key.replace(f"{metric}_nfe_le_", "cell_nfe_le_"))
    return f"{text} ({cell})" if not key.startswith("reference_") else text


def schedules_markdown(lines):
    """The comparison of the fitted step schedules with the best fixed ones (`schedule_comparison`):
    a row per model, solver and budget; the FID difference bold where it is beyond 2 paired standard
    errors."""
    text = [
        "# Optimized step schedules\n\nEach fitted step schedule against the best fixed schedule of the same model, solver and "
        "budget: by ODE error (the distance to the model's converged ODE solution; ratio < 1: the fitted grid is closer) and "
        "by FID (difference ± its paired standard error: the same noise and bootstrap resamples; bold beyond 2 of them). "
        "Fitting costs the seconds shown, once per model, solver, budget and clipping.\n"
    ]
    if not lines:
        return text[0] + "\nNo grid of this study has a fitted step schedule.\n"
    text += [
        "| model | solver | NFE | schedule | fit s | ODE error | best fixed by ODE error | ratio | FID | best fixed by FID | difference |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for line in lines:
        fixed_error = f"{line['fixed_ode_error']:.2e} ({line['fixed_by_ode_error']})" if line["fixed_ode_error"] is not None else "n/a"
        ratio = number(line["ode_error_ratio"], ".2f")
        difference, se = line["fid_difference"], line["fid_difference_se"]
        shown_difference = "n/a" if difference is None else f"{difference:+.2f} ± {se:.2f}" if se is not None else f"{difference:+.2f}"
        shown_difference = (
            f"**{shown_difference}**" if difference is not None and se is not None and abs(difference) > 2 * se else shown_difference
        )
        fixed_fid = f"{line['fixed_fid']:.2f} ({line['fixed_by_fid']})" if line["fixed_fid"] is not None else "n/a"
        text.append(
            f"| {line['configuration']} | {line['solver']} | {line['nfe']} | {line['step_schedule']} | {line['fit_seconds']:.1f} "
            f"| {number(line['ode_error'], '.2e')} | {fixed_error} | {ratio} | {line['fid']:.2f} ± {line['fid_se']:.2f} "
            f"| {fixed_fid} | {shown_difference} |"
        )
    return "\n".join(text) + "\n"

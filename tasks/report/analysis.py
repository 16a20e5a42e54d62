"""The numbers a report is made of, from the evaluation rows (`tasks.compute.cells.Cell.row`): the best cell
per budget and whether its runner-up is within the spread, the measured orders of convergence, the
checks of each ODE reference, the closing summary, a table per ablation and the comparison of the
fitted step schedules with the fixed ones. Pure functions of the rows, no figures: what draws them
is `tasks.report.figures`, what writes them as Markdown `tasks.report.markdown`.

A configuration sampled with a clipped denoiser is a model of its own here (`variant`): its own
reference and best cells.
"""

import math

import torch

from models.axes import STEP_SCHEDULE_ENTRIES
from tasks.compute.rows import scores


def variant(row):
    """The configuration of a row, with its clipping where the denoiser was clipped: "edm", "eps + clip"."""
    clipping = row.get("clipping", "none")
    return row["configuration"] if clipping == "none" else f"{row['configuration']} + {clipping}"


def by_fid(rows):
    """The rows with a finite FID, lowest first."""
    return sorted((row for row in rows if math.isfinite(row["fid"])), key=lambda row: row["fid"])


def measured(row=None, prefix=""):
    """Each score of the row (`tasks.compute.rows.scores`) and its standard error, named with `prefix`;
    NaN where the row has none (or there is no row)."""
    return {f"{prefix}{key}": (row or {}).get(key, math.nan) for name in scores() for key in (name, f"{name}_se")}


def best_cell(rows):
    """Solver, step schedule and NFE of the row with the lowest finite FID, its scores with their
    standard errors (`measured`), and whether the runner-up is `within_spread` of it; all None and the
    scores NaN when no row has a finite FID."""
    ranked = by_fid(rows)
    if not ranked:
        return dict(solver=None, step_schedule=None, nfe=None, **measured(), runner_up=None, within_spread=None)
    best, runner_up = ranked[0], (ranked[1:] or [None])[0]
    return dict(
        **{key: best[key] for key in ("solver", "step_schedule", "nfe")},
        **measured(best),
        runner_up=None if runner_up is None else f"{runner_up['series']}, NFE {runner_up['nfe']}: FID {runner_up['fid']:.3f}",
        within_spread=None if runner_up is None else within_spread(best, runner_up),
    )


def within_spread(best, runner_up, z=2.0, paired=True, metric="fid"):
    """Whether `runner_up`'s `metric` (fid or kid) is within `z` standard errors of the difference from
    `best`'s; None when either has no bootstrap. `paired` (cells of one model): the standard deviation
    of their paired bootstrap values' differences (the same resamples of samples from the same initial
    noise). Unpaired (cells of two models, each its own training): sqrt(se_best^2 + se_runner_up^2),
    since pairing by noise removes the spread of the samples but not that of training."""
    a, b = best.get(f"{metric}_bootstrap"), runner_up.get(f"{metric}_bootstrap")
    if not a or not b or len(a) != len(b):
        return None
    a, b = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    error = (b - a).std() if paired else (a.var() + b.var()).sqrt()
    return bool(runner_up[metric] - best[metric] <= z * error.item())


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


def series_points(rows, y, x="nfe"):
    """(solver, step schedule) -> its cells' rows sorted by `x`, those with a finite `x` and `y`."""
    finite = lambda value: value is not None and math.isfinite(value)
    series = {}
    for row in rows:
        if not row["reference"] and finite(row[x]) and finite(row[y]):
            series.setdefault((row["solver"], row["step_schedule"]), []).append(row)
    return {key: sorted(points, key=lambda row: row[x]) for key, points in series.items()}


def measured_orders(rows, agree=0.5, least=3):
    """Per model (`variant`) and deterministic series, its convergence to the ODE solution: the
    theoretical order, the local slopes -d log(ode_error) / d log(NFE) between consecutive budgets,
    and the measured order, the least-squares slope over the asymptotic range: the largest budgets
    whose local slopes are within `agree` of the last one, at least `least` of them (else NaN: two
    points make a slope, not an order). Of budgets that spent the same NFE (a discrete model's grids
    can merge), one point counts; an ode_error of 0 has no logarithm."""
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
            fitted = points[start:] if len(points) - start >= least else []
            table.append(
                dict(
                    configuration=model,
                    series=points[0]["series"],
                    order=points[0]["order"],
                    slopes=" ".join(f"{r0['nfe']}-{r1['nfe']}: {slope:.2f}" for r0, r1, slope in zip(points, points[1:], slopes)),
                    measured_order=-fit_slope(nfe[start:], error[start:]) if fitted else math.nan,
                    over_nfe=f"{fitted[0]['nfe']}-{fitted[-1]['nfe']}" if fitted else "",
                    ode_error_at_most_nfe=points[-1]["ode_error"],
                )
            )
    return table


def fit_slope(x, y):
    """The least-squares slope of y against x."""
    mx, my = sum(x) / len(x), sum(y) / len(y)
    return sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)


def convergence_checks(rows, agree=0.5, margin=10):
    """Per ODE reference of `rows` (one model: a configuration and clipping): its own error d (its
    distance to the solution at twice its steps, the one the cells are measured against), its
    measured `error_ratio` r (d over that solution's distance to the solution at twice its steps
    again) and the order log2(r) it shows, which must be within `agree` of the reference solver's
    (`ratio_as_expected`); that solution's error by Richardson extrapolation with the measured
    ratio, d / (r - 1); the smallest `ode_error` of the cells measured against it; and whether it
    converged: the ratio as expected and the solution's error at most 1/`margin` of the smallest
    `ode_error`."""
    checks = []
    for reference in (row for row in rows if row["reference"]):
        errors = [row["ode_error"] for row in rows if not row["reference"] and row["ode_reference"] == reference["label"]]
        smallest = min((error for error in errors if error is not None), default=None)
        own, ratio = reference["ode_error"], reference.get("error_ratio")
        measured = math.log2(ratio) if ratio is not None and ratio > 0 else None
        as_expected = None if measured is None else abs(measured - reference["order"]) <= agree
        solution = None if own is None or ratio is None else own / (ratio - 1) if ratio > 1 else math.inf
        checks.append(
            dict(
                reference=reference["label"],
                reference_error=own,
                error_ratio=ratio,
                measured_order=measured,
                expected_order=reference["order"],
                ratio_as_expected=as_expected,
                solution_error=solution,
                smallest_ode_error=smallest,
                converged=None if None in (smallest, solution, as_expected) else as_expected and solution <= smallest / margin,
            )
        )
    return checks


def summary(rows, floor, failures=None):
    """The closing note's numbers: data_floor_fid, and under configurations, per model (`variant`) its
    reference's scores with their standard errors (`measured`) and NFE (NaN and None if it has none), the `convergence_checks` of
    its ODE references, and the `best_cell` among non-reference cells with NFE <= 10 and <= 20; a
    configuration in `failures` (configuration -> message) appears as {"failed": message}."""
    result = {"data_floor_fid": floor, "configurations": {name: {"failed": message} for name, message in (failures or {}).items()}}
    for configuration in dict.fromkeys(variant(row) for row in rows):
        own = [row for row in rows if variant(row) == configuration]
        reference = next((row for row in own if row["reference"]), dict(nfe=None))
        cells = [row for row in own if not row["reference"]]
        result["configurations"][configuration] = {
            **measured(reference, "reference_"),
            "reference_nfe": reference["nfe"],
            "ode_references": convergence_checks(own),
            "best_nfe_le_10": best_cell([row for row in cells if row["nfe"] <= 10]),
            "best_nfe_le_20": best_cell([row for row in cells if row["nfe"] <= 20]),
        }
    return result


BEST_WITHIN = (10, 20)  # an ablation table's best cells: at NFE <= each


def ranked():
    """The columns of an ablation table that name a winner -> the score they rank by: the reference's
    every score, then the best FID at NFE <= each of `BEST_WITHIN`."""
    return {f"reference_{name}": name for name in scores()} | {f"fid_nfe_le_{most}": "fid" for most in BEST_WITHIN}


def ablation_columns():
    """The columns of ablations.csv."""
    parts = [f"{column}{part}" for column in ranked() for part in ("", "_se", "_winner")]
    return ["axis", "parent", "configuration", "entry", *parts, *(f"cell_nfe_le_{most}" for most in BEST_WITHIN)]


def ablation_table(rows, axis, members, entries):
    """One ablation's table (EDM's Table 2): a row per model of the configurations `members` (the
    parent first; `entries`: configuration -> its entry of the varied `axis`) with its reference's
    scores and its best FID at NFE <= each of `BEST_WITHIN` with the cell that got it, chosen among the (solver, step
    schedule, budget) cells that every model of the table has, so that each row picks from the same
    cells. Each comes with its standard error (`<column>_se`); the winner of each column is
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
        picked = {f"reference_{name}": reference for name in scores()}
        for most in BEST_WITHIN:
            finite = by_fid([row for row in shared if row["nfe"] <= most])
            picked[f"fid_nfe_le_{most}"] = finite[0] if finite else dict(fid=math.nan)
            line[f"cell_nfe_le_{most}"] = f"{finite[0]['solver']} / {finite[0]['step_schedule']}, NFE {finite[0]['nfe']}" if finite else ""
        for column, row in picked.items():
            metric = ranked()[column]
            line.update({column: row.get(metric, math.nan), f"{column}_se": row.get(f"{metric}_se", math.nan), f"{column}_winner": ""})
        table.append(line)
        chosen.append(picked)
    for column, metric in ranked().items():
        order = sorted((i for i, line in enumerate(table) if math.isfinite(line[column])), key=lambda i: table[i][column])
        if len(order) > 1:
            close = within_spread(chosen[order[0]][column], chosen[order[1]][column], paired=False, metric=metric)
            table[order[0]][f"{column}_winner"] = {True: "within spread", False: "clear", None: "best"}[close]
    return table


SCHEDULE_COLUMNS = [
    "configuration",
    "solver",
    "budget",
    "nfe",
    "step_schedule",
    "fit_seconds",
    "ode_error",
    "fixed_by_ode_error",
    "fixed_ode_error",
    "ode_error_ratio",
    "fid",
    "fid_se",
    "fixed_by_fid",
    "fixed_fid",
    "fid_difference",
    "fid_difference_se",
]


def fitted(row):
    """Whether a row's step schedule was fitted to its model and solver (`models.optimized_schedules`)."""
    return STEP_SCHEDULE_ENTRIES[row["step_schedule"].split("[")[0]].fitted


def schedule_comparison(rows):
    """Per model, solver, budget and fitted step schedule: its cell's ODE error and FID against the
    best fixed schedule's of the same solver and budget (the lowest ODE error; the lowest FID), with
    the ratio of the ODE errors and the FID difference with its paired standard error (the standard
    deviation of the bootstrap FIDs' differences: the same noise, the same resamples)."""
    groups = {}
    for row in rows:
        if not row["reference"]:
            groups.setdefault((variant(row), row["solver"], row["budget"]), []).append(row)
    lines = []
    for (model, solver, budget), own in groups.items():
        fixed = [row for row in own if not fitted(row)]
        by_error = min((row for row in fixed if row["ode_error"] is not None), key=lambda row: row["ode_error"], default=None)
        by_score = (by_fid(fixed) or [None])[0]
        for row in (row for row in own if fitted(row)):
            line = dict(configuration=model, solver=solver, budget=budget, **{key: row[key] for key in SCHEDULE_COLUMNS[3:7]})
            line.update(fid=row["fid"], fid_se=row["fid_se"], fixed_by_ode_error=None, fixed_ode_error=None, ode_error_ratio=None)
            line.update(fixed_by_fid=None, fixed_fid=None, fid_difference=None, fid_difference_se=None)
            if by_error is not None and row["ode_error"] is not None:
                line.update(fixed_by_ode_error=by_error["step_schedule"], fixed_ode_error=by_error["ode_error"])
                line["ode_error_ratio"] = row["ode_error"] / by_error["ode_error"]
            if by_score is not None:
                a, b = (torch.tensor(r["fid_bootstrap"], dtype=torch.float64) for r in (row, by_score))
                line.update(fixed_by_fid=by_score["step_schedule"], fixed_fid=by_score["fid"], fid_difference=row["fid"] - by_score["fid"])
                line["fid_difference_se"] = (a - b).std().item() if len(a) == len(b) > 1 else None
            lines.append(line)
    return lines

"""A cell's row is one typed record (`tasks.compute.rows.CellRow`): a field added to it alone, and
computed, reaches fid.csv, the report's CSV and the MLflow cell run, and comes back when the cell is
reused; a score reaches the series run, the saved chart view, the Prefect cells table, best.csv, the
summary and the ablation tables."""

import csv
import typing
from typing import Annotated

import pytest
import torch
from mlflow import MlflowClient

from schema.study import Evaluate
from tasks.compute import rows
from tasks.compute.cells import cells
from tasks.record.mlflow_views import line_chart, series_view_state
from tasks.record.prefect_artifacts import cells_table
from tasks.record.tracking import experiment, log_cell, log_series, logged_cell, run_for, tracking_uri
from tasks.report.analysis import ablation_columns, ablation_table, best_per_budget, summary
from tasks.report.markdown import ablation_markdown
from tasks.report.results import write_results

MEASURED = dict(
    nfe=4,
    sigmas=[80.0, 1.0, 0.0],
    fit_seconds=None,
    fid=10.0,
    fid_se=0.5,
    fid_bootstrap=[9.5, 10.5],
    kid=0.02,
    kid_se=0.01,
    kid_bootstrap=[0.01, 0.03],
    ode_error=0.1,
    error_ratio=None,
    seconds=0.2,
)
OWN = ("configuration", "solver", "step_schedule", "clipping", "series", "order", "budget", "ode_reference", "reference", "label")


def placeholder(name):
    """A value of the type of the row's field `name`."""
    hint = rows.hints()[name]
    hint = hint.__origin__ if typing.get_origin(hint) is typing.Annotated else hint
    return [0.4, 0.6] if typing.get_origin(hint) is list else 4 if hint is int else 0.5


def measured(**given):
    """What sampling and scoring a cell give, for every measured field of the row as it is when called:
    `given`, then `MEASURED`, then a value of the field's type (a field another addition made)."""
    values = {**MEASURED, **given}
    return {name: values[name] if name in values else placeholder(name) for name in rows.fields() if name not in OWN}


class WithHalf(rows.CellRow):
    fid_half: Annotated[float, rows.CSV, rows.CELL_METRIC]


class WithSharpness(rows.CellRow):
    sharpness: Annotated[float, rows.CSV, rows.CELL_METRIC, rows.SERIES_METRIC, rows.CHART, rows.TABLE, rows.Score("sharpness")]
    sharpness_se: Annotated[float, rows.CSV, rows.CELL_METRIC, rows.SERIES_METRIC]
    sharpness_bootstrap: list[float]


SHARPNESS = dict(sharpness=0.25, sharpness_se=0.01, sharpness_bootstrap=[0.24, 0.26])


def test_a_field_added_to_the_row_alone_reaches_fid_csv_and_the_mlflow_cell_run_and_comes_back(tmp_path, monkeypatch):
    base = measured()
    monkeypatch.setattr(rows, "CellRow", WithHalf)
    reference, cell = cells(Evaluate(solvers=["euler"], step_schedules=["karras"], nfe=[4], reference_nfe=7), "tiny")
    with pytest.raises(KeyError, match="fid_half"):
        cell.row(**base)  # a row holds every field of its type: the code that computes it must give it
    row = cell.row(**base, fid_half=5.0)
    ratio = {**base, "nfe": 7, "ode_error": 0.01, "error_ratio": 4.0, "fid_half": 1.0}
    folder = tmp_path / "results" / "tiny"
    samples = {reference.label: torch.zeros(4, 1, 8, 8), cell.label: torch.zeros(4, 1, 8, 8)}
    write_results([reference.row(**ratio), row], 3.0, folder, "training", samples=samples)
    with open(folder / "fid.csv", newline="") as file:
        (line,) = list(csv.DictReader(file))
    assert float(line["fid_half"]) == 5.0 and list(line)[-1] == "fid_half"
    client = MlflowClient(tracking_uri(tmp_path))
    experiment_id = experiment(client, "study", tmp_path / "artifacts")
    run_id = log_cell(client, experiment_id, run_for(client, experiment_id, "study/tiny", "tiny"), "study/tiny/cell", row, {})
    assert client.get_run(run_id).data.metrics["fid_half"] == 5.0
    _, metrics = logged_cell(client, experiment_id, "study/tiny/cell")
    assert cell.row(**{key: row[key] for key in rows.in_cell_file()}, **rows.from_metrics(metrics)) == row  # read back, as a reused cell


def test_a_score_added_to_the_row_alone_reaches_every_file_run_view_and_table(tmp_path, monkeypatch):
    monkeypatch.setattr(rows, "CellRow", WithSharpness)
    reference, cell = cells(Evaluate(solvers=["euler"], step_schedules=["karras"], nfe=[4], reference_nfe=7), "tiny")
    own = [reference.row(**measured(**SHARPNESS)), cell.row(**measured(**{**SHARPNESS, "sharpness": 0.5}))]
    other = [{**row, "configuration": "other"} for row in own]
    assert "sharpness_bootstrap" in rows.in_cell_file()
    client = MlflowClient(tracking_uri(tmp_path))
    experiment_id = experiment(client, "study", tmp_path / "artifacts")
    series = run_for(client, experiment_id, "study/tiny/series", "tiny: euler / karras")
    log_series(client, series, own[1:])
    assert client.get_run(series).data.metrics["sharpness"] == 0.5
    view = series_view_state("tiny")
    charts = [chart["metricKey"] for chart in view["compareRunCharts"] if not chart["deleted"]]
    assert in_order(["fid", "kid", "ode_error", "sharpness"], charts) and charts[-1] == "sharpness"
    assert view["compareRunCharts"][-1] == line_chart("sharpness_se", deleted=True)
    assert rows.charted().startswith("FID, KID, ") and rows.charted().endswith("ODE error and sharpness")
    assert cells_table(own)[1]["sharpness"] == "0.500 ± 0.010"
    best = best_per_budget(own)
    assert best[0]["sharpness"] == 0.5 and best[0]["sharpness_se"] == 0.01
    assert summary(own, 3.0)["configurations"]["tiny"]["reference_sharpness"] == 0.25
    table = ablation_table(own + other, "seed", ["tiny", "other"], {"tiny": "0", "other": "1"})
    assert {"reference_sharpness", "reference_sharpness_se", "reference_sharpness_winner"} <= set(ablation_columns())
    assert table[0]["reference_sharpness"] == 0.25 and "| reference sharpness |" in ablation_markdown([table], 3.0)


def in_order(expected, actual):
    """Whether `expected` appear in `actual` in this order (others may stand between them)."""
    rest = iter(actual)
    return all(name in rest for name in expected)


def test_the_rows_fields_are_what_the_files_and_runs_use():
    csv_columns = ["configuration", "solver", "step_schedule", "clipping", "series", "budget", "nfe", "fid", "fid_se", "kid", "kid_se"]
    assert in_order([*csv_columns, "ode_error", "seconds"], rows.fields(rows.CSV))
    assert in_order(["nfe", "fid", "fid_se", "kid", "kid_se", "seconds"], rows.required(rows.CELL_METRIC))  # ode_error: where measured
    assert "ode_error" not in rows.required(rows.CELL_METRIC) and "error_ratio" not in rows.required(rows.CELL_METRIC)
    assert in_order(["fid", "fid_se", "kid", "kid_se", "ode_error"], rows.fields(rows.SERIES_METRIC))
    assert in_order(["fid", "kid", "ode_error"], rows.fields(rows.CHART)) and rows.scores()[:2] == ["fid", "kid"]
    assert {"fid_bootstrap", "kid_bootstrap", "sigmas"} <= set(rows.in_cell_file())
    read = rows.from_metrics({"nfe": 8.0, "fid": 1.5, "fid_se": 0.1, "kid": 0.02, "kid_se": 0.01, "seconds": 2.0})
    expected = dict(nfe=8, fit_seconds=None, fid=1.5, fid_se=0.1, kid=0.02, kid_se=0.01, ode_error=None, error_ratio=None, seconds=2.0)
    assert {key: read[key] for key in expected} == expected and type(read["nfe"]) is int

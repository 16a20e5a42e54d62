"""The report stage: PNG grids with the documented layout and colours, the FID-versus-NFE figure's
panels and lines, the best cell per budget and the summary on a handmade table, strict JSON and CSV."""

import csv
import json
import math

import matplotlib.image
import pytest
import torch
import yaml

from tasks.compute.provenance import PROJECT
from tasks.files import write_csv, write_json
from tasks.report.analysis import ablation_table, best_per_budget, convergence_checks, measured_orders, summary
from tasks.report.figures import fid_vs_nfe_figure, save_figure
from tasks.report.markdown import ablation_markdown, orders_markdown
from tasks.report.outputs import OUTPUTS, sections
from tasks.report.sample_images import save_samples_png, tiled_samples
from tasks.report.study_figures import ablations_figure


def row(
    configuration, solver, step_schedule, budget, nfe, fid, reference=False, clipping="none", ode_error=None, bootstrap=(), error_ratio=None
):
    """A row as `tasks.compute.cells.Cell.row` makes it, its KID a thousandth of its FID; the ODE reference of every cell is "reference"."""
    label = f"{solver}/{step_schedule}/{budget}" + (f"/{clipping}" if clipping != "none" else "")
    return dict(
        configuration=configuration,
        solver=solver,
        step_schedule=step_schedule,
        clipping=clipping,
        series=" / ".join([solver, step_schedule] + [clipping] * (clipping != "none")),
        order=2 if solver == "heun" else 1,
        budget=budget,
        nfe=nfe,
        fid=fid,
        fid_se=float(torch.tensor(bootstrap, dtype=torch.float64).std()) if len(bootstrap) > 1 else 0.5,
        fid_bootstrap=list(bootstrap),
        kid=fid / 1000,
        kid_se=(float(torch.tensor(bootstrap, dtype=torch.float64).std()) if len(bootstrap) > 1 else 0.5) / 1000,
        kid_bootstrap=[value / 1000 for value in bootstrap],
        ode_error=ode_error,
        ode_reference="reference" if not reference else label,
        error_ratio=error_ratio,
        seconds=0.1,
        reference=reference,
        label="reference" if reference else label,
    )


ROWS = [
    row("edm", "euler", "karras", 4, 4, 40.0),
    row("edm", "heun", "karras", 4, 3, 30.0),
    row("edm", "euler", "karras", 8, 8, 20.0),
    row("edm", "heun", "karras", 8, 7, math.nan),
    row("edm", "euler", "karras", 16, 16, 9.0),
    row("edm", "heun", "karras", 16, 15, 5.0),
    row("edm", "euler", "uniform", 4, 4, math.inf),
    row("edm", "euler", "uniform", 8, 8, 15.0),
    row("edm", "euler", "uniform", 16, 16, 4.0),
    row("edm", "heun", "karras", 255, 255, 2.0, reference=True),
    row("ddpm", "euler", "karras", 4, 4, math.nan),
    row("ddpm", "euler", "karras", 8, 8, 12.0),
    row("ddpm", "heun", "karras", 4, 3, math.inf),
    row("ddpm", "heun", "karras", 8, 7, 11.0),
    row("ddpm", "heun", "karras", 255, 255, 3.0, reference=True),
]


def test_gray_grid_layout_and_colours():
    images = torch.full((16, 1, 8, 8), -1.0)
    images[5] = 1.0  # row 1, column 1
    images[15] = 7.0  # clipped to white
    pixels = tiled_samples(images, columns=4)
    assert pixels.shape == (35, 35, 3)
    assert (pixels[0:8, 0:8] == 0).all()  # -1 is black
    assert (pixels[9:17, 9:17] == 255).all()  # 1 is white
    assert (pixels[27:35, 27:35] == 255).all()
    assert (pixels[8, :] == 255).all() and (pixels[:, 8] == 255).all()  # the white separation


def test_a_grid_png_is_the_grid_upscaled_nearest_neighbour_under_its_caption(tmp_path):
    images = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    path = tmp_path / "nested" / "grid.png"
    save_samples_png(images, path, columns=4, caption="edm: heun / karras, NFE 7\nFID 5.00 ± 0.20")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert [p.name for p in path.parent.iterdir()] == ["grid.png"]
    pixels = (matplotlib.image.imread(path)[..., :3] * 255).round()
    upscaled = tiled_samples(images, columns=4).repeat(15, axis=0).repeat(15, axis=1)  # 35 px x 15 >= 512
    top = pixels.shape[0] - upscaled.shape[0]
    assert pixels.shape[1] == upscaled.shape[1] == 525 and top > 0
    assert (pixels[top:] == upscaled).all()  # every pixel a 15 x 15 block
    assert (pixels[:top] < 128).any()  # the caption's text above the grid
    save_samples_png(images, path, columns=4)
    assert matplotlib.image.imread(path).shape[:2] == (525, 525)


def test_rgb_grid_keeps_channels_and_fills_empty_slots():
    images = torch.full((5, 3, 4, 6), -1.0)
    images[:, 0] = 1.0  # pure red
    images[0, 1] = math.nan  # drawn mid-gray
    grid = tiled_samples(images)  # ceil(sqrt(5)) = 3 columns, 2 rows
    assert grid.dtype.name == "uint8" and grid.shape == (2 * 5 - 1, 3 * 7 - 1, 3)
    assert (grid[0:4, 7:13] == [255, 0, 0]).all()
    assert (grid[0:4, 0:6, 1] == 128).all()
    assert (grid[5:9, 14:20] == 255).all()  # the sixth slot is empty


def test_grid_refuses_other_channel_counts():
    with pytest.raises(ValueError, match="shape"):
        tiled_samples(torch.zeros(2, 2, 4, 4))


def test_figure_has_a_panel_per_configuration_and_a_line_per_cell(tmp_path):
    figure = fid_vs_nfe_figure(ROWS, floor=1.25)
    panels = figure.get_axes()
    assert [axes.get_title() for axes in panels] == ["edm", "ddpm"]
    for axes in panels:
        assert axes.get_xscale() == "log" and axes.xaxis.get_transform().base == 2
        assert axes.get_legend() is not None
    labels = [line.get_label() for line in panels[0].get_lines()]
    assert labels == ["euler / karras", "heun / karras", "euler / uniform", "reference (heun, NFE 255): FID 2", "data floor: FID 1.25"]
    assert [tick.get_text() for tick in panels[0].get_xticklabels()] == ["4", "8", "16"]
    assert panels[0].get_xlim()[0] < 3 and panels[0].get_xlim()[1] > 16  # no marker on the frame
    assert list(panels[0].get_lines()[1].get_xdata()) == [3, 15]  # the NaN at NFE 7 is left out
    assert panels[0].get_yscale() == "log"  # 1 .. 40 spans more than 10x
    assert panels[1].get_yscale() == "linear"  # 1.25 .. 12 does not
    path = tmp_path / "figures" / "fid_vs_nfe.png"
    save_figure(figure, path)
    assert path.read_bytes().startswith(b"\x89PNG")


def test_the_floor_is_drawn_in_every_panel():
    figure = fid_vs_nfe_figure(ROWS, floor=1.25)
    assert all(axes.get_lines()[-1].get_label() == "data floor: FID 1.25" for axes in figure.get_axes())


def test_best_per_budget_picks_the_lowest_finite_fid():
    best = best_per_budget(ROWS)
    assert [(b["configuration"], b["budget"]) for b in best] == [("ddpm", 4), ("ddpm", 8), ("edm", 4), ("edm", 8), ("edm", 16)]
    expected = dict(
        configuration="ddpm",
        budget=8,
        solver="heun",
        step_schedule="karras",
        nfe=7,
        fid=11.0,
        fid_se=0.5,
        kid=0.011,
        kid_se=0.0005,
        runner_up="euler / karras, NFE 8: FID 12.000",
        within_spread=None,  # no bootstrap FIDs to tell
    )
    assert {key: best[1][key] for key in expected} == expected  # and whatever scores a row adds
    assert best[2]["solver"] == "heun" and best[2]["fid"] == 30.0
    assert best[3]["step_schedule"] == "uniform" and best[3]["fid"] == 15.0  # the NaN is not the lowest
    assert best[0]["solver"] is None and best[0]["step_schedule"] is None and math.isnan(best[0]["fid"])


def test_summary_of_a_handmade_table():
    result = summary(ROWS, 0.5)
    assert list(result["configurations"]) == ["edm", "ddpm"] and result["data_floor_fid"] == 0.5
    edm = result["configurations"]["edm"]
    assert (edm["reference_fid"], edm["reference_nfe"]) == (2.0, 255)
    pick = lambda best: {key: best[key] for key in ("solver", "step_schedule", "nfe", "fid")}
    assert pick(edm["best_nfe_le_10"]) == dict(solver="euler", step_schedule="uniform", nfe=8, fid=15.0)
    assert pick(edm["best_nfe_le_20"]) == dict(solver="euler", step_schedule="uniform", nfe=16, fid=4.0)
    assert result["configurations"]["ddpm"]["best_nfe_le_10"]["fid"] == 11.0


def test_json_with_non_finite_values_is_strict(tmp_path):
    path = tmp_path / "out" / "summary.json"
    write_json(summary(ROWS, math.inf), path)
    parsed = json.loads(path.read_text(), parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    assert parsed["data_floor_fid"] is None
    assert parsed["configurations"]["edm"]["best_nfe_le_20"]["fid"] == 4.0
    write_json([best_per_budget(ROWS)[0]], path)
    assert json.loads(path.read_text())[0]["fid"] is None


def test_csv_reads_back(tmp_path):
    path = tmp_path / "out" / "rows.csv"
    columns = ["configuration", "solver", "nfe", "fid"]
    write_csv(ROWS, path, columns)
    with open(path, newline="") as file:
        read = list(csv.DictReader(file))
    assert list(read[0]) == columns and len(read) == len(ROWS)
    assert read[1] == dict(configuration="edm", solver="heun", nfe="3", fid="30.0")
    assert math.isnan(float(read[3]["fid"]))


def test_a_failed_configuration_gets_a_panel_and_a_summary_entry_saying_why():
    failures = {"unstable": "configuration 'unstable' diverged at step 3: loss is nan"}
    figure = fid_vs_nfe_figure(ROWS, floor=0.5, failures=failures)
    panels = {axes.get_title(): axes for axes in figure.axes}
    assert set(panels) == {"edm", "ddpm", "unstable"}
    assert not panels["unstable"].get_lines() and "diverged at step 3" in panels["unstable"].texts[0].get_text().replace("\n", " ")
    result = summary(ROWS, 0.5, failures)["configurations"]
    assert result["unstable"] == {"failed": failures["unstable"]} and result["edm"]["reference_fid"] == 2.0
    only_failed = fid_vs_nfe_figure([], failures=failures)
    assert [axes.get_title() for axes in only_failed.axes] == ["unstable"]


ABLATION = [
    row("edm", "heun", "karras", 8, 7, 20.0),
    row("edm", "unipc", "karras", 8, 8, 12.0),
    row("edm", "unipc", "karras", 16, 16, 10.0),
    row("edm", "euler", "karras", 8, 8, 1.0),  # a cell the other rows lack: no row may win with it
    row("edm", "heun", "karras", 63, 63, 9.0, reference=True),
    row("eps", "heun", "karras", 8, 7, 30.0),
    row("eps", "unipc", "karras", 8, 8, 40.0),
    row("eps", "unipc", "karras", 16, 16, 25.0),
    row("eps", "heun", "karras", 63, 63, 50.0, reference=True),
    row("eps", "heun", "karras", 8, 7, 15.0, clipping="clip"),
    row("eps", "unipc", "karras", 8, 8, 11.0, clipping="clip"),
    row("eps", "unipc", "karras", 16, 16, 8.0, clipping="clip"),
    row("eps", "heun", "karras", 63, 63, 8.5, reference=True, clipping="clip"),
]


def test_an_ablation_table_has_a_row_per_model_and_picks_among_the_cells_every_row_has():
    table = ablation_table(ABLATION, "parameterization", ["edm", "eps"], {"edm": "edm", "eps": "eps"})
    assert [(line["configuration"], line["entry"], line["reference_fid"]) for line in table] == [
        ("edm", "edm", 9.0),
        ("eps", "eps", 50.0),
        ("eps + clip", "eps", 8.5),
    ]
    assert [(line["fid_nfe_le_10"], line["cell_nfe_le_10"]) for line in table] == [
        (12.0, "unipc / karras, NFE 8"),  # not euler's 1.0: eps has no euler cell
        (30.0, "heun / karras, NFE 7"),
        (11.0, "unipc / karras, NFE 8"),
    ]
    assert [line["fid_nfe_le_20"] for line in table] == [10.0, 25.0, 8.0]
    text = ablation_markdown([table], floor=3.5)
    assert "## parameterization (varied from `edm`)" in text and "| edm (parent) | edm | 9.00 ± 0.50 |" in text
    assert "| eps + clip | eps | **8.50 ± 0.50** | **0.00850 ± 0.00050** |" in text  # the reference's FID and KID
    assert "| **11.00 ± 0.50** (unipc / karras, NFE 8) | **8.00 ± 0.50** (unipc / karras, NFE 16) |" in text


def bootstraps(center, shared, own, seed):
    """100 bootstrap FIDs around `center`: `shared` times a draw common to every cell (the same
    resamples of the same noises move paired cells together) plus `own` times a draw of their own."""
    common = torch.randn(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mine = torch.randn(100, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return (center + shared * common + own * mine).tolist()


def test_a_winner_within_the_spread_of_the_runner_up_is_marked_so():
    """Cells of one model: the spread is that of the paired differences, so cells whose FIDs move
    together (standard error ~3 each) are told apart by a gap of 1, and cells of independent noise
    are not by a gap of 2. Models (an ablation's rows, trained apart) are compared unpaired: a gap
    of 1 between models whose bootstraps move together is within their spread."""
    paired = [
        row("edm", "heun", "karras", 8, 7, 10.0, bootstrap=bootstraps(10.0, 3.0, 0.1, 1)),
        row("edm", "unipc", "karras", 8, 8, 11.0, bootstrap=bootstraps(11.0, 3.0, 0.1, 2)),
    ]
    best = best_per_budget(paired)[0]
    assert (best["solver"], best["within_spread"]) == ("heun", False) and best["fid_se"] > 2.5
    independent = [
        row("edm", "heun", "karras", 8, 7, 10.0, bootstrap=bootstraps(10.0, 0.0, 3.0, 1)),
        row("edm", "unipc", "karras", 8, 8, 12.0, bootstrap=bootstraps(12.0, 0.0, 3.0, 2)),
    ]
    assert best_per_budget(independent)[0]["within_spread"] is True
    models = [independent[0], row("eps", "heun", "karras", 8, 7, 12.0, bootstrap=bootstraps(12.0, 0.0, 3.0, 2))]
    models += [row(name, "heun", "karras", 63, 63, 9.0, reference=True) for name in ("edm", "eps")]
    table = ablation_table(models, "parameterization", ["edm", "eps"], {"edm": "edm", "eps": "eps"})
    assert [line["fid_nfe_le_10_winner"] for line in table] == ["within spread", ""]
    text = ablation_markdown([table], floor=1.0)
    assert f"| **10.00 ± {table[0]['fid_nfe_le_10_se']:.2f}** ≈ (heun / karras, NFE 7) |" in text
    together = [paired[0], row("eps", "heun", "karras", 8, 7, 11.0, bootstrap=bootstraps(11.0, 3.0, 0.1, 2))]
    together += [row(name, "heun", "karras", 63, 63, 9.0, reference=True) for name in ("edm", "eps")]
    table = ablation_table(together, "parameterization", ["edm", "eps"], {"edm": "edm", "eps": "eps"})
    assert table[0]["fid_nfe_le_10_winner"] == "within spread"


def test_the_figure_puts_each_ablation_on_a_row_and_a_clipped_model_in_a_panel_of_its_own():
    figure = fid_vs_nfe_figure(ABLATION + ROWS, layout=[("parameterization from edm", ["edm", "eps"]), ("", ["ddpm"])])
    titles = [axes.get_title() for axes in figure.get_axes() if axes.axison]
    assert titles == ["parameterization from edm: edm", "parameterization from edm: eps", "parameterization from edm: eps + clip", "ddpm"]
    assert len(figure.get_axes()) == 2 * 3  # a row per ablation, as wide as the widest


def test_the_measured_order_is_the_slope_over_the_asymptotic_range():
    """ode_error = 0.5 NFE^-2 from NFE 8 on, after a pre-asymptotic start at NFE 4: order 2 measured
    over 8-32; euler's exact NFE^-1 over every budget; a stochastic series has no order."""
    errors = {4: 0.5, 8: 0.5 / 64, 16: 0.5 / 256, 32: 0.5 / 1024}
    rows = [row("edm", "heun", "karras", nfe, nfe, 10.0, ode_error=error) for nfe, error in errors.items()]
    rows += [row("edm", "euler", "karras", nfe, nfe, 10.0, ode_error=1 / nfe) for nfe in errors]
    rows += [row("edm", "ddpm", "karras", nfe, nfe, 10.0) for nfe in errors]
    heun, euler = measured_orders(rows)
    assert (heun["series"], heun["order"], heun["over_nfe"]) == ("heun / karras", 2, "8-32")
    assert heun["measured_order"] == pytest.approx(2.0) and heun["slopes"] == "4-8: 6.00 8-16: 2.00 16-32: 2.00"
    assert (euler["measured_order"], euler["over_nfe"]) == (pytest.approx(1.0), "4-32")
    assert "| edm | heun / karras | 2 | 2.00 | 8-32 |" in orders_markdown([heun, euler])
    merged = [row("ddpm", "euler", "karras", budget, min(budget, 16), 10.0, ode_error=1 / min(budget, 16)) for budget in errors]
    (snapped,) = measured_orders(merged)  # budgets 16 and 32 snapped to the same 16 steps: one point
    assert (snapped["slopes"], snapped["measured_order"]) == ("4-8: 1.00 8-16: 1.00", pytest.approx(1.0))


def test_a_measured_order_needs_three_budgets_that_agree():
    """Two budgets make one slope, not an order: n/a; so do three whose last slope disagrees with the one before."""
    two = [row("edm", "heun", "karras", nfe, nfe, 10.0, ode_error=1 / nfe**2) for nfe in (8, 16)]
    (line,) = measured_orders(two)
    assert math.isnan(line["measured_order"]) and line["over_nfe"] == "" and line["slopes"] == "8-16: 2.00"
    assert "| edm | heun / karras | 2 | n/a |  | 8-16: 2.00 |" in orders_markdown([line])
    bent = [row("edm", "heun", "karras", nfe, nfe, 10.0, ode_error=error) for nfe, error in ((4, 1.0), (8, 1 / 4), (16, 1 / 256))]
    assert math.isnan(measured_orders(bent)[0]["measured_order"])  # slopes 2 then 6
    three = [row("edm", "heun", "karras", nfe, nfe, 10.0, ode_error=1 / nfe**2) for nfe in (8, 16, 32)]
    assert measured_orders(three)[0]["measured_order"] == pytest.approx(2.0)


def test_the_reference_converged_when_its_ratio_is_near_2_to_its_order_and_its_solution_error_a_tenth_of_the_smallest():
    """Heun (order 2) at N differs by d from Heun at 2N, and that by d / r from Heun at 4N: the measured
    ratio r (near 4) puts the solution's own error at d / (r - 1)."""
    reference = {**row("edm", "heun", "karras", 255, 255, 2.0, reference=True, ode_error=0.003, error_ratio=4.0), "label": "reference"}
    cells = [row("edm", "heun", "karras", nfe, nfe, 10.0, ode_error=error) for nfe, error in ((8, 0.1), (16, 0.01))]
    (check,) = convergence_checks([reference, *cells])
    assert check == dict(
        reference="reference",
        reference_error=0.003,
        error_ratio=4.0,
        measured_order=2.0,
        expected_order=2,
        ratio_as_expected=True,
        solution_error=0.001,
        smallest_ode_error=0.01,
        converged=True,
    )
    (check,) = convergence_checks([{**reference, "ode_error": 0.0031}, *cells])
    assert check["converged"] is False and check["ratio_as_expected"] is True
    (check,) = convergence_checks([{**reference, "error_ratio": 2.5}, *cells])  # order 1.32, not 2: the solution's error is not Heun's
    assert check["ratio_as_expected"] is False and check["converged"] is False and check["solution_error"] == pytest.approx(0.002)
    (check,) = convergence_checks([{**reference, "error_ratio": 0.9}, *cells])  # a finer solution that moves more: no convergence
    assert check["solution_error"] == math.inf and check["converged"] is False
    assert "| edm | reference | 3.00e-03 | 0.90 | -0.15 | inf | 1.00e-02 | **NO** |" in orders_markdown([], {"edm": [check]})
    (check,) = convergence_checks([reference, row("edm", "ddpm", "karras", 8, 8, 10.0)])  # stochastic only: nothing to check
    assert check["converged"] is None and check["smallest_ode_error"] is None


def test_the_ablation_figure_puts_each_axis_entries_side_by_side_against_the_seed_spread():
    """A panel per ablation, its entries (the parent in bold, a clipped model labelled with its
    clipping) on one axis, reference and best FID at NFE <= 10 on the other; the seed replicates'
    range as a band in every panel."""
    replicates = (("edm", 0.0), ("edm-seed1", 3.0))
    seeds = [{**r, "configuration": name, "fid": r["fid"] + shift} for name, shift in replicates for r in ABLATION[:5]]
    tables = [
        ablation_table(ABLATION, "parameterization", ["edm", "eps"], {"edm": "edm", "eps": "eps"}),
        ablation_table(seeds, "seed", ["edm", "edm-seed1"], {"edm": "0", "edm-seed1": "1"}),
    ]
    figure = ablations_figure(tables, floor=2.0)
    first, second = figure.get_axes()[:2]
    assert first.get_title() == "parameterization (from edm)" and second.get_title() == "seed (from edm)"
    labels = first.get_yticklabels()
    assert [label.get_text() for label in labels] == ["edm (parent)", "eps", "eps + clip"]
    assert [label.get_fontweight() for label in labels] == ["bold", "normal", "normal"]
    bands = [patch for patch in first.patches if patch.get_label().startswith("seed replicates")]
    assert len(bands) == 2 and first.get_xscale() == "log"
    (reference_band,) = [band for band in bands if "reference" in band.get_label()]
    assert reference_band.get_x() == pytest.approx(9.0) and reference_band.get_width() == pytest.approx(3.0)  # 9 .. 12


def report_outs(dvc):
    """{file under reports/: "out", "plot" or "metrics"} of dvc.yaml's report stage."""
    stage = dvc["stages"]["report"]
    kind = lambda out: "out" if isinstance(out, str) else "plot" if not next(iter(out.values())).get("cache", True) else "out"
    outs = {(out if isinstance(out, str) else next(iter(out))): kind(out) for out in stage["outs"]}
    outs |= {next(iter(metric)) if isinstance(metric, dict) else metric: "metrics" for metric in stage.get("metrics", [])}
    return {path.removeprefix("reports/"): how for path, how in outs.items()}


def test_dvc_keeps_exactly_the_reports_outputs_as_declared():
    assert report_outs(yaml.safe_load((PROJECT / "dvc.yaml").read_text())) == {output.file: output.dvc for output in OUTPUTS}


def test_a_declared_output_missing_from_dvc_yaml_is_seen():
    dvc = yaml.safe_load((PROJECT / "dvc.yaml").read_text())
    dvc["stages"]["report"]["outs"].remove("reports/ablations.png")
    assert report_outs(dvc) != {output.file: output.dvc for output in OUTPUTS}


def test_the_page_shows_every_output_with_a_section_in_the_declared_order():
    shown = [file for _, files in sections() for file in files]
    assert shown == [output.file for output in OUTPUTS if output.section]
    assert [title for title, _ in sections()] == list(dict.fromkeys(output.section for output in OUTPUTS if output.section))

"""Never stale, part one: every DVC stage depends on exactly the source files its command imports
(followed through models/, tasks/ and flows/), and the identities that decide whether a checkpoint
is resumed or a logged cell reused change with the code they run."""

import copy
import dataclasses

import pytest
import torch
import yaml

from models import axes
from models.solvers import SOLVERS
from models.solvers.contract import Solver
from models.solvers.runge_kutta import euler
from schema.study import Study
from tasks.compute.cells import cell_identity, cells
from tasks.compute.provenance import (
    CHECK_ONLY,
    PACKAGES,
    PROJECT,
    cell_code,
    cell_files,
    digest,
    imported_modules,
    source_files,
    tensors_digest,
)
from tools.dvc_deps import rewritten

DVC_TEXT = (PROJECT / "dvc.yaml").read_text()
DVC = yaml.safe_load(DVC_TEXT)


def stage_definitions(dvc):
    """{stage name: its definition} of a parsed dvc.yaml, `foreach` stages by their `do` block."""
    return {name: stage.get("do", stage) for name, stage in dvc["stages"].items()}


def python_files(path):
    """The project's Python files at a dep path: the file itself, or every file in the folder."""
    target = PROJECT / path
    found = [target] if target.is_file() else sorted(target.rglob("*.py"))
    return {p.relative_to(PROJECT).as_posix() for p in found if "__pycache__" not in p.parts}


def dependency_problems(dvc):
    """What is wrong with the source deps of each stage: a file its command imports that no dep
    covers, or a dep on source files it does not import."""
    problems = []
    for name, stage in stage_definitions(dvc).items():
        module = stage["cmd"].split()[2]  # python -m <module> ...
        imported = source_files(module)
        sources = [dep for dep in stage["deps"] if dep.split("/")[0] in PACKAGES]
        covered = set().union(*(python_files(dep) for dep in sources))
        problems += [f"{name}: imports {path}, which is not among its deps" for path in sorted(imported - covered)]
        problems += [f"{name}: depends on {path}, which it does not import" for path in sorted(covered - imported)]
    return problems


def test_every_stage_depends_on_exactly_the_files_it_imports():
    assert dependency_problems(DVC) == [], "python -m tools.dvc_deps writes them"


def test_the_deps_tool_writes_what_the_test_asks():
    broken = DVC_TEXT.replace("      - models/networks.py\n", "", 1).replace("      - tasks/report\n", "      - tasks/report/page.py\n")
    assert dependency_problems(yaml.safe_load(broken)) != []
    assert rewritten(broken) == DVC_TEXT


@pytest.mark.parametrize("stage, dep", [("train", "models/networks.py"), ("evaluate", "models/solvers"), ("report", "tasks/report")])
def test_a_dep_taken_out_of_dvc_yaml_is_named(stage, dep):
    broken = copy.deepcopy(DVC)
    stage_definitions(broken)[stage]["deps"].remove(dep)
    problems = dependency_problems(broken)
    assert problems and all(problem.startswith(f"{stage}: imports ") for problem in problems)
    assert any(dep in problem for problem in problems), problems


def test_a_dep_on_code_a_stage_does_not_run_is_named():
    broken = copy.deepcopy(DVC)
    stage_definitions(broken)["prepare"]["deps"].append("models/solvers")
    assert "prepare: depends on models/solvers/runge_kutta.py, which it does not import" in dependency_problems(broken)


def test_training_imports_no_sampling_code():
    """The params schema that every stage imports checks solvers and step schedules against their
    declarations (models/axes.py), not their code: editing a solver re-runs no training."""
    for module in ("flows.prepare", "flows.features", "flows.train"):
        files = source_files(module)
        assert not [f for f in files if f.startswith("models/solvers/") or f == "models/step_schedules.py"], module
    assert "models/axes.py" in source_files("flows.train")


def test_imports_are_followed_everywhere_but_the_params_checks_model_imports():
    assert "models/axes.py" in source_files("models.solvers.contract")  # `from .. import axes`
    assert {"models/solvers/__init__.py", "models/__init__.py"} <= source_files("models.solvers.runge_kutta")  # parent packages run first
    assert "models/fid.py" in source_files("tasks.compute.feature_space")
    assert CHECK_ONLY["schema/study.py"].isdisjoint(source_files("schema.study"))
    assert CHECK_ONLY["schema/configurations.py"].isdisjoint(source_files("schema.configurations"))
    assert "models/noise_schedules.py" in source_files("flows.train")  # where it computes with them, it depends on them


def test_every_kind_of_import_statement_is_read():
    source = """
import models.fid, torch
from .contract import steps
from .. import axes


def late():
    from tasks.report.sample_images import save_samples_png
"""
    modules = imported_modules(source, "models.solvers")
    assert {"models.fid", "models.solvers.contract", "models.axes", "tasks.report.sample_images"} <= set(modules)
    assert "models.solvers.contract.steps" in modules and "models.solvers" not in modules


def test_a_cell_depends_on_its_own_solver_code_only():
    euler_files, ipndm_files = cell_files(SOLVERS["euler"]), cell_files(SOLVERS["ipndm"])
    assert {"models/solvers/runge_kutta.py", "models/solvers/contract.py", "models/networks.py", "models/fid.py"} <= euler_files
    assert "models/solvers/multistep.py" not in euler_files and "models/solvers/__init__.py" not in euler_files
    assert ipndm_files - euler_files == {"models/solvers/multistep.py"}
    alias = Solver("ipndm", euler)  # ipndm made an alias of euler
    assert cell_code(alias) != cell_code(SOLVERS["ipndm"])
    assert cell_code(SOLVERS["heun"]) != cell_code(SOLVERS["euler"])  # same module, other entries
    assert cell_code(SOLVERS["heun"]) == cell_code(Solver("heun", SOLVERS["heun"].algorithm))
    assert cell_code(Solver("heun", SOLVERS["heun"].algorithm, defaults={"s_churn": 1.0})) != cell_code(SOLVERS["heun"])


def test_a_cell_counts_its_declarations_and_out_of_project_code(monkeypatch):
    """models/axes.py counts by the solver's own declaration (its calls per step decide its grid);
    an algorithm outside the project counts by its source."""
    assert "models/axes.py" not in cell_files(SOLVERS["heun"])
    before = {name: cell_code(SOLVERS[name]) for name in ("heun", "euler")}
    monkeypatch.setitem(axes.SOLVER_ENTRIES, "heun", dataclasses.replace(axes.SOLVER_ENTRIES["heun"], calls_per_step=3))
    assert cell_code(SOLVERS["heun"]) != before["heun"] and cell_code(SOLVERS["euler"]) == before["euler"]

    def outside(denoise, x, sigmas, *, generator=None):
        return x

    def edited(denoise, x, sigmas, *, generator=None):
        return x + 0

    edited.__qualname__ = outside.__qualname__
    monkeypatch.setitem(axes.SOLVER_ENTRIES, "mine", axes.SolverEntry(order=1, stochastic=False))
    assert cell_code(Solver("mine", outside)) != cell_code(Solver("mine", edited))


def test_digests_follow_content_not_identity():
    weights = {"a": torch.arange(6.0).reshape(2, 3), "b": [torch.zeros(2, dtype=torch.int64), 3]}
    assert tensors_digest(weights) == tensors_digest(copy.deepcopy(weights))
    changed = copy.deepcopy(weights)
    changed["a"][1, 2] += 1e-6
    assert tensors_digest(changed) != tensors_digest(weights)
    assert tensors_digest({"a": weights["a"].reshape(3, 2), "b": weights["b"]}) != tensors_digest(weights)  # shape counts
    assert digest({"x": 1, "y": [2]}) == digest({"y": [2], "x": 1}) != digest({"x": 1, "y": [3]})


def test_source_files_of_a_module_outside_the_project_is_empty():
    assert source_files("torch.nn") == set()


def test_a_cell_names_the_code_that_computes_it_and_nothing_that_shows_it():
    files = cell_files(SOLVERS["heun"])
    assert {
        "tasks/compute/cells.py",
        "tasks/compute/sample.py",
        "tasks/compute/train.py",
        "tasks/compute/feature_space.py",
        "models/fid.py",
    } <= files
    shows = {
        "tasks/report/figures.py",
        "tasks/report/sample_images.py",
        "tasks/report/markdown.py",
        "tasks/report/analysis.py",
        "tasks/report/results.py",
        "tasks/record/tracking.py",
    }
    assert not files & (shows | {"tasks/record/cell_runs.py", "tasks/record/mlflow_views.py", "tasks/workspace.py"})
    assert not [f for f in files if f.startswith("flows/")]


def test_a_deterministic_cell_names_its_reference_and_a_stochastic_cell_none(monkeypatch):
    """Heun's declaration (its code, as `cell_code` counts it) changed: the reference, Heun's cell and
    every other deterministic cell get a new identity, the stochastic one keeps its own; so does a
    grid's reference_nfe."""
    study = Study.model_validate(
        {
            "train": {"configurations": {"tiny": {}}},
            "evaluate": {"solvers": ["euler", "euler_ancestral", "heun"], "step_schedules": ["karras"], "nfe": [8], "reference_nfe": 63},
        }
    )
    grid = cells(study.evaluate, "tiny")
    identities = lambda study, grid: {cell.label: cell_identity(study, cell, "weights", "features") for cell in grid}
    before = identities(study, grid)
    monkeypatch.setitem(axes.SOLVER_ENTRIES, "heun", dataclasses.replace(axes.SOLVER_ENTRIES["heun"], paper="edited"))
    after = identities(study, grid)
    assert {label for label in before if before[label] != after[label]} == {"heun/karras/63", "euler/karras/8", "heun/karras/8"}
    monkeypatch.undo()
    finer = study.model_copy(update={"evaluate": study.evaluate.model_copy(update={"reference_nfe": 127})})
    moved = identities(finer, cells(finer.evaluate, "tiny"))
    assert moved["euler_ancestral/karras/8"] == before["euler_ancestral/karras/8"] and moved["euler/karras/8"] != before["euler/karras/8"]

"""The layers you see in the tree hold: a module imports only from its own layer or those below it
(`LAYERS`, lowest first), every import statement counts (at module level or inside a function), and
no module imports itself back through others."""

import pytest

from tasks.compute.provenance import PACKAGES, PROJECT, imported_by

LAYERS = [  # lowest first; a folder's files are its layer, but for a deeper folder listed apart
    ("models", "pure PyTorch: the design space"),
    ("schema", "params.yaml's schema: the study declared and checked"),
    ("tasks", "what every room of tasks/ uses: atomic files, the study's paths, the device"),
    ("tasks/compute", "what computes a result: data, features, training, cells, rows, identities"),
    ("tasks/report", "what shows a result: numbers, figures, tables, the page, the result files"),
    ("tasks/record", "what records a result where users look: MLflow runs and views, Prefect artifacts"),
    ("flows/runtime", "how the flows run: command line, task runners, servers, dvc repro"),
    ("flows", "the stage flows"),
]


def layer(path):
    """The index in `LAYERS` of the deepest layer folder that holds the file `path`."""
    folders = [i for i, (folder, _) in enumerate(LAYERS) if path.startswith(folder + "/")]
    return max(folders, key=lambda i: len(LAYERS[i][0]))


def project_files():
    return sorted(
        p.relative_to(PROJECT).as_posix() for package in PACKAGES for p in (PROJECT / package).rglob("*.py") if "__pycache__" not in p.parts
    )


def runs_first(f, g):
    """Whether `g` is a package above `f`, which Python runs before `f` whoever imports it."""
    return g.endswith("__init__.py") and f.startswith(g.removesuffix("__init__.py"))


def against_the_rule(imports):
    """Each "f imports g" of `imports` (file -> the files it imports) where g's layer is above f's."""
    return [
        f"{f} ({LAYERS[layer(f)][0]}) imports {g} ({LAYERS[layer(g)][0]}), a layer above it"
        for f, imported in imports.items()
        for g in sorted(imported)
        if layer(g) > layer(f) and not runs_first(f, g)
    ]


def test_every_package_file_sits_in_a_layer():
    assert [f for f in project_files() if not any(f.startswith(folder + "/") for folder, _ in LAYERS)] == []


def test_no_module_imports_a_layer_above_its_own():
    assert against_the_rule({f: imported_by(f) for f in project_files()}) == []


@pytest.mark.parametrize(
    "f, g",
    [
        ("tasks/compute/cells.py", "tasks/report/figures.py"),  # what computes imports what shows
        ("tasks/report/results.py", "tasks/record/tracking.py"),  # what shows imports what records
        ("models/solvers/contract.py", "tasks/files.py"),  # models/ imports the rest
        ("schema/study.py", "tasks/compute/cells.py"),  # the schema imports what reads it
        ("tasks/files.py", "tasks/compute/provenance.py"),  # a shared helper imports a room
    ],
)
def test_an_import_against_the_rule_is_named(f, g):
    imports = {f: imported_by(f) | {g}}
    assert against_the_rule(imports) == [f"{f} ({LAYERS[layer(f)][0]}) imports {g} ({LAYERS[layer(g)][0]}), a layer above it"]


def test_imports_form_no_cycle():
    graph = {f: {g for g in imported_by(f) if not runs_first(f, g)} for f in project_files()}
    done, active = set(), []

    def visit(f):
        if f in active:
            return active[active.index(f) :] + [f]
        if f in done:
            return None
        active.append(f)
        cycle = next((found for g in sorted(graph[f]) if (found := visit(g))), None)
        active.pop()
        done.add(f)
        return cycle

    assert next((cycle for f in graph if (cycle := visit(f))), None) is None

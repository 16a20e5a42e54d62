"""Where a result comes from, so that it is reused only when it would come out the same.

The source files a stage runs are found by following its imports statically through the project's
packages (models/, schema/, tasks/, flows/; every import statement, at module level or inside a function):
dvc.yaml lists them as the stage's deps (tests/test_provenance.py holds it to that), and the digests
below identify a training and a cell by their settings, their inputs' contents and their code.
"""

import ast
import hashlib
import inspect
import json
from functools import cache
from pathlib import Path

import torch

PROJECT = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "schema", "tasks", "flows")
COMPUTING = ("models", "tasks")  # flows/ only orchestrate: what they decide reaches a computation as settings
SOLVER_TABLE = "models/solvers/__init__.py"
DECLARATIONS = "models/axes.py"

# The one exception. The params check that every stage runs first builds each configuration's noise
# schedule and each step schedule's grid on it, to refuse a sigma range outside a model's before any
# work. It can stop a stage but cannot change what a stage computes, so these imports of the check do
# not make a stage depend on the two modules; a stage that computes with them imports them itself.
CHECK_ONLY = {
    "schema/configurations.py": frozenset({"models/noise_schedules.py"}),
    "schema/study.py": frozenset({"models/step_schedules.py"}),
}


def module_file(module):
    """The project file (relative path) of a dotted module name, or None outside the project."""
    if module.split(".")[0] not in PACKAGES:
        return None
    path = PROJECT.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate.relative_to(PROJECT).as_posix()
    return None


def with_packages(module):
    """`module` and the packages above it, which importing it runs first: a.b.c -> a, a.b, a.b.c."""
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(source, package):
    """The modules a Python `source` in `package` (dotted) imports, wherever the import stands (at
    module level or inside a function); relative imports resolved, `from a import b` counted as a and a.b."""
    parts, modules = package.split("."), []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else [])) if node.level else node.module
            modules += [base, *(f"{base}.{alias.name}" for alias in node.names)]
    return modules


@cache
def imported_by(relative):
    """The project files that the file `relative` imports directly."""
    package = relative.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
    if not relative.endswith("__init__.py"):
        package = package.rpartition(".")[0]
    modules = imported_modules((PROJECT / relative).read_text(), package)
    files = {module_file(name) for module in modules for name in with_packages(module)}
    return frozenset(files - {None} - CHECK_ONLY.get(relative, frozenset()))


def source_files(module, *, into=PACKAGES, skip=frozenset()):
    """The project files that running `module` (e.g. "flows.train" for `python -m flows.train`)
    imports, closed over imports; only imports into the packages `into` are followed, none into `skip`."""
    todo = [module_file(name) for name in with_packages(module)]
    found = set()
    while todo:
        relative = todo.pop()
        if relative is None or relative in found or relative in skip:
            continue
        found.add(relative)
        todo += [f for f in imported_by(relative) if f.split("/")[0] in into]
    return found


def computation_files(stage):
    """The files a stage computes with: what its module imports from models/ and tasks/, closed over
    their imports (not into flows/)."""
    return {f for f in source_files(stage, into=COMPUTING) if not f.startswith("flows/")}


def digest(*parts):
    """12 hex digits of SHA-256 over the parts' canonical JSON (pydantic models dumped, at any depth):
    equal parts, equal digest."""
    text = json.dumps(parts, sort_keys=True, default=lambda model: model.model_dump(mode="json"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def files_digest(files):
    """Digest of the project files `files` (paths relative to the project): their names and bytes."""
    sha = hashlib.sha256()
    for relative in sorted(files):
        sha.update(relative.encode() + b"\0" + (PROJECT / relative).read_bytes() + b"\0")
    return sha.hexdigest()[:12]


def tensors_digest(state):
    """Digest of the tensors (and plain values) of a nested dict/list/tuple, by content: the same
    weights give the same digest whichever file or device they came from."""
    sha = hashlib.sha256()

    def feed(value):
        if isinstance(value, dict):
            for key in sorted(value, key=str):
                sha.update(f"{key}\0".encode())
                feed(value[key])
        elif isinstance(value, list | tuple):
            for item in value:
                feed(item)
        elif isinstance(value, torch.Tensor):
            tensor = value.detach().cpu().contiguous().reshape(-1)
            sha.update(f"{tensor.dtype}{tuple(value.shape)}\0".encode() + tensor.view(torch.uint8).numpy().tobytes())
        else:
            sha.update(f"{value!r}\0".encode())

    feed(state)
    return sha.hexdigest()[:12]


def saved_digest(path):
    """`tensors_digest` of what a torch.save'd file holds."""
    return tensors_digest(torch.load(path, map_location="cpu", weights_only=True))


def training_identity(config, images):
    """What a checkpoint must share with a configuration to be resumed: the images trained on (their
    content, whatever data settings or code made them), every setting but the step count and
    checkpoint interval (so that raising `steps` continues the training), and the code that trains
    (tasks/compute/train.py and what it imports)."""
    settings = {key: value for key, value in config.settings().items() if key not in ("steps", "checkpoint_every")}
    return digest(settings, tensors_digest(images), files_digest(source_files("tasks.compute.train", into=COMPUTING)))


CELL_CODE = (
    "tasks.compute.cells",
    "tasks.compute.train",
    "tasks.compute.feature_space",
)  # what computes a cell: sampling and scoring, the denoiser, the features


def cell_files(solver):
    """The files a cell of `solver` runs: those that `CELL_CODE` imports from models/ and tasks/ (not
    what shows a cell: figures, MLflow runs, paths), of the solver modules only its algorithm's module
    and what that imports. The solver table (which imports them all) and the declarations of
    models/axes.py (which only check options, but for a solver's calls per step, which decide its
    grid) count by the solver's own entry and declaration: `cell_code`."""
    computing = set().union(*(source_files(module, into=COMPUTING) for module in CELL_CODE))
    common = {f for f in computing if not f.startswith("models/solvers/") and f != DECLARATIONS}
    own = source_files(solver.algorithm.__module__, into=COMPUTING, skip={SOLVER_TABLE, DECLARATIONS})
    return common | {f for f in own if f.startswith("models/solvers/")}


def cell_code(solver):
    """Digest of the code a cell runs: its `cell_files`, its solver's entry and declaration, and the
    algorithm's own source when it lives outside the project (e.g. registered by a test)."""
    algorithm = solver.algorithm
    outside = inspect.getsource(algorithm) if module_file(algorithm.__module__) is None else None
    entry = [solver.name, f"{algorithm.__module__}.{algorithm.__qualname__}", solver.defaults, repr(solver.declared), outside]
    return digest(files_digest(cell_files(solver)), entry)

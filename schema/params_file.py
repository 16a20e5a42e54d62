"""A params file read into a validated `schema.study.Study`: YAML that refuses repeated keys,
overrides applied (`schema.overrides`), the schema checked, every problem reported as one line (file,
key path, what is wrong, the value given, what is allowed), and the files the study reads checked.
`python -m flows.runtime.check [FILE]` checks a file this way without doing any work."""

import difflib
import typing
from pathlib import Path

import yaml
from pydantic import ValidationError

from models.options import Problems

from .overrides import apply
from .study import Study


class ParamsError(ValueError):
    """A params file that cannot describe a study; the message says where and why."""


def missing_files(study):
    """The files a study reads that are not there, as (key path, value, message): data.root of a
    dataset read from files (a folder, which download may create) and Inception's weights file.
    Relative paths are relative to the current directory, where stages run and open them."""
    data, features = study.data, study.features
    if data.entry.files:
        root = Path(data.root)
        if root.exists() and not root.is_dir():
            yield ("data", "root"), data.root, f"{str(root.resolve())!r} is not a folder; allowed: a folder for the {data.dataset} files"
        elif not root.exists() and not data.download:
            yield (
                ("data", "root"),
                data.root,
                (
                    f"no folder {str(root.resolve())!r}; allowed: an existing folder with the "
                    f"{data.dataset} files, or data.download: true to fetch them into it"
                ),
            )
    if features.kind == "inception" and not Path(features.weights_path).is_file():
        yield (
            ("features", "weights_path"),
            features.weights_path,
            (f"no file {str(Path(features.weights_path).resolve())!r}; allowed: an existing Inception-v3 weights file (see docs/study.md)"),
        )


def line(source, location, message, value):
    """One problem: file, key path, what is wrong, the value given."""
    return f"{source}: {'.'.join(str(part) for part in location) or '(top level)'}: {message} (got {value!r})"


def describe(error, source):
    """One line per problem: file, key path, what is wrong, the value given."""
    lines = []
    for problem in error.errors():
        cause, location = problem.get("ctx", {}).get("error"), problem["loc"]
        if isinstance(cause, Problems):
            lines.extend(line(source, (*location, *key), message, value) for key, value, message in cause.problems)
        elif problem["type"] == "missing":
            lines.append(line(source, location, "Field required; this key has no default", None).removesuffix(" (got None)"))
        elif problem["type"] == "extra_forbidden":
            lines.append(line(source, location, f"unknown key{allowed_keys(location[:-1], location[-1])}", problem["input"]))
        else:
            lines.append(line(source, location, problem["msg"].removeprefix("Value error, "), problem.get("input")))
    return "\n".join(lines)


def allowed_keys(location, key):
    """The keys the section at `location` accepts, and the nearest one to `key`."""
    model, parts = Study, list(location)
    while parts:
        annotation = model.model_fields[parts.pop(0)].annotation
        if typing.get_origin(annotation) in (list, dict):
            parts.pop(0)  # the list index or the mapping key
            annotation = typing.get_args(annotation)[-1]
        model = annotation
    keys = list(model.model_fields)
    close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.5)
    return f"; allowed: {keys}" + (f"; did you mean {close[0]!r}?" if close else "")


class UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load that refuses a repeated key (PyYAML silently keeps the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"repeated key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_params(path, overrides=None):
    """The validated Study of a params file with `overrides` ({"dotted.key": value}, as `dvc exp
    run -S` sets them) applied, or a ParamsError that names every problem, including files the study
    reads that are missing (`missing_files`)."""
    try:
        with open(path) as f:
            raw = yaml.load(f, Loader=UniqueKeyLoader)
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such params file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ParamsError(f"{path}: not valid YAML{where}: {getattr(error, 'problem', error)}") from None
    if not isinstance(raw, dict):
        raise ParamsError(
            f"{path}: the file is empty; expected the sections {list(Study.model_fields)}"
            if raw is None
            else f"{path}: expected a mapping of sections {list(Study.model_fields)}, got {type(raw).__name__}"
        )
    try:
        raw = apply(raw, overrides or {}, path)
    except ValueError as error:
        raise ParamsError(str(error)) from None
    try:
        study = Study.model_validate(raw)
    except ValidationError as error:
        raise ParamsError(describe(error, path)) from None
    missing = [line(path, key, message, value) for key, value, message in missing_files(study)]
    if missing:
        raise ParamsError("\n".join(missing))
    return study

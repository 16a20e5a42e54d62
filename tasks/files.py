"""CSV, JSON and text files written atomically (a reader never sees half a file); kept apart from
tasks/report.py so that stages writing JSON do not import matplotlib."""

import csv
import io
import json
import math

from .checkpoints import atomic_open


def write_csv(rows, path, columns):
    """Write `rows` to `path` as CSV with a header of `columns` (other keys left out), atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(text.getvalue(), path)


def json_safe(value):
    """`value` with every NaN or infinite float, at any depth of dicts, lists and tuples, replaced by
    None: strict JSON has neither."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def write_json(obj, path):
    """Write `obj` to `path` as strict JSON (non-finite floats as null, indent 2, keys in order), atomically."""
    write_text(json.dumps(json_safe(obj), indent=2, allow_nan=False) + "\n", path)


def write_text(text, path):
    """Write `text` to `path` as UTF-8, atomically."""
    with atomic_open(path) as file:
        file.write(text.encode("utf-8"))

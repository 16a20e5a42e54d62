"""Files written atomically (a reader never sees half a file): any binary file through `atomic_open`,
and CSV, JSON and text, readable by the user's group and others as any file they write (the umask);
kept apart from the figures so that stages writing JSON do not import matplotlib."""

import contextlib
import csv
import io
import json
import math
import os
import re
import tempfile
from pathlib import Path

UMASK = os.umask(0o022)  # read once, at import (before any thread), and put back at once
os.umask(UMASK)


@contextlib.contextmanager
def atomic_open(path):
    """A binary file that replaces `path` only once fully written: a temporary file in the same
    folder, given the mode a plain open would (0o666 less the umask, where mkstemp makes 0o600),
    flushed and fsync'ed, then os.replace'd; on any error it is removed and `path` untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), 0o666 & ~UMASK)
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def file_name(label):
    """A cell label such as "heun/karras/8" as a file name."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", label)


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

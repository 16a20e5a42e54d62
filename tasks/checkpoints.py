"""Checkpoints: written atomically, loaded safely, a corrupt one detected and the previous one used."""

import os
import tempfile
from pathlib import Path

import torch


def save_atomic(state, path):
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_checkpoint(state, folder, keep=2):
    """Write `step-<step>.pt` atomically and keep the newest `keep` checkpoints."""
    folder = Path(folder)
    save_atomic(state, folder / f"step-{state['step']:08d}.pt")
    for old in sorted(folder.glob("step-*.pt"))[:-keep]:
        old.unlink()


def load_latest(folder, log=print):
    """The newest checkpoint in `folder` that loads (weights_only), or None; unreadable ones are reported."""
    for path in sorted(Path(folder).glob("step-*.pt"), reverse=True):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or corrupt file: say so, fall back to the previous one
            log(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); using the previous one")
    return None

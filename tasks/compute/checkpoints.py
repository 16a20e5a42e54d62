"""Checkpoints: written atomically, loaded safely, a corrupt one detected and the previous one used."""

import os
import time
from pathlib import Path

import torch

from tasks.files import atomic_open


def save_atomic(state, path):
    """torch.save `state` to `path` through `atomic_open`."""
    with atomic_open(path) as file:
        torch.save(state, file)


def save_checkpoint(state, folder, keep=2):
    """Write `step-<step>.pt` atomically and keep the newest `keep` checkpoints; temporary files that
    a killed writer left behind go too."""
    folder = Path(folder)
    save_atomic(state, folder / f"step-{state['step']:08d}.pt")
    for old in [*sorted(folder.glob("step-*.pt"))[:-keep], *folder.glob(".step-*.tmp")]:
        old.unlink()


def load_latest(folder, log=print):
    """The newest checkpoint in `folder` that loads (weights_only), or None; unreadable ones are reported."""
    for path in sorted(Path(folder).glob("step-*.pt"), reverse=True):
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a truncated or corrupt file: say so, fall back to the previous one
            log(f"checkpoint {path} is unreadable ({type(error).__name__}: {error}); using the previous one")
    return None


def set_aside(folder):
    """Move the checkpoints of `folder` to `<parent>/.superseded/<name>-<time>/` (kept, out of the way)."""
    folder = Path(folder)
    aside = folder.parent / ".superseded" / f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    aside.mkdir(parents=True, exist_ok=True)
    for path in folder.glob("step-*.pt"):
        os.replace(path, aside / path.name)
    return aside

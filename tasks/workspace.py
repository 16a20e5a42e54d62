"""Where a study's outputs live, relative to the repository root (or, for the MLflow store, the
repository a DVC experiment was started from), and the small records read back from there (the data
floor, a diverged training)."""

import json
from pathlib import Path

from .files import write_json


def store_root(root):
    """The repository whose MLflow store a run under `root` uses: `root` itself, or, for a DVC
    experiment that runs in a temporary copy (<repo>/.dvc/tmp/exps/...: `dvc exp run --queue`,
    `--temp`), the repository it was started from, so that its runs outlive the copy."""
    root = Path(root).resolve()
    for parent in root.parents:
        if parent.name == "exps" and parent.parent.name == "tmp" and parent.parent.parent.name == ".dvc":
            return parent.parent.parent.parent
    return root


class Workspace:
    """The study's files: data/prepared, features/, checkpoints/<config>, results/<config>, reports/."""

    def __init__(self, root="."):
        self.root = Path(root).resolve()
        self.data = self.root / "data" / "prepared"
        self.features = self.root / "features"
        self.reports = self.root / "reports"
        self.artifacts = store_root(self.root) / "mlartifacts"  # beside the MLflow store, which outlives DVC's temporary copies

    def data_floor(self):
        """The data's own FID (held-out test images against the training images), from features/metrics.json."""
        return json.loads((self.features / "metrics.json").read_text())["data_floor_fid"]

    def checkpoints(self, name):
        return self.root / "checkpoints" / name

    def diverged(self, name):
        """The record a diverged training leaves beside its checkpoints."""
        return self.checkpoints(name) / "diverged.json"

    def divergence(self, name):
        """Why the training of configuration `name` diverged, or None if it did not."""
        return json.loads(self.diverged(name).read_text())["error"] if self.diverged(name).is_file() else None

    def record_divergence(self, name, message):
        """Record that the training of configuration `name` diverged (None: clear the record)."""
        if message is None:
            self.diverged(name).unlink(missing_ok=True)
        else:
            write_json({"configuration": name, "error": message}, self.diverged(name))

    def results(self, name):
        return self.root / "results" / name

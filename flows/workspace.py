"""Where a study's outputs live, relative to the repository root, and what every stage's flow shares:
the validated params, the configuration asked for, the device, the MLflow experiment, and a
command-line entry point that validates its arguments before any Prefect or training work starts."""

import argparse
import gc
import hashlib
import json
import sys
from pathlib import Path

import yaml

from models.diffusion import choose
from tasks.tracking import log_params, open_experiment, run_for, store_root

from .orchestration import task_runner
from .params import AXES, ParamsError, load_params


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

    def results(self, name):
        return self.root / "results" / name


def fingerprint(*sections):
    """12 hex digits of SHA-256 over the sections' canonical JSON: equal settings, equal fingerprint."""
    dumped = [s.model_dump(mode="json") if hasattr(s, "model_dump") else s for s in sections]
    return hashlib.sha256(json.dumps(dumped, sort_keys=True).encode()).hexdigest()[:12]


def training_fingerprint(study, config):
    """What a checkpoint must share with a configuration to be resumed: the data and every setting
    but the step count and checkpoint interval (so raising `steps` continues the training)."""
    return fingerprint(study.data, config.model_dump(mode="json", exclude={"steps", "checkpoint_every"}))


def named_configuration(study, name):
    """The configuration `name` of the study; a clear error with the names it has otherwise."""
    return choose(study.train.configurations, "configuration in train.configurations", name)


def configuration_key(study, config):
    """The MLflow key of a configuration's run: the same settings find the same run again; changed
    settings start a new run and leave the old one as it was."""
    return f"{study.mlflow.experiment}/{config.name}/{fingerprint(study.data, config)}"


def configuration_run(study, config, workspace):
    """(client, experiment id, run id) of the configuration's run, created with every design choice
    as a param and a tag per axis if new, reopened if it exists."""
    client, experiment_id = open_experiment(workspace.root, study.mlflow.experiment, workspace.artifacts)
    run_id = run_for(client, experiment_id, configuration_key(study, config), config.name, tags=axis_tags(study, config))
    settings = config.model_dump(mode="json", exclude={"name"})
    log_params(client, run_id, {"dataset": study.data.dataset, **settings})
    return client, experiment_id, run_id


def axis_tags(study, config):
    """A tag per training design axis, the configuration and the dataset, for filtering in the MLflow UI."""
    return {"configuration": config.name, "dataset": study.data.dataset, **{axis: getattr(config, axis) for axis in AXES}}


def parse_override(text):
    """("dotted.key", value) of a `--set dotted.key=value`, the value read as YAML."""
    key, equals, value = text.partition("=")
    if not equals or not key:
        raise ParamsError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.configurations.edm.steps=500")
    return key, yaml.safe_load(value)


def main(flow, *, per_configuration=False, submits=False, argv=None):
    """`python -m flows.<stage> [--params FILE] [--root DIR] [--configuration NAME]`: validate the
    params (and the configuration name) first, exit 2 with the problems if bad, then run `flow` (on
    the task runner of params' orchestration section if it `submits` tasks)."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{flow.name}", description=flow.description)
    parser.add_argument("--params", default="params.yaml", help="the study's params file (default: params.yaml)")
    parser.add_argument("--root", default=".", help="the repository root that holds the outputs (default: .)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                        help="override a params key (dotted path; the value is read as YAML), like `dvc exp run -S`")
    if per_configuration:
        parser.add_argument("--configuration", required=True, help="a key of train.configurations")
    args = parser.parse_args(argv)
    try:
        overrides = dict(parse_override(text) for text in args.overrides)
        study = load_params(args.params, overrides)
        if per_configuration:
            named_configuration(study, args.configuration)
    except (ParamsError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    keywords = {"configuration": args.configuration} if per_configuration else {}
    keywords |= {"overrides": overrides} if overrides else {}
    if submits:
        flow = flow.with_options(task_runner=task_runner(study.orchestration))
    # The modules of torch, Prefect and MLflow hold about a million objects that live as long as the
    # process: frozen, the garbage collector no longer walks them, nor does its last pass at exit (2 s).
    gc.freeze()
    flow(params=args.params, root=args.root, **keywords)
    return 0

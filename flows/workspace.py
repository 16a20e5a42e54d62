"""Where a study's outputs live, relative to the repository root, and what every stage's flow shares:
the validated params, the configuration asked for, the device, the MLflow experiment, and a
command-line entry point that validates its arguments before any Prefect or training work starts."""

import argparse
import gc
import json
import sys
from pathlib import Path

import yaml

from models.tables import choose
from tasks.data import load_dataset
from tasks.provenance import digest, training_identity
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


def training_images(workspace):
    """The prepared training images, as every stage that trains or identifies a training loads them."""
    return load_dataset(workspace.data / "train.pt")[0]


def configuration_identity(study, config, workspace):
    """`tasks.provenance.training_identity` of the configuration on the prepared training images."""
    return training_identity(study.data, config, training_images(workspace))


def named_configuration(study, name):
    """The configuration `name` of the study; a clear error with the names it has otherwise."""
    return choose(study.train.configurations, "configuration in train.configurations", name)


def configuration_key(study, config, identity):
    """The MLflow key of a configuration's run: the same settings and training identity find the same
    run again; changed settings, data or training code start a new run and leave the old one as it was."""
    return f"{study.mlflow.experiment}/{config.name}/{digest(config, identity)}"


def configuration_run(study, config, workspace, identity):
    """(client, experiment id, run id) of the configuration's run (`identity`: its training identity),
    created with every design choice as a param and a tag per axis if new, reopened if it exists."""
    client, experiment_id = open_experiment(workspace.root, study.mlflow.experiment, workspace.artifacts)
    tags = {**axis_tags(study, config), "training": identity}
    run_id = run_for(client, experiment_id, configuration_key(study, config, identity), config.name, tags=tags)
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

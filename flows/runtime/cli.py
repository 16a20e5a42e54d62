"""The command line of every stage's flow: `python -m flows.<stage> [--params FILE] [--root DIR]
[--set KEY=VALUE ...] [--configuration NAME ...]` validates its arguments and the params first,
exits 2 with the problems if they are bad, and only then runs the flow."""

import argparse
import gc
import os
import sys

from schema import overrides
from schema.params_file import ParamsError, load_params

from .orchestration import task_runner
from .servers import api_ready


def parser(flow, per_configuration):
    """The command line of `flow`'s stage: --params, --root, --set and, for a flow that runs
    `per_configuration` tasks, --configuration."""
    arguments = argparse.ArgumentParser(prog=f"python -m flows.{flow.name}", description=flow.description)
    arguments.add_argument("--params", default="params.yaml", help="the study's params file (default: params.yaml)")
    arguments.add_argument("--root", default=".", help="the repository root that holds the outputs (default: .)")
    arguments.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a params key (dotted path; the value is read as YAML), like `dvc exp run -S`",
    )
    if per_configuration:
        arguments.add_argument(
            "--configuration",
            action="append",
            dest="configurations",
            metavar="NAME",
            help="a key of train.configurations; repeat for several (default: every configuration)",
        )
    return arguments


def main(flow, *, per_configuration=False, argv=None):
    """Run `flow` from the command line (a flow that runs `per_configuration` tasks: on the task runner
    of params' orchestration section, for every configuration or those named); 2 if the arguments or
    the params are bad, before any work."""
    args = parser(flow, per_configuration).parse_args(argv)
    try:
        given = dict(overrides.parse(text) for text in args.overrides)
        study = load_params(args.params, given)
        for name in (args.configurations or []) if per_configuration else []:
            study.configuration(name)
    except (ParamsError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    keywords = {"overrides": given} if given else {}
    if per_configuration:
        names = args.configurations or list(study.train.configurations)
        keywords["configurations"] = names
        flow = flow.with_options(task_runner=task_runner(study.orchestration, len(names)))
    # The modules of torch, Prefect and MLflow hold about a million objects that live as long as the
    # process: frozen, the garbage collector no longer walks them, nor does its last pass at exit (2 s).
    gc.freeze()
    gc.enable()  # paused while they loaded (flows/__init__.py)
    if os.environ.get("PREFECT_API_URL"):
        api_ready(os.environ["PREFECT_API_URL"])
    flow(params=args.params, root=args.root, **keywords)
    return 0

"""The command line of every stage's flow: `python -m flows.<stage> [--params FILE] [--root DIR]
[--set KEY=VALUE ...] [--configuration NAME]` validates its arguments and the params first, exits 2
with the problems if they are bad, and only then runs the flow."""

import argparse
import gc
import sys

from . import overrides
from .orchestration import task_runner
from .params_file import ParamsError, load_params


def main(flow, *, per_configuration=False, submits=False, argv=None):
    """Run `flow` from the command line (on the task runner of params' orchestration section if it
    `submits` tasks); 2 if the arguments or the params are bad, before any work."""
    parser = argparse.ArgumentParser(prog=f"python -m flows.{flow.name}", description=flow.description)
    parser.add_argument("--params", default="params.yaml", help="the study's params file (default: params.yaml)")
    parser.add_argument("--root", default=".", help="the repository root that holds the outputs (default: .)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a params key (dotted path; the value is read as YAML), like `dvc exp run -S`",
    )
    if per_configuration:
        parser.add_argument("--configuration", required=True, help="a key of train.configurations")
    args = parser.parse_args(argv)
    try:
        given = dict(overrides.parse(text) for text in args.overrides)
        study = load_params(args.params, given)
        if per_configuration:
            study.configuration(args.configuration)
    except (ParamsError, ValueError) as error:
        print(error, file=sys.stderr)
        return 2
    keywords = {"configuration": args.configuration} if per_configuration else {}
    keywords |= {"overrides": given} if given else {}
    if submits:
        flow = flow.with_options(task_runner=task_runner(study.orchestration))
    # The modules of torch, Prefect and MLflow hold about a million objects that live as long as the
    # process: frozen, the garbage collector no longer walks them, nor does its last pass at exit (2 s).
    gc.freeze()
    flow(params=args.params, root=args.root, **keywords)
    return 0

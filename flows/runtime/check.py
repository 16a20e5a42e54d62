"""`python -m flows.runtime.check [FILE]`: check a params file (default params.yaml) as every stage does first,
without doing any work: a summary, or one line per problem and exit status 2."""

import sys

from schema.params_file import ParamsError, load_params


def check(argv=None):
    """Check a params file (default params.yaml): print a summary, or the problems and return 2."""
    args = sys.argv[1:] if argv is None else argv
    path = args[0] if args else "params.yaml"
    try:
        study = load_params(path)
    except ParamsError as error:
        print(error, file=sys.stderr)
        return 2
    print(
        f"{path}: valid; {len(study.train.configurations)} configurations, {len(study.evaluate.solvers)} solvers, "
        f"{len(study.evaluate.step_schedules)} step schedules, NFE {study.evaluate.nfe}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(check())

"""`python -m flows.runtime.repro [dvc repro arguments]`: `dvc repro` with one Prefect server for all its
stages. Without PREFECT_API_URL every stage's process would start (and stop) Prefect's ephemeral
API, ~8 s each; here a local `prefect server` on 127.0.0.1 is started first, shared by every stage,
and stopped at the end. With PREFECT_API_URL set, that server is used instead."""

import gc
import os
import subprocess
import sys
import textwrap

from schema.params_file import load_params
from tasks.compute.rows import charted
from tasks.record.mlflow_views import experiment_url, series_view_url
from tasks.record.tracking import existing_experiment, tracking_uri
from tasks.report.outputs import OUTPUTS

from .servers import prefect_server


def where_to_look(params="params.yaml", address="http://127.0.0.1:5000"):
    """Where the study's results are: the report page, the other files of the report
    (`tasks.report.outputs.OUTPUTS`), DVC's metrics and plots, and the MLflow UI pages of its
    experiment: the runs table and the charts of each configuration of the solver comparison."""
    study = load_params(params)
    experiment_id = existing_experiment(".", study.mlflow.experiment) or "<id>"
    files = textwrap.fill(", ".join(f"reports/{output.file}" for output in OUTPUTS if output.file != "index.html"), 100)
    charts = [
        f"{name}, {charted()} against NFE per solver / step schedule: {series_view_url(address, experiment_id, name)}"
        for name in study.compared()
    ]
    lines = [
        "Results: reports/index.html   (the whole report on one page, offline)",
        *textwrap.indent(files, "         ").splitlines(),
        "         dvc metrics show; dvc plots show (then open dvc_plots/index.html)",
        f"MLflow:  mlflow ui --backend-store-uri {tracking_uri('.')}",
        f"         then open {experiment_url(address, experiment_id)}   (the runs table)",
        *(f"         {chart}" for chart in charts),
        "         (every configuration's charts: the runs page's Views menu)",
    ]
    return "\n" + "\n".join(lines)


def main(argv=None):
    gc.enable()  # paused while `python -m` loaded the package (flows/__init__.py)
    args = sys.argv[1:] if argv is None else argv
    command = [sys.executable, "-m", "dvc", "repro", *args]
    # the stages' `python` is this interpreter, whether or not its environment is activated
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ.get('PATH', '')}"}
    if env.get("PREFECT_API_URL"):
        status = subprocess.call(command, env=env)
    else:
        with prefect_server(wait=False) as url:  # starts while DVC and the first stage load; each stage waits for it
            print(f"Prefect server for this run: {url.removesuffix('/api')} (stopped at the end)", flush=True)
            status = subprocess.call(command, env={**env, "PREFECT_API_URL": url})
    if status == 0:
        print(where_to_look())
    return status


if __name__ == "__main__":
    raise SystemExit(main())

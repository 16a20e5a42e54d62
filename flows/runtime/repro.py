"""`python -m flows.runtime.repro [dvc repro arguments]`: `dvc repro` with one Prefect server for all its
stages. Without PREFECT_API_URL every stage's process would start (and stop) Prefect's ephemeral
API, ~8 s each; here a local `prefect server` on 127.0.0.1 is started first, shared by every stage,
and stopped at the end. With PREFECT_API_URL set, that server is used instead."""

import gc
import os
import subprocess
import sys

from schema.params_file import load_params
from tasks.record.mlflow_views import experiment_url, series_view_url
from tasks.record.tracking import existing_experiment, tracking_uri

from .servers import prefect_server

WHERE_TO_LOOK = """
Results: reports/fid_vs_nfe.png, reports/ode_error_vs_nfe.png, reports/fid_vs_ode_error.png,
         reports/measured_order.md, reports/best.csv, reports/ablations.md, reports/convergence/,
         reports/training_noise_levels.png, reports/optimized_schedules.md, reports/step_schedules.png
         dvc metrics show; dvc plots show (then open dvc_plots/index.html)
MLflow:  mlflow ui --backend-store-uri {uri}
         then open {runs}   (the runs table)
{charts}
         (every configuration's charts: the runs page's Views menu)"""


def where_to_look(params="params.yaml", address="http://127.0.0.1:5000"):
    """Where the study's results are: files, and the MLflow UI pages of its experiment: the runs table
    and the charts of each configuration sampled on the default grid (the solver comparison)."""
    study = load_params(params)
    uri = tracking_uri(".")
    experiment_id = existing_experiment(".", study.mlflow.experiment) or "<id>"
    compared = [name for name, config in study.train.configurations.items() if config.grid is None]
    charts = "\n".join(
        f"         {name}, FID, KID and ODE error against NFE per solver / step schedule: {series_view_url(address, experiment_id, name)}"
        for name in compared
    )
    return WHERE_TO_LOOK.format(uri=uri, runs=experiment_url(address, experiment_id), charts=charts)


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

"""`python -m flows.repro [dvc repro arguments]`: `dvc repro` with one Prefect server for all its
stages. Without PREFECT_API_URL every stage's process would start (and stop) Prefect's ephemeral
API, ~8 s each; here a local `prefect server` on 127.0.0.1 is started first, shared by every stage,
and stopped at the end. With PREFECT_API_URL set, that server is used instead."""

import gc
import os
import subprocess
import sys

from tasks.tracking import tracking_uri

from .servers import prefect_server

WHERE_TO_LOOK = """
Results: reports/fid_vs_nfe.png, reports/best.csv, reports/summary.json, reports/samples/
         dvc metrics show; dvc plots show (then open dvc_plots/index.html)
MLflow:  mlflow ui --backend-store-uri {uri}   (then open http://127.0.0.1:5000)"""


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
        print(WHERE_TO_LOOK.format(uri=tracking_uri(".")))
    return status


if __name__ == "__main__":
    raise SystemExit(main())

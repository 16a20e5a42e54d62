"""Screenshots of a study's MLflow experiment as a user opens it: its runs table and, per
configuration, its saved series view (FID and ode_error against NFE, `tasks.record.mlflow_views`), taken
with headless Chromium from an `mlflow ui` started on 127.0.0.1 (a free port) over the store,
stopped on exit.

`python -m tools.mlflow_screenshots --store sqlite:///PATH/mlflow.db --experiment design-space --out DIR`
(or `--root DIR` for the store DIR/mlflow.db of a study workspace) writes DIR/runs_table.png and
DIR/charts-<configuration>.png and prints their URLs; `--configuration NAME` (repeatable) names the
views to shoot, by default those of the configurations with the most series (the solver comparison's).

MLflow 3.17's UI opens an experiment on its GenAI overview unless the URL asks for the model-training
view (`workflowType=machine_learning`; the `mlflow.experimentKind` tag does not change that). On a
loopback address it opens its Assistant panel, a third of the page, once per browser profile; the
screenshots are taken as a user sees the page after closing it (its localStorage key set first).

Each page is shot once its spinners have been gone for a while, through the DevTools protocol (`tools.browser`):
`chromium --screenshot --virtual-time-budget=...` often caught the chart cards still loading."""

import argparse
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from mlflow import MlflowClient

from flows.runtime.servers import free_port, server
from tasks.record.mlflow_views import experiment_url, series_view_url
from tasks.record.tracking import SERIES

from .browser import browser_page, chromium

SPINNING = "document.querySelector('[class*=spin-spinning]') !== null"  # MLflow's loading indicators
ASSISTANT_SEEN = "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1"  # the UI opens its Assistant panel once, until this is set
QUIET_SECONDS, LOAD_SECONDS = 2.0, 60.0  # shot after QUIET_SECONDS without a spinner, or anyway after LOAD_SECONDS


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.mlflow_screenshots", description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", help="the MLflow backend store URI, e.g. sqlite:///PATH/mlflow.db")
    where.add_argument("--root", type=Path, help="a study workspace whose store is ROOT/mlflow.db")
    parser.add_argument("--experiment", default="design-space", help="the experiment's name (default: design-space)")
    parser.add_argument("--out", type=Path, required=True, help="the folder the screenshots go to (made if missing)")
    parser.add_argument(
        "--configuration",
        action="append",
        help="shoot this configuration's series view; repeat it for more (default: the most series)",
    )
    return parser.parse_args(argv)


def store_uri(args):
    """The backend store URI the arguments name; a SystemExit if it names a SQLite file that does not exist
    (opening it would create an empty store)."""
    uri = args.store or f"sqlite:///{(args.root / 'mlflow.db').resolve()}"
    database = uri.removeprefix("sqlite:///")
    if database != uri and not Path(database).is_file():
        raise SystemExit(f"no MLflow store at {database}")
    return uri


def experiment_id(uri, name):
    """The id of the experiment `name` in the store at `uri`; a SystemExit if it has none."""
    found = MlflowClient(tracking_uri=uri).get_experiment_by_name(name)
    if found is None:
        raise SystemExit(f"no experiment {name!r} in {uri}")
    return found.experiment_id


def compared(uri, experiment):
    """The configurations with the most current series runs in `experiment`: those sampled on the
    default grid, the solver comparison."""
    runs = MlflowClient(tracking_uri=uri).search_runs([experiment], f"tags.kind = '{SERIES}'", max_results=50000)
    counts = Counter(run.data.tags["configuration"] for run in runs)
    return sorted(name for name, count in counts.items() if count == max(counts.values()))


def page_urls(address, experiment, configurations):
    """{file name: URL} of the runs table of `experiment` in the UI at `address` and of the series
    view of each of `configurations`: the pages `bin/study` names."""
    views = {f"charts-{name}.png": series_view_url(address, experiment, name) for name in configurations}
    return {"runs_table.png": experiment_url(address, experiment), **views}


def wait_until_loaded(page):
    """True once the page has shown no spinner for QUIET_SECONDS; False if it is still loading after LOAD_SECONDS."""
    deadline, quiet_since = time.monotonic() + LOAD_SECONDS, None
    while time.monotonic() < deadline:
        now = time.monotonic()
        if page.evaluate(f"document.readyState === 'complete' && !({SPINNING})"):
            quiet_since = quiet_since or now
            if now - quiet_since >= QUIET_SECONDS:
                return True
        else:
            quiet_since = None
        time.sleep(0.25)
    return False


def screenshot(url, path):
    """Save a screenshot of `url` at `path` once the page has loaded, in a fresh browser (no UI state
    carried over but the Assistant panel closed: `ASSISTANT_SEEN` set on the UI's origin first)."""
    with browser_page() as page:
        page.call("Page.navigate", url=url.split("/#")[0] + "/health")
        page.evaluate(f"localStorage.setItem('{ASSISTANT_SEEN}', 'true')")
        page.call("Page.navigate", url=url)
        if not wait_until_loaded(page):
            print(f"still loading after {LOAD_SECONDS:.0f} s: {url}", file=sys.stderr)
        page.screenshot(path)


def ui_command(uri, port):
    return [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port", str(port), "--workers", "2"]


def main(argv=None):
    args = parse_args(argv)
    uri = store_uri(args)
    chromium()  # installed, before the server starts
    experiment = experiment_id(uri, args.experiment)
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that a terminated run still stops the server
    port = free_port()
    address = f"http://127.0.0.1:{port}"
    # without MLflow's job runner (GenAI jobs the study never uses)
    with server(ui_command(uri, port), f"{address}/health", "mlflow ui", env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}):
        for name, url in page_urls(address, experiment, args.configuration or compared(uri, experiment)).items():
            path = (args.out / name).resolve()
            screenshot(url, path)
            print(f"{path}\n  {url}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""What the Prefect UI shows of a study's results, on the flow runs a user of the deployments already
has open (Prefect artifacts; the flows publish them): each configuration's cells as a table and a link
to its comparison in MLflow, and the report's tables. Built here from the rows and files; no figure."""

import re
from urllib.parse import urlparse

from tasks.compute.rows import TABLE, fields, shown
from tasks.report.markdown import value
from tasks.report.outputs import OUTPUTS

from .mlflow_views import series_view_url

MLFLOW_UI = "http://127.0.0.1:5000"  # where `mlflow ui` serves a local store by default


def artifact_key(*parts):
    """A Prefect artifact key (lowercase letters, digits and dashes) from `parts`, e.g. cells-edm-long."""
    return re.sub(r"[^a-z0-9]+", "-", "-".join(parts).lower()).strip("-")


def cells_table(rows):
    """A line per cell of one configuration, references first: its label, then each `TABLE` field of
    the row (`tasks.compute.rows`) under its label, a score with its standard error."""
    return [
        {"cell": row["label"] + " (reference)" * row["reference"], **{shown(name).label: value(row, name) for name in fields(TABLE)}}
        for row in rows
    ]


def mlflow_link(tracking_uri, experiment_id, configuration):
    """The MLflow UI page of a configuration's charts (its charted metrics against NFE per series): on the
    tracking server when the study logs to one, else where `mlflow ui` serves the local store."""
    address = tracking_uri if urlparse(tracking_uri).scheme in ("http", "https") else MLFLOW_UI
    return series_view_url(address.rstrip("/"), experiment_id, configuration)


def report_markdown(reports):
    """The report's tables in one Markdown text: its Markdown files (`tasks.report.outputs.OUTPUTS`:
    the ablations, the optimized step schedules, the convergence checks), with the page that also shows
    the figures."""
    parts = [(reports / output.file).read_text() for output in OUTPUTS if output.file.endswith(".md")]
    return "\n\n".join(parts) + f"\n\nThe whole report, figures included: {(reports / 'index.html').resolve().as_uri()}\n"

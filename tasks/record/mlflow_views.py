"""What a user opens in MLflow 3's UI: the study's runs table, and per configuration a saved view of
its series runs charted (`tasks.compute.rows.CHART` metrics against NFE). A saved view is an experiment tag
`mlflow.sharedViewState.<key>` that holds the runs page's state, as the UI's own "Views" menu saves
one (MLflow 3.17): the menu lists it by name, and `series_view_url` opens it."""

import json
import time
from urllib.parse import urlencode

from tasks.compute.rows import CHART, SERIES_METRIC, charted, fields

from .tracking import SERIES

VIEW_TAG = "mlflow.sharedViewState."
SECTION = "study-series"  # the one section of a series view's charts


def experiment_url(address, experiment_id):
    """The UI page at `address` that opens the experiment on its runs table (MLflow 3.17 opens its
    GenAI overview unless the address asks for the model-training view)."""
    return f"{address.rstrip('/')}/#/experiments/{experiment_id}?workflowType=machine_learning"


def view_key(configuration):
    return f"series-{configuration}"


def line_chart(metric, deleted=False):
    """A chart card of the runs page: `metric` against step (= NFE) on log-log axes, unsmoothed; a
    `deleted` card keeps the UI from adding a chart of the metric by itself."""
    return dict(
        type="LINE",
        uuid=f"study-{metric}",
        metricSectionId=SECTION,
        metricKey=metric,
        selectedMetricKeys=[metric],
        xAxisKey="step",
        xAxisScaleType="log",
        scaleType="log",
        lineSmoothness=0,
        isGenerated=False,
        deleted=deleted,
    )


def series_view_state(configuration):
    """The runs page's state: the current series runs of `configuration` listed flat (sorted by name:
    a sort by creation nests them under their configuration's run), every one drawn (the page draws
    the first 10 by default), one section of a chart per `CHART` metric of the row, three a row (the
    other series metrics as deleted cards, so that the UI adds no chart of them by itself)."""
    section = dict(uuid=SECTION, name=f"{charted()} against NFE", display=True, isReordered=True, columns=3, cardHeight=480)
    hidden = [name for name in fields(SERIES_METRIC) if name not in fields(CHART)]
    return dict(
        searchFilter=f"tags.kind = '{SERIES}' and tags.configuration = '{configuration}'",
        orderByKey="tags.`mlflow.runName`",
        orderByAsc=True,
        runsHiddenMode="SHOW_ALL",
        compareRunSections=[section],
        compareRunCharts=[*(line_chart(metric) for metric in fields(CHART)), *(line_chart(metric, deleted=True) for metric in hidden)],
        isAccordionReordered=True,
    )


def save_series_view(client, experiment_id, configuration):
    """Save the view of `configuration`'s series charts in the experiment, unless it is there (a user
    may have changed it in the UI); its key comes back."""
    key = view_key(configuration)
    if VIEW_TAG + key not in client.get_experiment(experiment_id).tags:
        now = int(time.time() * 1000)
        name = f"{configuration}: {charted()} vs NFE"
        envelope = dict(name=name, createdAt=now, updatedAt=now, state=json.dumps(series_view_state(configuration)))
        client.set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(envelope))
    return key


def series_view_url(address, experiment_id, configuration):
    """The UI page that opens the saved series view of `configuration` as charts, in the model-training
    view (a saved view holds neither; a search key in the address would make the UI ignore the view)."""
    query = urlencode(dict(viewStateShareKey=view_key(configuration), compareRunsMode="CHART", workflowType="machine_learning"))
    return f"{address.rstrip('/')}/#/experiments/{experiment_id}/runs?{query}"

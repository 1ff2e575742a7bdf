"""Error analysis's aggregates and figures, built once per evaluation set and set of filtered rows.

Building five plotly figures and their pandas aggregates costs about a second on a 2-core CPU, and a
rerun (a click elsewhere on the page, or coming back to it) would pay it again for the same rows. Here
they are kept with st.cache_resource, keyed on the evaluation set (checkpoint file version and spec)
and a digest of the filtered rows' seq_ids, so any filter, slice or threshold that yields the same
rows reuses them, and a new filter builds them once. The figures are never mutated after building.
"""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from core import evaluate
from core.evaluate import EvalTable
from dashboard.ui import charts


def rows_digest(view: EvalTable) -> str:
    """Which rows of the evaluation set `view` holds: a digest of its seq_ids (microseconds)."""
    return hashlib.sha1(np.ascontiguousarray(view.rows["seq_id"].to_numpy(np.int64)).tobytes()).hexdigest()


@st.cache_resource(max_entries=32, show_spinner=False)
def _figures(set_key: tuple, rows: str, train: tuple[int, int] | None, _view: EvalTable) -> dict:
    cm = evaluate.digit_confusion(_view)
    return {"length": charts.length_figure(evaluate.by_length(_view), train),
            "histogram": charts.error_histogram(_view.rows["error"]),
            "pred_vs_true": charts.pred_vs_true_figure(_view.rows),
            "confusion": charts.confusion_figure(cm), "cm": cm}


@st.cache_resource(max_entries=32, show_spinner=False)
def _heatmap(set_key: tuple, rows: str, width: int, metric: str, label: str, _view: EvalTable):
    return charts.heatmap_figure(evaluate.by_length_and_sum(_view, width), width, metric, label)


def error_figures(set_key: tuple, view: EvalTable, train: tuple[int, int] | None) -> dict:
    """{"length", "histogram", "pred_vs_true", "confusion": figures, "cm": the 10x10 digit confusion}
    of the filtered rows `view` of the evaluation set `set_key`."""
    return _figures(set_key, rows_digest(view), train, view)


def heatmap(set_key: tuple, view: EvalTable, width: int, metric: str, label: str):
    """The length x sum-bucket heatmap of `view` (see charts.heatmap_figure)."""
    return _heatmap(set_key, rows_digest(view), int(width), metric, label, view)

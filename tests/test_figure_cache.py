"""dashboard.data.figures: Error analysis's figures are built once per evaluation set and set of rows."""

import numpy as np
import pytest

from core import evaluate, load_predictor
from dashboard import data
from dashboard.data import figures
from dashboard.ui import charts


@pytest.fixture(scope="module")
def table(smoke_checkpoint):
    return evaluate.evaluation_table(load_predictor(smoke_checkpoint, device="cpu"), [2, 5], 30, seed=7)


def test_same_rows_reuse_the_figures_and_other_rows_rebuild_them(table, monkeypatch):
    built = []
    original = charts.length_figure
    monkeypatch.setattr(charts, "length_figure", lambda *a: built.append(1) or original(*a))
    key = ("smoke", (2, 5), 30, 7, 0)
    first = data.error_figures(key, table, (1, 10))
    again = data.error_figures(key, table.take(np.arange(len(table))), (1, 10))  # another table, the same rows
    assert again is first and len(built) == 1
    subset = table.take(table.rows["length"].to_numpy() == 5)
    other = data.error_figures(key, subset, (1, 10))
    assert other is not first and len(built) == 2
    assert other["cm"].sum() == subset.rows["length"].sum()  # the confusion of those rows only
    assert figures.rows_digest(subset) != figures.rows_digest(table)


def test_heatmap_follows_width_and_metric(table):
    key = ("smoke", (2, 5), 30, 7, 0)
    a = data.heatmap(key, table, 5, "mae", "MAE")
    assert data.heatmap(key, table, 5, "mae", "MAE") is a
    b = data.heatmap(key, table, 10, "error_rate", "error rate")
    assert b is not a and len(b.data[0].x) < len(a.data[0].x)  # wider buckets: fewer columns

"""dashboard.figure_cache: Error analysis's figures are built once per evaluation set and set of rows."""

import pytest

from core import evaluate, load_predictor
from dashboard import charts, figure_cache


@pytest.fixture(scope="module")
def table(smoke_checkpoint):
    return evaluate.evaluation_set(load_predictor(smoke_checkpoint, device="cpu"), [2, 5], 30, seed=7)


def test_same_rows_reuse_the_figures_and_other_rows_rebuild_them(table, monkeypatch):
    built = []
    original = charts.length_figure
    monkeypatch.setattr(charts, "length_figure", lambda *a: built.append(1) or original(*a))
    key = ("smoke", (2, 5), 30, 7, 0)
    first = figure_cache.error_figures(key, table, (1, 10))
    again = figure_cache.error_figures(key, table.copy(), (1, 10))  # another frame, the same rows
    assert again is first and len(built) == 1
    subset = table[table["length"] == 5]
    other = figure_cache.error_figures(key, subset, (1, 10))
    assert other is not first and len(built) == 2
    assert other["cm"].sum() == sum(len(d) for d in subset["true_digits"])  # the confusion of those rows only
    assert figure_cache.rows_digest(subset) != figure_cache.rows_digest(table)


def test_heatmap_follows_width_and_metric(table):
    key = ("smoke", (2, 5), 30, 7, 0)
    a = figure_cache.heatmap(key, table, 5, "mae", "MAE")
    assert figure_cache.heatmap(key, table, 5, "mae", "MAE") is a
    b = figure_cache.heatmap(key, table, 10, "error_rate", "error rate")
    assert b is not a and len(b.data[0].x) < len(a.data[0].x)  # wider buckets: fewer columns

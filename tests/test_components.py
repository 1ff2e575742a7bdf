"""dashboard.components and dashboard.charts: pure helpers and chart builders, without Streamlit."""

import json
import zlib

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core import evaluate
from core.sequences import parse_lengths
from dashboard import charts, components
from dashboard.components import SequenceSpec


def fake_results(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """A table with core.evaluate's per-sequence columns: a model that misreads some 7s as 1s."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        length = int(rng.choice([1, 5, 10, 20, 100]))
        true = rng.integers(0, 10, size=length)
        pred = np.where((true == 7) & (rng.random(length) < 0.5), 1, true)
        running = np.cumsum(pred).astype(float) + rng.normal(0, 0.1, length)
        rows.append({"seq_id": i, "split": "test", "length": length, "true_sum": int(true.sum()),
                     "pred_sum": float(running[-1]), "true_digits": true.tolist(),
                     "pred_digits": pred.tolist(), "digit_conf": [0.9] * length,
                     "indices": list(range(length)), "running": running.tolist()})
    df = pd.DataFrame(rows)
    df["pred_rounded"] = np.rint(df["pred_sum"]).astype(int)
    df["error"] = df["pred_sum"] - df["true_sum"]
    df["abs_error"] = df["error"].abs()
    df["exact"] = df["pred_rounded"] == df["true_sum"]
    df["n_wrong_digits"] = [sum(a != b for a, b in zip(t, p)) for t, p in
                            zip(df["true_digits"], df["pred_digits"])]
    return df


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    return fake_results()


# ----------------------------------------------------------------------------- lengths and links

@pytest.mark.parametrize("lengths", [[1], [1, 2, 3], [1, 2, 3, 5, 20, 21, 100], list(range(1, 11)) + [1000]])
def test_format_lengths_round_trips_through_core_parser(lengths):
    assert parse_lengths(components.format_lengths(lengths)) == lengths


def test_format_lengths_compacts_runs():
    assert components.format_lengths([5, 1, 2, 3, 20]) == "1-3,5,20"


@pytest.mark.parametrize("spec", [
    SequenceSpec("eval", index=37, lengths=(1, 2, 3, 20), per_length=100, seed=4),
    SequenceSpec("gen", length=50, seed=7),
    SequenceSpec("gen", length=5, seed=0, target=20, digits=(1, 7)),
    SequenceSpec("gen", length=1000, seed=3, sum_min=100, sum_max=150),
])
def test_sequence_spec_round_trips_through_query(spec):
    query = spec.to_query()
    assert all(isinstance(v, str) for v in query.values())
    assert SequenceSpec.from_query(query) == spec


@pytest.mark.parametrize("query, message", [
    ({"src": "eval", "lengths": "1-10", "per_length": "x", "seed": "0", "index": "1"}, "per_length"),
    ({"src": "eval", "lengths": "1-10", "per_length": "10", "seed": "0"}, "index"),
    ({"src": "eval", "lengths": "0-3", "per_length": "10", "seed": "0", "index": "1"}, "length"),
    ({"src": "gen", "length": "1001", "seed": "0"}, "length"),
    ({"src": "zip"}, "src"),
])
def test_bad_links_raise_value_error_naming_the_parameter(query, message):
    with pytest.raises(ValueError, match=message):
        SequenceSpec.from_query(query)


def test_inspector_url_carries_spec_and_checkpoint():
    url = components.inspector_url(SequenceSpec("eval", index=3, lengths=(10,), per_length=5, seed=1),
                                   "checkpoints/default.pt")
    assert url.startswith("inspector?")
    assert "index=3" in url and "lengths=10" in url and "ckpt=checkpoints%2Fdefault.pt" in url


# ----------------------------------------------------------------------------- tables and metadata

def test_with_links_keeps_order_and_adds_links(results):
    worst = components.with_links(evaluate.worst_sequences(results, 5), lambda i: f"inspector?index={i}")
    assert list(worst.columns) == components.TABLE_COLUMNS + ["inspect"]
    assert worst["abs_error"].is_monotonic_decreasing
    assert worst["inspect"].tolist() == [f"inspector?index={i}" for i in worst["seq_id"]]


def test_csv_bytes_flattens_list_columns(results):
    text = components.csv_bytes(results.head(3)).decode()
    header, first = text.splitlines()[:2]
    assert "true_digits" in header and "[" not in first


@pytest.mark.parametrize("max_sum, width", [(0, 1), (40, 1), (41, 2), (90, 5), (450, 20), (9000, 500)])
def test_nice_bucket_width_keeps_the_heatmap_readable(max_sum, width):
    assert components.nice_bucket_width(max_sum) == width


def test_training_range():
    assert components.training_range({"train_lengths": [1, 10]}) == (1, 10)
    assert components.training_range({}) is None
    assert components.training_range({"train_lengths": "junk"}) is None


def test_headlines_from_metadata_and_benchmark(tmp_path):
    assert components.stored_headlines({"metrics": {"test_protocol_mae": 0.02, "val_mae": 3}}) == {
        "protocol_mae": 0.02}
    ckpt = tmp_path / "default.pt"
    ckpt.write_bytes(b"")
    report = {"created": "2030-01-02T00:00:00+00:00", "heads": [{
        "checkpoint": "default.pt", "digit_acc": 0.998, "original": {"mae": 0.03, "exact_acc": 0.98},
        "by_length": [{"length": 100, "mae": 0.4, "exact_acc": 0.8}, {"length": 1000, "mae": 4.0,
                                                                       "exact_acc": 0.2}]}]}
    found = components.benchmark_headlines(report, ckpt, tmp_path, "2030-01-01T00:00:00+00:00")
    assert found == {"protocol_mae": 0.03, "protocol_exact": 0.98, "digit_acc": 0.998, "mae_100": 0.4,
                     "exact_100": 0.8, "mae_1000": 4.0, "exact_1000": 0.2}
    # A benchmark older than the checkpoint describes another model: ignored.
    assert components.benchmark_headlines(report, ckpt, tmp_path, "2031-01-01T00:00:00+00:00") == {}
    assert components.benchmark_headlines(None, ckpt, tmp_path, "2030") == {}


def test_metadata_rows_flatten_nested_dicts():
    rows = components.metadata_rows({"head": "lstm", "train_config": {"lr": 0.1, "seed": 0}})
    assert dict(zip(rows["field"], rows["value"])) == {"head": "lstm", "train_config.lr": "0.1",
                                                       "train_config.seed": "0"}


def test_misread_summary():
    assert components.misread_summary([1, 2, 3], [1, 2, 3]) == "Every digit was read correctly."
    assert components.misread_summary([7, 2, 4], [1, 2, 9]) == "Misread at steps 1 (7 read as 1), 3 (4 read as 9)."
    assert components.misread_summary([7] * 20, [1] * 20, limit=2).endswith("and 18 more.")


def test_digit_row_html_marks_wrong_digits():
    images = np.zeros((3, 28, 28), np.uint8)
    html = components.digit_row_html(images, [1, 2, 3], [1, 7, 3], [0.99, 0.51, 0.8])
    assert html.count("<img") == 3 and "overflow-x:auto" in html
    assert "pred 7" in html and html.count("#EF4444") == 2  # one wrong digit: frame + text
    with pytest.raises(ValueError):
        components.digit_row_html(images, [1, 2], [1, 2], [1, 1])


# ----------------------------------------------------------------------------- charts

def test_length_figure_shades_training_range(results):
    fig = charts.length_figure(evaluate.by_length(results), (1, 10))
    assert isinstance(fig, go.Figure) and len(fig.data) == 2
    shaded = [s for s in fig.layout.shapes if s.type == "rect"]
    assert len(shaded) == 2  # one band per panel: lengths 1, 5 and 10 are categories 0..2
    assert shaded[0].x0 == -0.5 and shaded[0].x1 == 2.5
    assert charts.length_figure(evaluate.by_length(results), None).layout.shapes == ()


def test_length_figure_uses_log_axis_only_for_a_collapse():
    stats = pd.DataFrame({"length": [1, 10, 100, 1000], "n": [5] * 4, "exact_acc": [1, 0.9, 0.1, 0]})
    strong = charts.length_figure(stats.assign(mae=[0.0, 0.05, 0.9, 4.0]), (1, 10))
    collapse = charts.length_figure(stats.assign(mae=[0.0, 0.05, 80.0, 900.0]), (1, 10))
    assert strong.layout.yaxis.type != "log" and collapse.layout.yaxis.type == "log"
    assert min(collapse.data[0].y) == 1e-3  # zero MAE drawn at the floor, hover keeps the truth


def test_error_histogram_logs_counts_when_one_bar_dominates():
    spike = pd.Series([0.01] * 990 + list(np.linspace(-6, 6, 10)))
    broad = pd.Series(np.random.default_rng(0).normal(0, 5, 1000))
    assert charts.error_histogram(spike).layout.yaxis.type == "log"
    assert charts.error_histogram(broad).layout.yaxis.type != "log"
    assert sum(charts.error_histogram(spike).data[0].y) == 1000


def test_heatmap_has_one_row_per_length(results):
    cells = evaluate.by_length_and_sum(results, 20)
    fig = charts.heatmap_figure(cells, 20, "mae", "MAE")
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (results["length"].nunique(), cells["sum_lo"].nunique())
    assert fig.data[0].x[0] == "0-19"  # buckets are labelled by their inclusive sum range


def test_pred_vs_true_bins_when_many_points(results):
    assert isinstance(charts.pred_vs_true_figure(results).data[0], go.Scattergl)
    assert isinstance(charts.pred_vs_true_figure(results, max_points=10).data[0], go.Histogram2d)


def test_confusion_figure_blanks_the_diagonal_and_is_selectable(results):
    cm = evaluate.digit_confusion(results)
    fig = charts.confusion_figure(cm)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(np.diag(z)).all() and z[7, 1] == cm[7, 1] > 0
    assert fig.data[1].mode == "markers" and len(fig.data[1].x) == 100  # click targets
    with pytest.raises(ValueError):
        charts.confusion_figure(np.zeros((3, 3)))


def test_error_histogram_and_altair_charts_serialise(results):
    charts.error_histogram(results["error"]).to_json()
    row = results.iloc[0]
    chart = charts.running_chart(row["running"], np.asarray(row["true_digits"]))
    spec = chart.to_dict()
    sizes = sorted(len(rows) for rows in spec["datasets"].values())
    assert isinstance(chart, alt.VConcatChart) and sizes == [row["length"], 2 * row["length"]]
    json.dumps(charts.headline_bar(0.03, 0.838).to_dict())


def test_png_strip_is_a_valid_png():
    from core.images import png_bytes, strip_image

    data = png_bytes(strip_image(np.full((3, 28, 28), 255, np.uint8), [False, True, False]))
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IEND" in data[-12:]
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (3 * 32, 32)
    idat = data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) == height * (1 + 3 * width)

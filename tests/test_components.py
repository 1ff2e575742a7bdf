"""The dashboard's plain helpers (links, tables, headlines, digit_row, runs_display) and chart builders,
without Streamlit."""

import json
import zlib

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from core import evaluate
from core.data.sequences import parse_lengths
from dashboard import links
from dashboard.links import SequenceSpec
from dashboard.ui import charts, digit_strip, headline_cards, run_format, table_format


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
    assert parse_lengths(links.format_lengths(lengths)) == lengths


def test_format_lengths_compacts_runs():
    assert links.format_lengths([5, 1, 2, 3, 20]) == "1-3,5,20"


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
    url = links.inspector_url(SequenceSpec("eval", index=3, lengths=(10,), per_length=5, seed=1),
                                   "checkpoints/default.pt")
    assert url.startswith("inspector?")
    assert "index=3" in url and "lengths=10" in url and "ckpt=checkpoints%2Fdefault.pt" in url


# ----------------------------------------------------------------------------- tables and metadata

def test_with_links_keeps_order_and_adds_links(results):
    worst = table_format.with_links(evaluate.worst_sequences(results, 5), lambda i: f"inspector?index={i}")
    assert list(worst.columns) == table_format.TABLE_COLUMNS + ["inspect"]
    assert worst["abs_error"].is_monotonic_decreasing
    assert worst["inspect"].tolist() == [f"inspector?index={i}" for i in worst["seq_id"]]


def test_csv_bytes_flattens_list_columns(results):
    import io

    text = table_format.csv_bytes(evaluate.as_table(results).take([0, 1, 2])).decode()
    back = pd.read_csv(io.StringIO(text))
    assert len(back) == 3 and "indices" not in back.columns
    for i in range(3):
        assert back["true_digits"][i] == " ".join(str(d) for d in results["true_digits"][i])
        assert back["digit_conf"][i] == " ".join(f"{c:.3f}" for c in results["digit_conf"][i])


@pytest.mark.parametrize("max_sum, width", [(0, 1), (40, 1), (41, 2), (90, 5), (450, 20), (9000, 500)])
def test_nice_bucket_width_keeps_the_heatmap_readable(max_sum, width):
    assert table_format.nice_bucket_width(max_sum) == width


def test_training_range():
    assert table_format.training_range({"train_lengths": [1, 10]}) == (1, 10)
    assert table_format.training_range({}) is None
    assert table_format.training_range({"train_lengths": "junk"}) is None


def test_headlines_from_the_benchmark(tmp_path):
    ckpt = tmp_path / "default.pt"
    ckpt.write_bytes(b"")
    report = {"created": "2030-01-02T00:00:00+00:00", "heads": [{
        "checkpoint": "default.pt", "digit_acc": 0.998, "original": {"mae": 0.03, "exact_acc": 0.98},
        "by_length": [{"length": 100, "mae": 0.4, "exact_acc": 0.8}, {"length": 1000, "mae": 4.0,
                                                                       "exact_acc": 0.2}]}]}
    found = headline_cards.benchmark_headlines(report, ckpt, tmp_path, "2030-01-01T00:00:00+00:00")
    assert found == {"protocol_mae": 0.03, "protocol_exact": 0.98, "digit_acc": 0.998, "mae_100": 0.4,
                     "exact_100": 0.8, "mae_1000": 4.0, "exact_1000": 0.2}
    # A benchmark older than the checkpoint describes another model: ignored.
    assert headline_cards.benchmark_headlines(report, ckpt, tmp_path, "2031-01-01T00:00:00+00:00") == {}
    assert headline_cards.benchmark_headlines(None, ckpt, tmp_path, "2030") == {}
    # The ensemble is benchmarked beside the heads, under its own key.
    ensemble = tmp_path / "ensemble.pt"
    ensemble.write_bytes(b"")
    report["ensemble"] = {"result": {"checkpoint": "ensemble.pt", "digit_acc": 0.9981, "original": {"mae": 0.02}}}
    assert headline_cards.benchmark_headlines(report, ensemble, tmp_path, "2030-01-01T00:00:00+00:00") == {
        "protocol_mae": 0.02, "digit_acc": 0.9981}
    assert headline_cards.benchmark_headlines(report, ckpt, tmp_path, "2030-01-01T00:00:00+00:00")["digit_acc"] == 0.998


def test_cnn_text_says_how_many_cnns_read_the_digits():
    assert table_format.cnn_text({"model_config": {"members": 1}}) == "one CNN"
    assert table_format.cnn_text({"model_config": {"members": 3}}).startswith("an ensemble of 3 CNNs")
    assert table_format.cnn_text(None) == "one CNN"


def test_metadata_rows_flatten_nested_dicts():
    rows = table_format.metadata_rows({"head": "lstm", "train_config": {"lr": 0.1, "seed": 0}})
    assert dict(zip(rows["field"], rows["value"])) == {"head": "lstm", "train_config.lr": "0.1",
                                                       "train_config.seed": "0"}


def test_misread_summary():
    assert digit_strip.misread_summary([1, 2, 3], [1, 2, 3]) == "Every digit was read correctly."
    assert digit_strip.misread_summary([7, 2, 4], [1, 2, 9]) == "Misread at steps 1 (7 read as 1), 3 (4 read as 9)."
    assert digit_strip.misread_summary([7] * 20, [1] * 20, limit=2).endswith("and 18 more.")


def test_digit_row_html_marks_wrong_digits():
    images = np.zeros((3, 28, 28), np.uint8)
    html = digit_strip.digit_row_html(images, [1, 2, 3], [1, 7, 3], [0.99, 0.51, 0.8])
    assert html.count("<img") == 3 and "overflow-x:auto" in html
    assert "pred 7" in html and html.count("#EF4444") == 2  # one wrong digit: frame + text
    with pytest.raises(ValueError):
        digit_strip.digit_row_html(images, [1, 2], [1, 2], [1, 1])


def test_headlines_prefer_the_benchmark_and_name_their_source():
    shown = {h.key: h for h in headline_cards.headlines({"protocol_mae": 0.05}, {"protocol_mae": 0.9, "digit_acc": 0.99})}
    assert list(shown) == list(headline_cards.HEADLINES)
    assert (shown["protocol_mae"].text, shown["protocol_mae"].source) == ("0.050", headline_cards.FROM_BENCHMARK)
    assert shown["protocol_mae"].delta == f"{0.05 - evaluate.ORIGINAL_MAE:+.3f} vs original {evaluate.ORIGINAL_MAE}"
    assert (shown["digit_acc"].text, shown["digit_acc"].source) == ("99.00%", headline_cards.MEASURED)
    assert (shown["mae_1000"].text, shown["mae_1000"].source, shown["mae_1000"].value) == ("—", headline_cards.MISSING, None)
    assert headline_cards.missing({"protocol_mae": 0.05}) == [k for k in headline_cards.HEADLINES if k != "protocol_mae"]
    assert headline_cards.verdict(0.0838) == "10.0× smaller" and headline_cards.verdict(1.676) == "2.0× larger"
    assert headline_cards.lookup({"a": {"b": float("nan")}, "c": "2"}, "a.b", "c") == 2.0


def test_eval_spec_clamps_and_stepped_moves():
    spec = links.eval_spec(99, [1, 2], 5, 3, size=10)
    assert spec == SequenceSpec("eval", index=9, lengths=(1, 2), per_length=5, seed=3)
    assert links.eval_spec(-4, [1], 5, 3, size=10).index == 0
    assert links.stepped(spec, 1, size=10).index == 9 and links.stepped(spec, -1, size=10).index == 8
    gen = SequenceSpec("gen", length=5, seed=0, target=20)
    assert links.stepped(gen, -1, size=10) == gen and links.stepped(gen, 2, size=10).seed == 2


def test_generator_spec_validates_and_shortens():
    assert links.generator_spec(5, 7, range(10)).digits is None  # every digit: no constraint in the link
    assert links.generator_spec(5, 7, [7, 1], target=20).digits == (1, 7)
    with pytest.raises(ValueError, match="at least one allowed digit"):
        links.generator_spec(5, 7, [])
    with pytest.raises(ValueError, match="lowest sum"):
        links.generator_spec(5, 7, [1], sum_min=9, sum_max=3)


def test_spec_titles_and_link_query():
    assert links.spec_title(SequenceSpec("eval", index=4), 1200, 12) == "Sequence 4 of 1,200 (length 12)"
    assert (links.spec_title(SequenceSpec("gen", length=9, seed=2, sum_min=3, sum_max=8))
            == "Generated sequence (length 9, seed 2, sum in 3–8)")
    assert links.link_query(SequenceSpec("gen", length=9, seed=2), "a.pt") == {
        "src": "gen", "length": "9", "seed": "2", "ckpt": "a.pt"}


def test_most_frequent_confusion():
    cm = np.diag(np.arange(10) + 5)
    assert table_format.most_frequent_confusion(cm) == (9, 9)  # nothing misread: the most frequent digit
    cm[7, 1], cm[4, 9] = 3, 2
    assert table_format.most_frequent_confusion(cm) == (7, 1)


def test_step_table_and_length_table(results):
    row = results.iloc[0]
    steps = table_format.step_table(row)
    assert list(steps["step"]) == list(range(1, row["length"] + 1))
    assert np.allclose(steps["added"].cumsum(), row["running"])
    assert np.allclose(steps["gap"], np.asarray(row["running"]) - np.cumsum(row["true_digits"]))
    assert "members" not in steps  # one CNN: nothing to compare
    readings = np.tile(np.arange(3), (row["length"], 1))  # three members that never agree
    readings[0] = 5  # ... except on the first digit
    with_members = table_format.step_table(row, readings)
    assert with_members["members"].iloc[0] == "5 5 5" and with_members["members"].iloc[1] == "0 1 2"
    assert list(with_members["disagree"]) == [False] + [True] * (row["length"] - 1)
    stats = table_format.length_table(results, (1, 10))
    assert list(stats["length"]) == [1, 5, 10, 20, 100]
    assert list(stats["in training range"]) == [True, True, True, False, False]
    assert not table_format.length_table(results, None)["in training range"].any()


def test_training_facts():
    facts = table_format.training_facts({"head": "lstm", "train_lengths": [1, 10], "train_config": {"epochs_cnn": 3, "seed": 4}})
    assert facts["training lengths"] == "1–10" and facts["epochs (cnn/head/joint)"] == "3/?/?" and facts["seed"] == 4
    assert table_format.training_facts(None)["head"] is None


def test_comparison_tables(results):
    better = results.assign(pred_rounded=results["true_sum"])
    by_len = table_format.compare_by_length(results, better, "A", "B")
    assert list(by_len["length"]) == [1, 5, 10, 20, 100] and (by_len["Δ MAE"] <= 0).all()
    diff = table_format.disagreements(results, better, "A", "B")
    assert len(diff) == int((~results["exact"]).sum()) and set(diff["right"]) == {"B"}


# ----------------------------------------------------------------------------- runs

def fake_run(status="running", cancelling=False):
    """A core.runs.Run-like object (display_status is "cancelling" while a cancel is under way)."""
    from types import SimpleNamespace

    return SimpleNamespace(id="r1", status=status, preset="smoke", overrides={"epochs_head": 1}, progress=0.25,
                           eta=75.0, device="cpu", world_size=1, metrics={"val_mae": 0.5}, created="now",
                           finished=None, display_status="cancelling" if cancelling else status)


def test_runs_display_words_a_run():
    assert run_format.status(fake_run()) == "running"
    assert run_format.status(fake_run(cancelling=True)) == "cancelling"
    assert run_format.progress_text(fake_run()) == "25% · ETA 1 min 15 s"
    assert "cancelling" in run_format.progress_text(fake_run(cancelling=True))
    assert run_format.eta_text(None) == "ETA unknown" and run_format.eta_text(9.6) == "ETA 10 s"
    assert run_format.run_label(fake_run()) == "r1 · smoke (epochs_head=1)"
    rows = run_format.runs_rows([fake_run(cancelling=True)])
    assert rows.loc[0, "status"] == "cancelling" and rows.loc[0, "settings"] == "epochs_head=1"


def test_launch_config_keeps_only_real_overrides():
    base = {"head": "lstm", "min_len": 1, "max_len": 10}
    form = {"preset": "smoke", "device": "cpu", "head": "lstm", "lengths": (1, 10), "lr": None, "batch_size": 64,
            "seed": None, "epochs_cnn": None, "epochs_head": 1, "epochs_joint": None, "world": 4}
    config, world = run_format.launch_config(form, base, device_count=4)
    assert "head" not in config and "min_len" not in config and world is None  # cpu: one process
    assert config["epochs_head"] == 1 and config["batch_size"] == 64
    config, world = run_format.launch_config({**form, "device": "cuda", "head": "deepsets", "lengths": (2, 8)},
                                               base, device_count=4)
    assert (config["head"], config["min_len"], config["max_len"], world) == ("deepsets", 2, 8, 4)


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
    span = (cells["sum_lo"].max() - cells["sum_lo"].min()) // 20 + 1  # every bucket in between, empty or not
    assert z.shape == (results["length"].nunique(), span)
    assert fig.data[0].x[0] == "0-19"  # buckets are labelled by their inclusive sum range


def test_pred_vs_true_bins_on_the_server_when_many_points(results):
    assert isinstance(charts.pred_vs_true_figure(results).data[0], go.Scatter)
    fig = charts.pred_vs_true_figure(results, max_points=10, bins=8)
    grid = fig.data[0]
    assert isinstance(grid, go.Heatmap)  # counts binned here: the browser gets 8 x 8 numbers, not every point
    assert np.asarray(grid.z, float).shape == (8, 8) and np.nansum(np.asarray(grid.z, float)) == len(results)
    wrong = [t for t in fig.data if t.name == "wrong"]
    assert len(wrong) == 1 and len(wrong[0].x) == min(10, int((~results["exact"]).sum()))  # errors stay visible


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


def test_heatmap_keeps_empty_sum_buckets_as_blank_columns():
    cells = pd.DataFrame({"length": [5, 5, 50], "sum_lo": [0, 40, 200], "n": [3, 4, 5], "mae": [0.1, 0.2, 0.3]})
    fig = charts.heatmap_figure(cells, 20, "mae", "MAE")
    assert list(fig.data[0].x) == [f"{lo}-{lo + 19}" for lo in range(0, 201, 20)]  # 11 columns, none skipped
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (2, 11) and np.isnan(z[0, 1]) and z[0, 2] == 0.2 and z[1, 10] == 0.3

"""The trust helpers without Streamlit: dashboard.trust, dashboard.trust_charts, the digit row's top-2
readings, links and settings with suspects set aside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from core.constants import SUSPECT_K as DEFAULT_SUSPECT_K
from core.evaluate import as_table
from dashboard import links, state
from dashboard.links import SequenceSpec
from dashboard.ui import digit_strip, trust_charts, trust_tables
from tests.test_components import fake_results


@pytest.fixture
def results() -> pd.DataFrame:
    df = fake_results(80, seed=1)
    rng = np.random.default_rng(0)
    df["p_exact"] = np.where(df["exact"], rng.uniform(0.6, 1.0, len(df)), rng.uniform(0.0, 0.7, len(df)))
    df["indices"] = [list(range(1000 + 100 * i, 1000 + 100 * i + n)) for i, n in enumerate(df["length"])]
    for row in (0, 1):  # image 7 starts two sequences
        df.at[row, "indices"] = [7] + df.at[row, "indices"][1:]
    return df


def test_below_p_exact_and_selective(results):
    below = trust_tables.below_p_exact(as_table(results), 0.5).rows
    assert (below["p_exact"] < 0.5).all() and len(below) == int((results["p_exact"] < 0.5).sum())
    figures = trust_tables.selective(results, 0.5)
    assert figures["below"] == len(below) and figures["coverage"] == pytest.approx(1 - len(below) / len(results))
    assert trust_tables.has_distribution(results) and not trust_tables.has_distribution(results.assign(p_exact=np.nan))


def test_suspect_only_ids_follow_mark_suspects(results):
    wrong = results[~results["exact"]]
    row = wrong.iloc[0]
    misread = [i for i, t, p in zip(row["indices"], row["true_digits"], row["pred_digits"]) if t != p]
    assert trust_tables.suspect_only_ids(as_table(results), misread) >= {int(row["seq_id"])}
    assert trust_tables.suspect_only_ids(as_table(results), []) == set()
    right = as_table(results[results["exact"]])
    assert trust_tables.suspect_only_ids(right, misread) == set()  # right sequences never count


def test_image_positions_and_sequences_with_image(results):
    table = as_table(results)
    pos = trust_tables.image_positions(table)
    assert len(pos) == results["length"].sum()
    first = pos[pos["seq_id"] == results["seq_id"].iloc[3]]
    assert list(first["step"]) == list(range(1, results["length"].iloc[3] + 1))
    hits = trust_tables.sequences_with_image(table, 7)
    assert sorted(hits["seq_id"]) == [0, 1]
    assert hits.set_index("seq_id").loc[0, "step"] == "1"
    assert trust_tables.usage(table, [7, 99_999]) == {7: 2, 99_999: 0}
    assert trust_tables.sequences_with_image(table, 99_999).empty


def test_thin_keeps_the_ends():
    curve = pd.DataFrame({"threshold": np.linspace(1, 0, 10_000), "coverage": np.linspace(0, 1, 10_000),
                          "risk": np.zeros(10_000)})
    thin = trust_tables.thin(curve, 100)
    assert len(thin) == 100 and thin["coverage"].iloc[0] == 0 and thin["coverage"].iloc[-1] == 1
    assert len(trust_tables.thin(curve.head(50), 100)) == 50


def test_trust_figures_and_interval_table():
    digits = {"before": {"ece": 0.04}, "after": {"ece": 0.005}}
    after = {"available": True, "sum_ece": 0.01, "exact_at_90": 0.99, "coverage_by_length": {1: 1.0, 10: 0.96},
             "interval_width_by_length": {1: 0.1, 10: 0.5}}
    before = {"available": True, "sum_ece": 0.3, "exact_at_90": 0.98}
    rows = trust_tables.trust_figures(digits, after, before)
    assert rows[0] == ("Digit ECE (test)", "0.50%", "4.00%") and rows[2][1:] == ("99.00%", "98.00%")
    none = trust_tables.trust_figures(digits, {"available": False}, {"available": False})
    assert none[1][1:] == ("—", "—") and none[0][1] == "0.50%"
    table = trust_tables.interval_table(after)
    assert list(table["length"]) == [1, 10] and list(table["mean width"]) == [0.1, 0.5]


def test_reliability_and_risk_coverage_figures(results):
    from core.evaluate import reliability

    table = reliability.reliability(results["p_exact"], results["exact"])
    fig = trust_charts.reliability_figure({"before": table, "after": table}, {"before": 0.1, "after": 0.02}, "x")
    assert [t.name for t in fig.data] == ["perfectly calibrated", "before calibration (ECE 10.00%)",
                                          "after calibration (ECE 2.00%)"]
    assert len(fig.data[1].x) == int((table["n"] > 0).sum())
    curve = reliability.risk_coverage(results)
    fig = trust_charts.risk_coverage_figure(curve, 0.5)
    kept = curve[curve["threshold"] >= 0.5]
    assert fig.data[1].x[0] == pytest.approx(kept["coverage"].iloc[-1])
    assert len(trust_charts.risk_coverage_figure(curve).data) == 1
    fig.to_json()


def test_sum_distribution_figure_marks_truth_interval_and_prediction():
    probs = np.array([0.01, 0.09, 0.8, 0.1])
    fig = trust_charts.sum_distribution_figure(40, probs, true_sum=43, interval=(41, 43), predicted=42)
    bars = fig.data[0]
    assert list(bars.x) == [40, 41, 42, 43] and bars.y[2] == 0.8
    assert list(fig.layout.xaxis.range) == [37.5, 46.5]  # padded around the interval, truth and prediction
    assert bars.marker.color[list(bars.x).index(42)] != bars.marker.color[0]
    shapes = fig.layout.shapes
    assert any(s.x0 == 40.5 and s.x1 == 43.5 for s in shapes) and any(s.x0 == s.x1 == 43 for s in shapes)


def test_digit_row_shows_the_runner_up():
    images = np.zeros((2, 28, 28), np.uint8)
    html = digit_strip.digit_row_html(images, [1, 2], [1, 7], [0.99, 0.6], second=[7, 2], second_conf=[0.004, 0.39])
    assert html.count('class="second"') == 2 and "2nd 7<br/>0.4%" in html and "2nd 2<br/>39%" in html
    assert 'class="second"' not in digit_strip.digit_row_html(images, [1, 2], [1, 7], [0.99, 0.6])
    with pytest.raises(ValueError):
        digit_strip.digit_row_html(images, [1, 2], [1, 7], [0.99, 0.6], second=[7], second_conf=[0.1])


def test_links_and_settings_carry_suspects_set_aside():
    spec = SequenceSpec("eval", index=3, lengths=(1, 2), per_length=5, seed=1, aside=30)
    assert spec.to_query()["aside"] == "30" and SequenceSpec.from_query(spec.to_query()) == spec
    assert "aside" not in SequenceSpec("eval", index=3, lengths=(1,), per_length=5, seed=1).to_query()
    assert links.eval_spec(99, [1], 5, 1, size=10, aside=7) == SequenceSpec("eval", 9, (1,), 5, 1, aside=7)
    with pytest.raises(ValueError, match="aside"):
        SequenceSpec.from_query({**spec.to_query(), "aside": "x"})
    ckpts = {"checkpoints/default.pt": Path("/m/default.pt")}
    session = {}
    state.seed_from_url(session, {"lengths": "3", "aside": "5000"}, ckpts)
    assert session[state.ASIDE] is True and session[state.SUSPECT_K] == state.MAX_SUSPECT_K
    session = {}
    state.seed_from_url(session, {"aside": "nope"}, ckpts)
    assert session[state.ASIDE] is False and session[state.SUSPECT_K] == DEFAULT_SUSPECT_K
    s = state.read_settings({**session, state.CKPT: "checkpoints/default.pt"}, ckpts)
    assert (s.suspect_k, s.aside) == (DEFAULT_SUSPECT_K, 0)
    s = state.read_settings({**session, state.ASIDE: True, state.SUSPECT_K: 12}, ckpts)
    assert (s.suspect_k, s.aside) == (12, 12) and state.eval_spec(s, 4, 10).aside == 12

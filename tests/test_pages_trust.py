"""The trust views through AppTest: Calibration, Suspect labels, the sidebar's "Set suspect images aside",
and the trust figures in Overview, Error analysis, the inspector and the generator; a regression head
(no distribution over the sum) gets a note everywhere instead of a failure."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from core.data import evaluation_sequences
from dashboard.ui.theme import COLORS
from tests.test_pages import APP, by_label, open_page, plotly, table

NOTE = "no distribution over the sum"
BIGGER = {"eval_lengths": "20,50,100", "eval_per_length": 12, "eval_seed": 3}  # 2,040 digits: some suspects are used


@pytest.fixture
def env(checkpoint_dir, registry, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(checkpoint_dir))
    return checkpoint_dir


def values(array) -> np.ndarray:
    """A plotly trace array from a chart's JSON spec (plotly sends numpy arrays as base64 'bdata')."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), dtype=array["dtype"])
    return np.asarray(array)


def frame_with(at, column: str):
    """The one dataframe shown with `column` (tables without a selection carry no element id)."""
    [found] = [d.value for d in at.dataframe if column in d.value.columns]
    return found


def shown_set(at):
    """The evaluation table the app uses for the pre-seeded set (from its own cache)."""
    from dashboard import data, state

    s = state.read_settings(at.session_state, data.list_checkpoints())
    return data.evaluation_table(s.checkpoint, s.lengths, s.per_length, s.seed, s.aside).frame()


# ----------------------------------------------------------------------------- calibration

def test_calibration_view_reliability_risk_coverage_and_threshold(env):
    at = open_page("views/calibration.py")
    assert [t.value for t in at.title] == ["Calibration"]
    digits = plotly(at, "digit_reliability")
    assert [d["name"].split(" (")[0] for d in digits["data"][1:]] == ["before calibration", "after calibration"]
    assert "ECE" in digits["data"][2]["name"]
    sums = plotly(at, "sum_reliability")
    assert len(sums["data"]) == 3 and all(values(d["y"]).max() <= 1 for d in sums["data"][1:])
    for label in ("Digit ECE", "Sum ECE", "AURC", "Exact-match at 90% coverage"):
        assert by_label(at.metric, label).value.endswith("%") or label == "AURC"
    assert set(frame_with(at, "interval coverage")["length"]) == {1, 2, 3, 12}

    df = shown_set(at)
    slider = by_label(at.slider, "p_exact threshold")
    assert slider.value == 0.9
    for threshold in (0.0, 1.0, 0.9):
        by_label(at.slider, "p_exact threshold").set_value(threshold).run()
        assert not at.exception
        kept = (df["p_exact"] >= threshold).mean()  # by hand, not through core's at_threshold
        assert by_label(at.metric, "Coverage").value == f"{kept:.1%}"
        marker = plotly(at, "risk_coverage")["data"][1]
        assert marker["name"] == f"p_exact ≥ {threshold:.2f}"
    # AURC by hand: keep the k surest sequences for every k, average the error rate of what is kept.
    wrong = ~df.sort_values("p_exact", ascending=False, kind="stable")["exact"].to_numpy()
    risks = [wrong[:k].mean() for k in range(1, len(wrong) + 1)]
    assert by_label(at.metric, "AURC").value == f"{np.mean(risks):.4f}"


def test_calibration_sends_the_threshold_to_error_analysis(env):
    at = open_page("views/calibration.py", **BIGGER)
    by_label(at.slider, "p_exact threshold").set_value(0.99).run()
    below = int((shown_set(at)["p_exact"] < 0.99).sum())
    [send] = [b for b in at.button if b.label.startswith("Show the")]
    assert send.label == f"Show the {below:,} sequences below 0.99 in Error analysis"
    assert below > 0  # lengths 20-100: some sequences are less sure than 0.99
    send.click().run()
    assert not at.exception and [t.value for t in at.title] == ["Error analysis"]
    assert by_label(at.checkbox, "p_exact below").value is True
    assert by_label(at.slider, "p_exact threshold").value == 0.99
    assert any(c.value.startswith(f"{below:,} of 36 sequences") for c in at.caption)
    assert (table(at, "worst_table")["p_exact"] < 0.99).all()


# ----------------------------------------------------------------------------- suspect labels

def test_suspect_grid_shows_k_images_and_lists_the_sequences_of_one(env):
    at = open_page("views/suspects.py", **BIGGER)
    assert [t.value for t in at.title] == ["Suspect labels"]
    buttons = [b for b in at.button if b.label.startswith("#")]
    assert len(buttons) == 30 and len(at.get("image")) == 30
    assert at.info and "Click an image" in at.info[0].value
    images = [int(b.label[1:]) for b in buttons]
    seqs = evaluation_sequences([20, 50, 100], 12, 3)  # the same set, without any model
    holds = {i: [s for s in range(len(seqs)) if i in seqs.indices[s, : seqs.lengths[s]]] for i in images}
    assert 0 < sum(1 for v in holds.values() if v) < 30
    assert f"uses **{sum(1 for v in holds.values() if v)}** of these 30 images" in at.caption[1].value

    image = next(i for i in images if holds[i])
    by_label(at.button, f"#{image}").click().run()
    assert not at.exception
    listed = frame_with(at, "step")
    assert sorted(listed["seq_id"]) == holds[image]
    assert listed["inspect"].str.startswith("inspector?src=eval").all()
    assert any(h.value.startswith(f"Test image {image}: given") for h in at.subheader)
    unused = next(i for i in images if not holds[i])  # 36 sequences use few of the 30 suspects
    by_label(at.button, f"#{unused}").click().run()
    assert f"No sequence of the evaluation set contains test image {unused}." in at.info[0].value

    by_label(at.slider, "How many images").set_value(10).run()
    assert len([b for b in at.button if b.label.startswith("#")]) == 10 and len(at.get("image")) == 10


def test_set_suspects_aside_rebuilds_the_set_without_them(env):
    at = open_page("views/suspects.py", **BIGGER)
    top = [int(b.label[1:]) for b in at.button if b.label.startswith("#")]  # the 30 most suspect
    before = shown_set(at)
    by_label(at.sidebar.toggle, "Set suspect images aside").set_value(True).run()
    assert not at.exception
    after = shown_set(at)
    assert len(after) == len(before) == 36
    used = set(np.concatenate([np.asarray(v) for v in after["indices"]]).tolist())
    assert not used & set(top)  # no sequence contains a suspect image
    assert used != set(np.concatenate([np.asarray(v) for v in before["indices"]]).tolist())
    assert "uses **0** of these 30 images" in at.caption[1].value
    by_label(at.button, f"#{top[0]}").click().run()
    assert "(it is set aside" in at.info[0].value
    # The other views follow, and their links carry the switch.
    at.switch_page("views/errors.py").run()
    assert not at.exception and table(at, "worst_table")["inspect"].str.contains("aside=30").all()
    assert any("30 most suspect images set aside" in c.value for c in at.caption)


def test_a_link_with_aside_seeds_the_switch(env):
    at = AppTest.from_file(APP, default_timeout=180)  # no pre-seeded set: the link decides
    at.query_params.update({"src": "eval", "lengths": "20", "per_length": "5", "seed": "1", "index": "2",
                            "aside": "40"})
    at.switch_page("views/inspector.py").run()
    assert not at.exception
    assert by_label(at.sidebar.toggle, "Set suspect images aside").value is True
    assert by_label(at.sidebar.number_input, "Suspects (k)").value == 40
    assert at.query_params["aside"] == "40" and at.query_params["index"] == "2"
    by_label(at.sidebar.toggle, "Set suspect images aside").set_value(False).run()
    assert "aside" not in at.query_params and at.query_params["index"] == "2"


# ----------------------------------------------------------------------------- the other views

def test_errors_marks_suspect_only_sequences_and_filters_on_p_exact(env):
    at = open_page("views/errors.py", eval_suspect_k=1000, **BIGGER)
    by_label(at.checkbox, "Errors only").check().run()
    by_label(at.slider, "How many").set_value(200).run()
    assert not at.exception
    worst = table(at, "worst_table")
    assert {"p_exact", "suspect label?"} <= set(worst.columns)
    [caption] = [c.value for c in at.caption if "most suspect labels" in c.value]
    assert int(re.search(r"\*\*(\d+)\*\*", caption).group(1)) == int(worst["suspect label?"].sum())
    assert f"of the {len(worst)} wrong sequences" in caption and "1000 most suspect" in caption
    by_label(at.checkbox, "Errors only").uncheck().run()
    by_label(at.checkbox, "p_exact below").check().run()
    by_label(at.slider, "p_exact threshold").set_value(0.999).run()
    assert not at.exception
    expected = int((shown_set(at)["p_exact"] < 0.999).sum())
    assert expected > 0 and any(c.value.startswith(f"{expected:,} of 36 sequences") for c in at.caption)
    assert (table(at, "worst_table")["p_exact"] < 0.999).all()


def test_inspector_shows_p_sum_and_top2_readings(env):
    query = {"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3", "index": "40"}
    at = open_page("views/inspector.py", query=query)
    row = shown_set(at).set_index("seq_id").loc[40]
    chart = plotly(at, "sum_distribution")
    x, y = values(chart["data"][0]["x"]), values(chart["data"][0]["y"])
    assert 0.9 < y.sum() <= 1.0 + 1e-9
    highlighted = [i for i, c in enumerate(chart["data"][0]["marker"]["color"]) if c == COLORS["pred"]]
    assert [x[i] for i in highlighted] == [row["pred_rounded"]]  # the predicted sum's bar
    shapes = chart["layout"]["shapes"]
    assert {"x0": row["interval_lo"] - 0.5, "x1": row["interval_hi"] + 0.5} in [
        {"x0": s["x0"], "x1": s["x1"]} for s in shapes]
    assert any(s["x0"] == s["x1"] == row["true_sum"] for s in shapes)  # the true sum's line
    assert by_label(at.metric, "95% interval").value == f"{row['interval_lo']}–{row['interval_hi']}"
    assert by_label(at.metric, "P(exact)").value == f"{row['p_exact']:.1%}"
    assert at.get("html")[0].value.count("2nd ") == 12


def test_generator_and_overview_show_the_trust_figures(env):
    at = open_page("views/generator.py")
    assert re.fullmatch(r"\d+–\d+", by_label(at.metric, "95% interval").value)
    assert by_label(at.metric, "P(exact)").value.endswith("%")
    at = open_page("views/overview.py")
    for label in ("Digit ECE (test)", "Sum ECE (p_exact)", "Exact-match at 90% coverage"):
        metric = by_label(at.metric, label)
        assert metric.value.endswith("%") and metric.proto.delta.startswith("uncalibrated ")
    digit = by_label(at.metric, "Digit ECE (test)")
    assert float(digit.value[:-1]) < float(digit.proto.delta.split()[-1][:-1])  # calibration helps digits


# ----------------------------------------------------------------------------- a regression head

def test_a_head_without_a_distribution_gets_a_note(tmp_path, registry, monkeypatch, make_checkpoint):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    make_checkpoint(folder / "default.pt", head="deepsets")
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(folder))
    small = {"eval_lengths": "2,5", "eval_per_length": 6}
    at = open_page("views/calibration.py", **small)
    assert plotly(at, "digit_reliability") and NOTE in at.info[0].value
    assert not [c for c in at.get("plotly_chart") if "risk_coverage" in (c.proto.id or "")]
    at = open_page("views/inspector.py", **small)
    assert NOTE in at.info[0].value and not [c for c in at.get("plotly_chart") if "sum_distribution" in (c.proto.id or "")]
    at = open_page("views/generator.py", **small)
    assert any(NOTE in c.value for c in at.caption)
    at = open_page("views/overview.py", **small)
    assert by_label(at.metric, "Sum ECE (p_exact)").value == "—" and any(NOTE in c.value for c in at.caption)
    at = open_page("views/errors.py", **small)
    assert by_label(at.checkbox, "p_exact below").disabled and "p_exact" not in table(at, "worst_table")
    at = open_page("views/suspects.py", **small)
    assert len([b for b in at.button if b.label.startswith("#")]) == 30


def test_no_checkpoint_gives_a_message_on_the_trust_views(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(tmp_path))
    for page in ("views/calibration.py", "views/suspects.py"):
        at = open_page(page)
        assert at.error and "No checkpoint found" in at.error[0].value and not at.metric

"""Label decisions in the dashboard: the buttons on Suspect labels and in the inspector, badges, the
sidebar's "Apply my label decisions", the Overview's figures with and without them, and the decisions
table with its CSV and undo."""

from __future__ import annotations

import io

import pandas as pd
import pytest

from core.data import load_decisions, record_decision
from dashboard import state
from tests.test_pages import by_label, env, open_page  # noqa: F401 - env is a fixture


@pytest.fixture
def decisions_dir(tmp_path, monkeypatch):
    folder = tmp_path / "decisions"
    monkeypatch.setenv("DIGITSUM_DECISIONS_DIR", str(folder))
    return folder


def buttons(at, label: str) -> list:
    return [b for b in at.button if b.label == label]


def test_suspect_labels_offer_every_decision_and_undo(env, decisions_dir):  # noqa: F811
    at = open_page("views/suspects.py")
    first = int(at.session_state["sus_k"] and buttons(at, "Relabel")[0].key.split("_")[1])
    relabel_box = next(s for s in at.selectbox if s.key == f"dec_{first}_label")
    target = relabel_box.options[-1]
    relabel_box.set_value(target).run()
    next(b for b in buttons(at, "Relabel") if b.key == f"dec_{first}_relabel").click().run()
    assert not at.exception
    standing = load_decisions("test")
    assert standing["index"].tolist() == [first] and standing["action"].tolist() == ["relabel"]
    assert int(standing["label"].iloc[0]) == int(target)
    assert any(f"relabelled to {target}" in m.value for m in at.markdown)  # the badge under the image
    next(b for b in buttons(at, "Exclude") if b.key == f"dec_{first}_exclude").click().run()
    assert load_decisions("test")["action"].tolist() == ["exclude"]
    next(b for b in buttons(at, "Undo") if b.key == f"dec_{first}_clear").click().run()
    assert load_decisions("test").empty and not at.exception
    next(b for b in buttons(at, "Label is right") if b.key == f"dec_{first}_keep").click().run()
    assert load_decisions("test")["action"].tolist() == ["keep"]


def test_the_inspector_decides_about_a_digit_and_badges_it(env, decisions_dir):  # noqa: F811
    query = {"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3", "index": "40"}
    at = open_page("views/inspector.py", query=query)
    step = by_label(at.selectbox, "Digit").value
    image = int(by_label(at.selectbox, "Digit").format_func(step).split("test image ")[1].split(",")[0])
    [exclude] = [b for b in buttons(at, "Exclude") if b.key.startswith("insp_dec_")]
    exclude.click().run()
    assert not at.exception and load_decisions("test").set_index("index").loc[image, "action"] == "exclude"
    assert "excl." in at.get("html")[0].proto.body  # the digit strip's badge


def test_applied_decisions_change_the_truth_and_the_overview_shows_both(env, decisions_dir):  # noqa: F811
    at = open_page("views/overview.py")
    assert not at.sidebar.toggle[-1].value and at.sidebar.toggle[-1].disabled  # nothing decided yet
    s = state.read_settings(at.session_state, {at.session_state[state.CKPT]: None})
    from dashboard import data

    table = data.evaluation_table(data.list_checkpoints()[at.session_state[state.CKPT]], s.lengths, s.per_length,
                                  s.seed)
    image = int(table.digits["indices"][0])
    record_decision("test", image, "exclude")
    at.run()
    toggle = by_label(at.sidebar.toggle, "Apply my label decisions (1)")
    toggle.set_value(True).run()
    assert not at.exception and any("Computed with your label decisions" in i.value for i in at.info)
    decided = data.evaluation_table(data.list_checkpoints()[at.session_state[state.CKPT]], s.lengths, s.per_length,
                                    s.seed, decided=True)
    assert image in table.digits["indices"] and image not in decided.digits["indices"]  # used nowhere
    shown = int(by_label(at.metric, "Sequences").value.replace(",", ""))
    assert shown == len(decided)
    by_label(at.button, "Measure the headline figures with your 1 decisions (a few seconds)").click().run()
    [both] = [t for t in at.table if "with your 1 decisions" in t.value.columns]
    assert list(both.value.columns) == ["labels as given", "with your 1 decisions"]
    assert both.value.loc["CNN digit accuracy (test)", "with your 1 decisions"] != "—"


def test_the_decisions_table_lists_exports_and_undoes(env, decisions_dir, monkeypatch):  # noqa: F811
    at = open_page("views/decision_log.py")
    assert "No decisions yet" in at.info[0].value
    record_decision("test", 4201, "relabel", 7)
    record_decision("test", 2462, "exclude")
    at = open_page("views/decision_log.py")
    assert by_label(at.metric, "Relabelled").value == "1" and by_label(at.metric, "Excluded").value == "1"
    shown = at.dataframe[0].value
    assert shown["image"].tolist() == [2462, 4201]  # newest first
    assert shown.set_index("image").loc[4201, "given"] == 1  # MNIST's own label, unchanged
    from dashboard.ui import table_format

    csv = pd.read_csv(io.BytesIO(table_format.plain_csv(shown.drop(columns=["picture"]))))
    assert csv["decision"].tolist() == ["exclude", "relabel"]

"""The Slices and Digit map views and the Training page's checkpoint comparison through AppTest, and the
slice filter they share: a slice chosen in Slices narrows Error analysis (tables, charts, CSV) and the
inspector's Previous / Next / Jump to worst until Clear, and is dropped when the sidebar's set changes.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.media_file_manager import MediaFileManager

from core import evaluate, load_predictor
from core.evaluate import compare_slices, digit_disagreements, find_error_slices
from dashboard import data, state
from tests.test_pages import by_label, open_page, plotly, table
from tests.test_slices import check_slices
from tests.test_training_page import click, spawned, stage  # noqa: F401 - a fixture
from tests.test_training_page import open_page as open_training

BIGGER = {"eval_lengths": "20,50,100", "eval_per_length": 12, "eval_seed": 3}  # 36 sequences, some wrong
SLICED = {"eval_lengths": "10,50,100", "eval_per_length": 100, "eval_seed": 0}  # 300: enough errors for held-out slices


@pytest.fixture
def env(checkpoint_dir, registry, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(checkpoint_dir))
    return checkpoint_dir


@pytest.fixture
def csv_files(monkeypatch) -> dict:
    """{file name: the bytes a download button would send}, for the deferred (callable) downloads."""
    found, real = {}, MediaFileManager.add_deferred

    def record(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        found[file_name] = data_callable
        return real(self, data_callable, mimetype, coordinates, file_name=file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add_deferred", record)
    return found


def current(at):
    """(settings, the evaluation table) of the app's pre-seeded set, from the app's own caches."""
    s = state.read_settings(at.session_state, data.list_checkpoints())
    return s, data.evaluation_table(s.checkpoint, s.lengths, s.per_length, s.seed, s.aside).frame()


def expected_slices(at, tolerance: int = 0, min_size=None) -> pd.DataFrame:
    s, df = current(at)
    suspects = data.suspects(s.checkpoint)["index"].to_numpy()[: s.suspect_k]
    return find_error_slices(df, tolerance=tolerance, min_size=min_size, suspects=suspects)


def notices(at) -> list[str]:
    return [i.value for i in at.info if i.value.startswith("Filtered to slice:")]


# ----------------------------------------------------------------------------- the helpers

def test_slice_helpers_filter_step_and_drop_a_slice_of_another_set(tmp_path):
    checkpoint = tmp_path / "a.pt"
    checkpoint.write_bytes(b"weights")
    s = state.Settings(checkpoint, "a.pt", [5, 6], 10, 0, None)
    session: dict = {}
    state.choose_slice(session, s, "length = 5", [7, 3, 9])
    chosen = state.active_slice(session, s)
    assert chosen["seq_ids"] == [3, 7, 9] and chosen["rule"] == "length = 5"
    table = evaluate.as_table(pd.DataFrame({"seq_id": range(12), "true_digits": [[i] for i in range(12)]}))
    assert list(state.apply_slice(table, chosen).rows["seq_id"]) == [3, 7, 9]
    assert state.apply_slice(table, chosen).digits["true_digits"].tolist() == [3, 7, 9]
    assert state.apply_slice(table, None) is table
    assert [state.slice_step([3, 7, 9], c, d) for c, d in ((3, 1), (7, -1), (9, 1), (3, -1), (5, 1), (0, -1))] == \
        [7, 3, 9, 3, 7, 0]
    other = state.Settings(checkpoint, "a.pt", [5, 6], 11, 0, None)  # another evaluation set
    assert state.active_slice(session, other) is None and state.SLICE not in session
    state.choose_slice(session, s, "r", [1])
    replaced = tmp_path / "new.pt"
    replaced.write_bytes(b"other weights")
    replaced.replace(checkpoint)  # the same path, a new file: its suspects, so its set, may differ
    assert state.active_slice(session, s) is None
    state.choose_slice(session, s, "r", [1])
    state.clear_slice(session)
    assert state.SLICE not in session and session[state.SLICE_WIDGETS] == 1


# ----------------------------------------------------------------------------- slices

def test_slices_view_shows_the_slices_and_its_controls_recompute_them(env):
    at = open_page("views/slice_finder.py", **SLICED)
    assert [t.value for t in at.title] == ["Slices"]
    expected = expected_slices(at)
    assert len(expected) > 1, "the shipped model makes too few errors on this set to form slices"
    shown = table(at, "slice_table_0")
    assert list(shown.columns) == ["slice", "size", "held_out_size", "error_rate", "ci_low", "ci_high", "error_coverage",
                                   "p_value"]  # no seq_ids to the browser
    np.testing.assert_allclose(shown["ci_low"], expected["ci_low"])
    s, df = current(at)  # and what it shows holds up by hand: rule texts, held-out rates, intervals, tests
    check_slices(df, expected, suspects=data.suspects(s.checkpoint)["index"].to_numpy()[: s.suspect_k])
    assert any("Rates are held out" in c.value for c in at.caption)
    assert list(shown["slice"]) == list(expected["slice"]) and list(shown["size"]) == list(expected["size"])
    np.testing.assert_allclose(shown["error_rate"], expected["error_rate"])
    bars = plotly(at, "slice_bars_0")["data"][0]
    assert len(bars["y"]) == min(15, len(expected)) and bars["y"][0] == f"1. {expected['slice'].iloc[0]}"
    assert not notices(at)

    by_label(at.number_input, "Tolerance").set_value(1000).run()  # no sum is that far off: no errors, no slice
    assert not at.exception and "No slice stands out" in at.success[0].value
    by_label(at.number_input, "Tolerance").set_value(0).run()
    by_label(at.number_input, "Minimum slice size").set_value(12).run()
    assert not at.exception
    assert list(table(at, "slice_table_0")["slice"]) == list(expected_slices(at, min_size=12)["slice"])
    assert (table(at, "slice_table_0")["held_out_size"] >= 12).all()


def test_a_chosen_slice_filters_error_analysis_its_csv_and_the_inspector_until_clear(env, csv_files):
    at = open_page("views/slice_finder.py", **SLICED)
    expected = expected_slices(at)
    pick = expected.iloc[1]  # not the first: the row, not a default, decides
    ids = sorted(int(i) for i in pick["seq_ids"])
    by_label(at.selectbox, "Filter the other views to").set_value(pick["slice"]).run()
    assert not at.exception
    assert at.session_state[state.SLICE]["seq_ids"] == ids
    assert notices(at) == [f"Filtered to slice: `{pick['slice']}` ({len(ids):,} sequences, chosen in Slices)"]

    at.switch_page("views/errors.py").run()
    assert not at.exception and len(notices(at)) == 1
    assert any(c.value.startswith(f"{len(ids):,} of {len(ids):,} sequences") for c in at.caption)
    by_label(at.slider, "How many").set_value(200).run()
    worst = table(at, "worst_table")
    assert sorted(worst["seq_id"]) == ids
    # Links still name rows of the whole set (not positions in the slice).
    assert all(re.search(rf"[?&]index={i}(&|$)", link) for i, link in zip(worst["seq_id"], worst["inspect"]))
    csv = pd.read_csv(io.BytesIO(csv_files["digitsum_filtered.csv"]()))
    assert sorted(csv["seq_id"]) == ids

    at.switch_page("views/inspector.py").run()  # no link: the slice's worst sequence
    assert not at.exception and len(notices(at)) == 1
    _, df = current(at)
    inside = df[df["seq_id"].isin(ids)]
    worst_in_slice = int(inside.loc[inside["abs_error"] == inside["abs_error"].max(), "seq_id"].iloc[0])
    assert at.query_params["index"] == str(worst_in_slice)
    by_label(at.button, "Next").click().run()
    after = [i for i in ids if i > worst_in_slice]
    assert at.query_params["index"] == str(after[0] if after else worst_in_slice)
    by_label(at.button, "Previous").click().run()
    assert at.query_params["index"] == str(worst_in_slice)

    by_label(at.button, "Clear").click().run()
    assert not at.exception and not notices(at) and state.SLICE not in at.session_state
    by_label(at.button, "Next").click().run()
    assert at.query_params["index"] == str(min(worst_in_slice + 1, len(df) - 1))  # the whole set again
    at.switch_page("views/errors.py").run()
    assert not notices(at) and any(c.value.startswith(f"{len(df)} of {len(df)} sequences") for c in at.caption)


def test_a_slice_is_dropped_when_the_sidebar_set_changes(env):
    at = open_page("views/slice_finder.py", **SLICED)
    rule = expected_slices(at)["slice"].iloc[0]
    by_label(at.selectbox, "Filter the other views to").set_value(rule).run()
    assert notices(at)
    by_label(at.sidebar.number_input, "Per length").set_value(101).run()
    assert not at.exception and not notices(at) and state.SLICE not in at.session_state
    assert by_label(at.selectbox, "Filter the other views to").value == "(the whole evaluation set)"


# ----------------------------------------------------------------------------- comparison

def test_comparison_lists_the_slices_that_differ_and_the_digits_one_reads_right(spawned, tmp_path,  # noqa: F811
                                                                                 make_checkpoint):
    base = tmp_path / "checkpoints" / "base.pt"
    make_checkpoint(base, seed=0)
    run = stage("succeeded", progress=1.0)
    make_checkpoint(run.run_dir / "model.pt", seed=1)
    from core.runs import registry as db

    with db.tx() as conn:
        db.update(conn, run.id, checkpoint=str(run.run_dir / "model.pt"))
    at = open_training(eval_lengths="1-3", eval_per_length=20, eval_seed=0)
    click(at, "Compare with the selected checkpoint")
    assert any(m.value.startswith("**Where they differ**") for m in at.markdown)
    a, b = load_predictor(base), load_predictor(run.run_dir / "model.pt")
    table_a = evaluate.evaluation_set(a, [1, 2, 3], 20, 0)
    table_b = evaluate.evaluation_set(b, [1, 2, 3], 20, 0)
    compared = compare_slices(table_a, table_b).head(10)
    assert not compared.empty  # two untrained models err differently
    [shown] = at.table
    assert list(shown.value.index) == list(compared["slice"])
    assert "seq_ids" not in shown.value.columns and "difference (B − A)" in shown.value.columns
    digits = digit_disagreements(a, b)
    a_right = digits[digits["pred_a"] == digits["label"]]
    b_right = digits[digits["pred_b"] == digits["label"]]
    assert len(a_right) + len(b_right) == len(digits) > 0
    assert any(c.value.startswith(f"A right, B wrong: {len(a_right):,}") for c in at.caption)
    assert any(c.value.startswith(f"B right, A wrong: {len(b_right):,}") for c in at.caption)
    grids = at.get("image")
    assert [len(g.captions) for g in grids] == [min(len(x), 40) for x in (a_right, b_right) if len(x)]
    first = a_right.iloc[0] if len(a_right) else b_right.iloc[0]
    assert grids[0].captions[0].startswith(f"#{int(first['index'])}: {int(first['label'])}, read ")

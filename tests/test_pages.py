"""Every dashboard page through Streamlit's AppTest: no exception, key elements, filters and links.

The dashboard reads checkpoints from DIGITSUM_CHECKPOINT_DIR: a temp dir holding a copy of the
shipped checkpoints/default.pt (or, before one exists, a smoke-preset model trained once per test
session). A small evaluation set is pre-seeded in session state to keep each run fast.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

REPO = Path(__file__).resolve().parent.parent
APP = str(REPO / "dashboard" / "app.py")
SMALL_SET = {"eval_lengths": "1-3,12", "eval_per_length": 12, "eval_seed": 3}


def dashboard_checkpoint_dir(tmp_path_factory) -> Path:
    """A checkpoint folder for dashboard tests, made once per pytest session (shared by modules)."""
    folder = tmp_path_factory.getbasetemp() / "dashboard_checkpoints"
    target = folder / "default.pt"
    if not target.exists():
        folder.mkdir(exist_ok=True)
        # DIGITSUM_TEST_CHECKPOINT: reuse a checkpoint you already have (handy while iterating).
        shipped = Path(os.environ.get("DIGITSUM_TEST_CHECKPOINT") or REPO / "checkpoints" / "default.pt")
        if shipped.exists():
            shutil.copy2(shipped, target)
        else:  # before issue 3 ships its checkpoint: a smoke model (< 60 s on the CPU)
            log = folder / "train.log"
            with open(log, "wb") as out:
                done = subprocess.run([sys.executable, "-m", "scripts.train", "--preset", "smoke", "--out",
                                       str(target), "--no-progress"], cwd=REPO, stdout=out,
                                      stderr=subprocess.STDOUT, timeout=900)
            assert done.returncode == 0, f"smoke training failed, see {log}"
    return folder


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    return dashboard_checkpoint_dir(tmp_path_factory)


@pytest.fixture
def env(checkpoint_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(checkpoint_dir))
    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(tmp_path / "runs"))  # no finished runs to list
    return checkpoint_dir


def open_page(page: str, query: dict | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in {**SMALL_SET, **session}.items():
        at.session_state[key] = value
    at.query_params.update(query or {})
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def by_label(elements, label: str):
    [found] = [e for e in elements if e.label == label]
    return found


def table(at: AppTest, key: str):
    [found] = [d for d in at.dataframe if d.proto.id and key in d.proto.id]
    return found.value


# ----------------------------------------------------------------------------- overview

def test_overview_headlines_metadata_and_sidebar(env):
    at = open_page("pages/overview.py")
    assert [t.value for t in at.title] == ["Overview"]
    labels = [m.label for m in at.metric]
    for expected in ("MAE, original protocol", "CNN digit accuracy (test)", "MAE at length 1000",
                     "Sequences", "Exact-match"):
        assert expected in labels
    assert by_label(at.metric, "Sequences").value == "48"  # 4 lengths x 12 from the pre-seeded set
    assert any("0.838" in c.value for c in at.caption)  # the original project beside ours
    assert any(h.value == "Training metadata" for h in at.subheader)
    assert by_label(at.sidebar.selectbox, "Checkpoint").value.endswith("default.pt")
    assert not at.error


def test_overview_measures_missing_headlines(env, monkeypatch):
    from core import evaluate

    # The real protocol is 20,000 sequences; a few hundred exercise the same path quickly.
    monkeypatch.setitem(evaluate.ORIGINAL_PROTOCOL, "count", 200)
    monkeypatch.setattr(evaluate, "HEADLINE_EXTRAPOLATION", {100: 5, 1000: 2})
    at = open_page("pages/overview.py")
    # The button appears only while a figure is missing (neither in the metadata nor a benchmark).
    for measure in [b for b in at.button if b.label.startswith("Measure the")]:
        measure.click().run()
    assert not at.exception and not [b for b in at.button if b.label.startswith("Measure the")]
    assert all(m.value != "—" for m in at.metric)
    assert by_label(at.metric, "Exact-match at length 1000").value.endswith("%")
    assert any("smaller" in c.value or "larger" in c.value for c in at.caption)


def test_sidebar_change_changes_the_evaluation_set(env):
    at = open_page("pages/overview.py")
    by_label(at.sidebar.text_input, "Lengths").set_value("5").run()
    assert not at.exception
    assert by_label(at.metric, "Sequences").value == "12"
    by_label(at.sidebar.text_input, "Lengths").set_value("5-x").run()
    assert at.error and "bad length" in at.error[0].value and not at.exception
    by_label(at.sidebar.text_input, "Lengths").set_value("1-5000").run()  # far too big to evaluate
    assert at.error and "too large" in at.error[0].value and not at.exception


def test_no_checkpoint_gives_a_message_not_a_traceback(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(tmp_path))
    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(tmp_path / "runs"))
    for page in ("pages/overview.py", "pages/errors.py", "pages/inspector.py", "pages/generator.py"):
        at = open_page(page)
        assert at.error and "No checkpoint found" in at.error[0].value


# ----------------------------------------------------------------------------- error analysis

def test_errors_page_charts_and_filters_drive_the_table(env):
    at = open_page("pages/errors.py")
    assert [t.value for t in at.title] == ["Error analysis"]
    assert len(at.caption) >= 6  # a one-line reading guide under each chart
    worst = table(at, "worst_table")
    assert set(worst["length"]) > {12}
    assert worst["inspect"].str.startswith("inspector?src=eval").all()

    by_label(at.select_slider, "Length range").set_value((12, 12)).run()
    assert not at.exception
    narrowed = table(at, "worst_table")
    assert set(narrowed["length"]) == {12} and not narrowed.equals(worst)

    by_label(at.checkbox, "Errors only").check().run()
    assert not at.exception
    errors = table(at, "worst_table") if any("worst_table" in (d.proto.id or "") for d in at.dataframe) else None
    if errors is not None:  # a strong model may make no errors at length 12 in 12 tries
        assert not errors["exact"].any()
    else:
        assert at.warning and "No sequences match" in at.warning[0].value


def test_confusion_selector_lists_matching_sequences(env):
    at = open_page("pages/errors.py")
    # By default the selectors show the most frequent confusion; its sequences are listed.
    true, read = by_label(at.selectbox, "True digit").value, by_label(at.selectbox, "Read as").value
    summary = next(m.value for m in at.markdown if "sequences contain" in m.value)
    count = int(summary.split("**")[1].replace(",", ""))
    if true != read:
        assert count > 0 and f"a {true} that the CNN read as {read}" in summary
        assert len(at.dataframe[0].value) == min(count, 200)  # the listing precedes the worst table
    by_label(at.selectbox, "Read as").set_value(true).run()
    assert not at.exception
    assert any(f"correctly read {true}" in m.value for m in at.markdown)


def test_csv_download_and_bucket_width(env):
    at = open_page("pages/errors.py")
    by_label(at.number_input, "Sum bucket width").set_value(25).run()
    assert not at.exception
    assert any(b.label.startswith("Download the filtered table") for b in at.get("download_button"))


# ----------------------------------------------------------------------------- inspector

def test_inspector_opens_a_link_and_steps(env):
    query = {"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3", "index": "40"}
    at = open_page("pages/inspector.py", query=query)
    assert at.query_params["index"] == "40" and at.query_params["src"] == "eval"
    assert by_label(at.metric, "Misread digits").value.endswith("of 12")
    assert any("Sequence 40 of 48" in h.value for h in at.subheader)
    assert len(at.get("html")) == 1  # the digit row
    by_label(at.button, "Next").click().run()
    assert at.query_params["index"] == "41" and not at.exception
    by_label(at.button, "Previous").click().run()
    by_label(at.button, "Previous").click().run()
    assert at.query_params["index"] == "39"
    by_label(at.button, "Jump to worst").click().run()
    worst = table(open_page("pages/errors.py"), "worst_table")  # same set, same ranking
    assert not at.exception and at.query_params["index"] == str(worst["seq_id"].iloc[0])


def test_inspector_bad_link_and_generator_link(env):
    at = open_page("pages/inspector.py", query={"src": "eval", "index": "abc"})
    assert at.warning and "cannot be opened" in at.warning[0].value and not at.exception
    at = open_page("pages/inspector.py", query={"src": "gen", "length": "30", "seed": "5",
                                                 "target": "0"})
    assert by_label(at.metric, "True sum").value == "0"
    at = open_page("pages/inspector.py", query={"src": "gen", "length": "3", "seed": "5",
                                                 "target": "99"})
    assert at.error and "impossible" in at.error[0].value and not at.exception


# ----------------------------------------------------------------------------- generator

def test_generator_constraints_and_messages(env):
    at = open_page("pages/generator.py")
    assert by_label(at.metric, "True sum").value is not None
    by_label(at.number_input, "Length").set_value(40).run()
    by_label(at.radio, "Sum constraint").set_value("target sum").run()
    by_label(at.number_input, "Target sum").set_value(360).run()
    assert not at.exception and by_label(at.metric, "True sum").value == "360"
    assert by_label(at.metric, "Misread digits").value.endswith("of 40")
    by_label(at.number_input, "Target sum").set_value(361).run()  # above 9 x 40
    assert at.error and "Cannot build" in at.error[0].value and not at.exception
    by_label(at.radio, "Sum constraint").set_value("none").run()
    by_label(at.multiselect, "Allowed digits").set_value([]).run()
    assert at.error and "at least one allowed digit" in at.error[0].value
    by_label(at.multiselect, "Allowed digits").set_value([0]).run()
    assert by_label(at.metric, "True sum").value == "0"
    by_label(at.button, "New random").click().run()
    assert not at.exception

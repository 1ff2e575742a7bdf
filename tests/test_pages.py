"""Every dashboard view through Streamlit's AppTest on dashboard/app.py (the router), with real
assertions on what each view shows.

The dashboard reads checkpoints from DIGITSUM_CHECKPOINT_DIR: conftest's `checkpoint_dir`, a temp
folder holding a copy of the shipped checkpoints/default.pt. A small evaluation set is pre-seeded in
session state to keep each run fast.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest
from streamlit.testing.v1 import AppTest

from core.paths import REPO_ROOT as REPO
from dashboard import state

APP = str(REPO / "dashboard" / "app.py")
SMALL_SET = {"eval_lengths": "1-3,12", "eval_per_length": 12, "eval_seed": 3}
VIEWS = ("views/overview.py", "views/errors.py", "views/inspector.py", "views/generator.py")


@pytest.fixture
def env(checkpoint_dir, registry, monkeypatch):
    """The shipped model in the dashboard's checkpoint folder; an empty run registry (no runs listed)."""
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(checkpoint_dir))
    return checkpoint_dir


# Views whose url_path is not their file name: AppTest finds them only once st.navigation has run.
NAMED_URLS = {"views/slice_finder.py", "views/digit_atlas.py", "views/write_your_own.py", "views/decision_log.py"}


def open_page(page: str, query: dict | None = None, **session) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=180)
    for key, value in {**SMALL_SET, **session}.items():
        at.session_state[key] = value
    if page in NAMED_URLS:
        at.run()
        del at.session_state[state.SEEDED]  # the link below is read as on a session's first run
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


def plotly(at: AppTest, key: str) -> dict:
    [found] = [c for c in at.get("plotly_chart") if key in (c.proto.id or "")]
    return json.loads(found.proto.spec)


# ----------------------------------------------------------------------------- router

def test_every_view_runs_through_the_router_with_the_sidebar(env):
    titles = {"views/overview.py": "Overview", "views/errors.py": "Error analysis",
              "views/inspector.py": "Sequence inspector", "views/generator.py": "Generator"}
    for view, title in titles.items():
        at = open_page(view)
        assert [t.value for t in at.title] == [title]
        assert by_label(at.sidebar.selectbox, "Checkpoint").value == f"{env.name}/default.pt"
        assert by_label(at.sidebar.text_input, "Lengths").value == "1-3,12"


def test_a_link_seeds_the_sidebar(env):
    at = AppTest.from_file(APP, default_timeout=180)  # no pre-seeded set: the link decides
    at.query_params.update({"lengths": "4,5", "per_length": "7", "seed": "9", "ckpt": f"{env.name}/default.pt"})
    at.switch_page("views/overview.py").run()
    assert not at.exception
    assert by_label(at.sidebar.text_input, "Lengths").value == "4,5"
    assert by_label(at.sidebar.number_input, "Per length").value == 7
    assert by_label(at.metric, "Sequences").value == "14"


# ----------------------------------------------------------------------------- overview

def test_overview_headlines_metadata_and_sidebar(env):
    at = open_page("views/overview.py")
    assert [t.value for t in at.title] == ["Overview"]
    labels = [m.label for m in at.metric]
    for expected in ("MAE, original protocol", "CNN digit accuracy (test)", "MAE at length 1000",
                     "Sequences", "Exact-match"):
        assert expected in labels
    assert by_label(at.metric, "Sequences").value == "48"  # 4 lengths x 12 from the pre-seeded set
    assert any("0.838" in c.value for c in at.caption)  # the original project beside ours
    assert any(h.value == "Training metadata" for h in at.subheader)
    assert by_label(at.sidebar.selectbox, "Checkpoint").value.endswith("default.pt")
    by_length = at.dataframe[0].value  # the per-length table (the metadata table follows, in an expander)
    assert list(by_length["length"]) == [1, 2, 3, 12] and list(by_length["n"]) == [12] * 4
    assert list(by_length["in training range"]) == [True, True, True, False]
    assert not at.error


def test_overview_shows_measured_headlines(env, monkeypatch):
    from core import evaluate
    from dashboard.data import evaluation

    # The real protocol is 20,000 sequences; a few hundred exercise the same path quickly.
    monkeypatch.setitem(evaluate.ORIGINAL_PROTOCOL, "count", 200)
    monkeypatch.setitem(evaluate.HEADLINE_EXTRAPOLATION, 100, 5)  # the dict core.evaluate reads
    monkeypatch.setitem(evaluate.HEADLINE_EXTRAPOLATION, 1000, 2)
    measured, real = [], evaluate.headline_figures  # what core.evaluate returned to the dashboard
    monkeypatch.setattr(evaluate, "headline_figures", lambda p, **kw: measured.append(real(p, **kw)) or measured[-1])
    evaluation._Headlines.measured.clear()
    at = open_page("views/overview.py")
    # No benchmark covers this copy of the model: every figure is missing until measured.
    assert all(by_label(at.metric, label).value == "—" for label in ("MAE, original protocol", "MAE at length 1000"))
    [measure] = [b for b in at.button if b.label.startswith("Measure the 7 missing")]
    measure.click().run()
    assert not at.exception and not [b for b in at.button if b.label.startswith("Measure the")]
    [expected] = measured
    assert set(expected) == {"protocol_mae", "protocol_exact", "digit_acc", "mae_100", "exact_100", "mae_1000",
                             "exact_1000"}
    shown = by_label(at.metric, "MAE, original protocol")
    assert shown.value == f"{expected['protocol_mae']:.3f}" and shown.proto.help == "measured here on the test split"
    assert by_label(at.metric, "Exact-match at length 1000").value == f"{expected['exact_1000']:.2%}"
    assert by_label(at.metric, "CNN digit accuracy (test)").value == f"{expected['digit_acc']:.2%}"
    assert any("smaller" in c.value or "larger" in c.value for c in at.caption)


def test_overview_headlines_come_from_the_benchmark_not_the_metadata(tmp_path, registry, monkeypatch, make_checkpoint):
    """A checkpoint whose metadata carries stale headline-like keys: the overview shows the benchmark's
    figures for it (the metadata path, which training never filled, is gone)."""
    from dashboard.data import evaluation

    folder = tmp_path / "ckpts"
    folder.mkdir()
    make_checkpoint(folder / "default.pt", seed=0, preset="smoke", created="2030-01-01T00:00:00+00:00",
                    metrics={"test_protocol_mae": 9.99, "test_digit_acc": 0.1, "val_mae": 3.0})
    report = tmp_path / "benchmark.json"
    report.write_text(json.dumps({"created": "2030-02-01T00:00:00+00:00", "heads": [{
        "checkpoint": str(folder / "default.pt"), "digit_acc": 0.9876, "original": {"mae": 0.0421, "exact_acc": 0.975},
        "by_length": [{"length": 100, "mae": 0.51, "exact_acc": 0.7}, {"length": 1000, "mae": 6.5, "exact_acc": 0.12}]}]}))
    monkeypatch.setattr(evaluation, "BENCHMARK_JSON", report)
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(folder))
    at = open_page("views/overview.py", eval_lengths="2", eval_per_length=5)
    shown = {m.label: (m.value, m.proto.help) for m in at.metric}
    source = "from reports/benchmark.json (python -m scripts.benchmark)"
    assert shown["MAE, original protocol"] == ("0.042", source)
    assert shown["CNN digit accuracy (test)"] == ("98.76%", source)
    assert shown["MAE at length 1000"] == ("6.50", source)
    assert shown["Exact-match at length 100"] == ("70.00%", source)
    assert not [b for b in at.button if b.label.startswith("Measure the")]  # nothing missing
    # A benchmark older than the checkpoint describes another model: the figures are missing again.
    report.write_text(report.read_text().replace("2030-02-01", "2029-12-01"))
    at = open_page("views/overview.py", eval_lengths="2", eval_per_length=5)
    assert by_label(at.metric, "MAE, original protocol").value == "—"
    assert [b for b in at.button if b.label.startswith("Measure the 7 missing")]


def test_a_checkpoint_replaced_at_the_same_path_is_reloaded(tmp_path, registry, monkeypatch, checkpoint_dir,
                                                            make_checkpoint):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    path = folder / "default.pt"
    make_checkpoint(path, seed=0, preset="smoke")  # untrained: its sums are far off, unlike the shipped model's
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(folder))
    at = open_page("views/overview.py", eval_lengths="5", eval_per_length=20)
    random_mae = float(by_label(at.metric, "MAE").value)
    assert "preset `smoke`" in at.caption[0].value
    # Replace it atomically with the shipped model, keeping the old mtime to the nanosecond.
    old = os.stat(path)
    staged = folder / "incoming.tmp"
    shutil.copyfile(checkpoint_dir / "default.pt", staged)
    os.utime(staged, ns=(old.st_atime_ns, old.st_mtime_ns))
    os.replace(staged, path)
    assert os.stat(path).st_mtime_ns == old.st_mtime_ns
    at.run()
    assert not at.exception
    assert "preset `default`" in at.caption[0].value
    assert float(by_label(at.metric, "MAE").value) < min(random_mae, 1.0)


def test_sidebar_change_changes_the_evaluation_set(env):
    at = open_page("views/overview.py")
    by_label(at.sidebar.text_input, "Lengths").set_value("5").run()
    assert not at.exception
    assert by_label(at.metric, "Sequences").value == "12"
    by_label(at.sidebar.text_input, "Lengths").set_value("5-x").run()
    assert at.error and "bad length" in at.error[0].value and not at.exception
    by_label(at.sidebar.text_input, "Lengths").set_value("1-5000").run()  # far too big to evaluate
    assert at.error and "too large" in at.error[0].value and not at.exception


def test_no_checkpoint_gives_a_message_not_a_traceback(tmp_path, registry, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(tmp_path))
    for page in VIEWS:
        at = open_page(page)
        assert at.error and "No checkpoint found" in at.error[0].value
        assert not at.metric  # the view stopped before drawing anything from a model


# ----------------------------------------------------------------------------- error analysis

def test_errors_page_charts_and_filters_drive_the_table(env):
    at = open_page("views/errors.py", eval_lengths="1-3,12,50")  # length 50: this seed's set holds errors
    assert [t.value for t in at.title] == ["Error analysis"]
    assert len(at.caption) >= 6  # a one-line reading guide under each chart
    worst = table(at, "worst_table")
    assert set(worst["length"]) > {12}
    assert worst["inspect"].str.startswith("inspector?src=eval").all()

    by_label(at.select_slider, "Length range").set_value((12, 12)).run()
    assert not at.exception
    narrowed = table(at, "worst_table")
    assert set(narrowed["length"]) == {12} and not narrowed.equals(worst)
    assert plotly(at, "heatmap")["data"][0]["y"] == ["12"]  # the heatmap follows the filter

    by_label(at.select_slider, "Length range").set_value((1, 50)).run()
    by_label(at.checkbox, "Errors only").check().run()
    assert not at.exception
    wrong = table(at, "worst_table")
    assert len(wrong) and not wrong["exact"].any()
    assert any(c.value.startswith(f"{len(wrong)} of 60 sequences") for c in at.caption)


def test_confusion_selector_lists_matching_sequences(env):
    at = open_page("views/errors.py", eval_lengths="20,50,100", eval_seed=3)  # 2,040 digits: some misread
    # By default the selectors show the most frequent confusion; its sequences are listed.
    true, read = by_label(at.selectbox, "True digit").value, by_label(at.selectbox, "Read as").value
    summary = next(m.value for m in at.markdown if "sequences contain" in m.value)
    count = int(summary.split("**")[1].replace(",", ""))
    assert true != read and count > 0 and f"a {true} that the CNN read as {read}" in summary
    assert len(at.dataframe[0].value) == min(count, 200)  # the listing precedes the worst table
    by_label(at.selectbox, "Read as").set_value(true).run()
    assert not at.exception
    assert any(f"correctly read {true}" in m.value for m in at.markdown)


def test_bucket_width_changes_the_heatmap_and_csv_download(env):
    at = open_page("views/errors.py")
    before = plotly(at, "heatmap")["data"][0]
    width = by_label(at.number_input, "Sum bucket width")
    assert width.value == 2  # nice_bucket_width(this set's largest sum, < 80): at most 40 columns
    assert before["x"][:2] == ["0-1", "2-3"]
    width.set_value(25).run()
    assert not at.exception
    after = plotly(at, "heatmap")["data"][0]
    assert after["x"][:2] == ["0-24", "25-49"] and len(after["x"]) < len(before["x"])
    assert after["z"] != before["z"]
    assert any(b.label.startswith("Download the filtered table") for b in at.get("download_button"))


# ----------------------------------------------------------------------------- inspector

def test_inspector_opens_a_link_and_steps(env):
    query = {"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3", "index": "40"}
    at = open_page("views/inspector.py", query=query)
    assert at.query_params["index"] == "40" and at.query_params["src"] == "eval"
    assert by_label(at.metric, "Misread digits").value.endswith("of 12")
    assert any("Sequence 40 of 48" in h.value for h in at.subheader)
    assert len(at.get("html")) == 1  # the digit row
    assert list(at.dataframe[0].value["step"]) == list(range(1, 13))  # the step-by-step table
    by_label(at.button, "Next").click().run()
    assert at.query_params["index"] == "41" and not at.exception
    by_label(at.button, "Previous").click().run()
    by_label(at.button, "Previous").click().run()
    assert at.query_params["index"] == "39"
    by_label(at.button, "Jump to worst").click().run()
    worst = table(open_page("views/errors.py"), "worst_table")  # same set, same ranking
    assert not at.exception and at.query_params["index"] == str(worst["seq_id"].iloc[0])


def test_inspector_shows_what_each_member_of_an_ensemble_read(tmp_path, registry, monkeypatch, make_checkpoint):
    import torch

    from core import load_predictor
    from core.data import load_mnist, split_arrays
    from core.evaluate import evaluation_set

    path = make_checkpoint(tmp_path / "default.pt", members=3, seed=2)
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(tmp_path))
    at = open_page("views/inspector.py", query={"src": "eval", "lengths": "1-3,12", "per_length": "12", "seed": "3",
                                                "index": "40"})
    steps = at.dataframe[0].value
    assert list(steps["step"]) == list(range(1, 13))
    assert any("3 CNNs of this ensemble" in c.value for c in at.caption)
    predictor = load_predictor(path, device="cpu")
    cnn = predictor.model.cnn
    images = split_arrays(load_mnist(), "test")[0]
    table = evaluation_set(predictor, [1, 2, 3, 12], 12, 3)
    indices = table.loc[table["seq_id"] == 40, "indices"].iloc[0]
    x = torch.from_numpy(images[indices]).unsqueeze(1).float() / 255.0
    with torch.no_grad():  # each member on its own, by another road than the dashboard's
        by_hand = [" ".join(str(int(m(x[i : i + 1]).argmax())) for m in cnn.members) for i in range(len(x))]
    assert list(steps["members"]) == by_hand
    assert list(steps["disagree"]) == [len(set(r.split())) > 1 for r in by_hand]


def test_inspector_bad_link_and_generator_link(env):
    at = open_page("views/inspector.py", query={"src": "eval", "index": "abc"})
    assert at.warning and "cannot be opened" in at.warning[0].value and not at.exception
    at = open_page("views/inspector.py", query={"src": "gen", "length": "30", "seed": "5", "target": "0"})
    assert by_label(at.metric, "True sum").value == "0"
    assert any(h.value == "Generated sequence (length 30, seed 5, target sum 0)" for h in at.subheader)
    at = open_page("views/inspector.py", query={"src": "gen", "length": "3", "seed": "5", "target": "99"})
    assert "impossible" in at.warning[0].value and not at.exception and not at.error  # a page around the notice
    assert at.subheader[0].value.startswith("Sequence ")  # the worst sequence of the set instead


# ----------------------------------------------------------------------------- generator

def test_generator_constraints_and_messages(env):
    at = open_page("views/generator.py")
    assert by_label(at.metric, "Misread digits").value.endswith("of 10")
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


def test_generator_new_random_changes_the_seed_and_the_sequence(env):
    at = open_page("views/generator.py")
    seed, row = by_label(at.main.number_input, "Seed").value, at.get("html")[0].proto.body
    assert seed == 0
    by_label(at.button, "New random").click().run()
    assert not at.exception
    new_seed = by_label(at.main.number_input, "Seed").value
    assert new_seed != seed and at.session_state["gen_seed"] == new_seed
    assert at.get("html")[0].proto.body != row  # other digit images
    [link] = at.get("page_link")
    assert f"seed={new_seed}" in link.proto.query_string and "src=gen" in link.proto.query_string


def test_view_controls_survive_a_round_trip_through_other_views(env):
    at = open_page("views/errors.py")
    by_label(at.slider, "True-sum range").set_value((0, 30)).run()
    by_label(at.checkbox, "Errors only").check().run()
    filtered = [c.value for c in at.caption if "sequences match the filters" in c.value]
    at.switch_page("views/overview.py").run()
    at.switch_page("views/generator.py").run()
    by_label(at.number_input, "Length").set_value(17).run()
    at.switch_page("views/errors.py").run()
    assert not at.exception
    assert by_label(at.checkbox, "Errors only").value and by_label(at.slider, "True-sum range").value == (0, 30)
    assert filtered and [c.value for c in at.caption if "sequences match the filters" in c.value] == filtered
    at.switch_page("views/generator.py").run()
    assert by_label(at.number_input, "Length").value == 17


def test_overview_says_which_figures_are_computed_without_the_suspect_images(env):
    at = open_page("views/overview.py", eval_aside=True, eval_suspect_k=25)
    labelled = [i.value for i in at.info if i.value.startswith("Computed without the 25 test images")]
    assert len(labelled) == 2  # the sidebar set's figures and the calibration figures
    assert any("Without the 25 most suspect test images." in c.value for c in at.caption)  # the by-length table
    assert any("use every test image" in c.value for c in at.caption)  # the headline protocol does not set any aside
    at = open_page("views/overview.py")
    assert not [i for i in at.info if "Computed without" in i.value]


def test_headlines_count_as_measured_only_while_they_are_held(monkeypatch, tmp_path):
    """The Overview measures only on a click: a checkpoint whose figures were evicted reads as not
    measured, so opening its page never starts a minute-long measurement by itself."""
    from core import evaluate
    from dashboard.data import evaluation

    monkeypatch.setattr(evaluate, "headline_figures", lambda predictor, **kw: {"protocol_mae": 0.5})
    monkeypatch.setattr(evaluation, "_predictor", lambda key: None)
    evaluation._Headlines.measured.clear()
    paths = [tmp_path / f"m{i}.pt" for i in range(evaluation._Headlines.keep + 1)]
    for path in paths:
        path.write_bytes(b"x")
        assert not evaluation.headlines_measured(path)
        assert evaluation.measured_headlines(path) == {"protocol_mae": 0.5}
        assert evaluation.headlines_measured(path)
    assert not evaluation.headlines_measured(paths[0])  # evicted: the marker went with the figures
    assert all(evaluation.headlines_measured(p) for p in paths[1:])


def test_error_analysis_draws_only_the_chosen_chart(env):
    at = open_page("views/errors.py")
    keys = lambda: sorted((c.proto.id or "").rsplit("-", 1)[-1] for c in at.get("plotly_chart"))  # noqa: E731
    assert len(at.get("plotly_chart")) == 2 and plotly(at, "heatmap")  # by length + the default chart
    for choice, key in (("Error histogram", "histogram"), ("Predicted vs true", "pred_vs_true"),
                        ("Digit confusion", "confusion")):
        by_label(at.radio, "Chart").set_value(choice).run()
        assert not at.exception and len(at.get("plotly_chart")) == 2 and plotly(at, key), keys()
    at.switch_page("views/overview.py").run()
    at.switch_page("views/errors.py").run()
    assert by_label(at.radio, "Chart").value == "Digit confusion"  # kept across views

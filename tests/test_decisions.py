"""core.data.decisions: a person's label decisions, their log, and their effect on evaluation."""

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from core import evaluate, load_predictor
from core.data import apply_decisions, load_decisions, load_mnist, record_decision, split_arrays
from core.evaluate.reliability import digit_calibration
from core.paths import DEFAULT_CHECKPOINT, REPO_ROOT
from tests.test_evaluate import FakePrediction

TEST_LABELS = split_arrays(load_mnist(), "test")[1]
EVAL = dict(lengths=[5, 50], per_length=40, seed=3)


@pytest.fixture(autouse=True)
def decisions_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITSUM_DECISIONS_DIR", str(tmp_path / "decisions"))
    return tmp_path / "decisions"


# --------------------------------------------------------------------------- the log


def test_round_trip(decisions_dir):
    record_decision("test", 42, "relabel", label=7)
    record_decision("test", 3, "keep")
    record_decision("test", 9999, "exclude")
    record_decision("mine", 3, "relabel", label=np.int64(0))
    table = load_decisions("test")
    assert list(table.columns) == ["index", "action", "label", "at"]
    assert table["index"].tolist() == [3, 42, 9999]  # by index, whatever the order of the decisions
    assert table["action"].tolist() == ["keep", "relabel", "exclude"]
    assert table["label"].iloc[1] == 7 and table["label"].iloc[[0, 2]].isna().all()
    assert str(table["at"].dt.tz) == "UTC" and (pd.Timestamp.now(tz="UTC") - table["at"]).max() < pd.Timedelta("1min")
    assert load_decisions("mine")[["index", "action"]].values.tolist() == [[3, "relabel"]]  # one log per split
    lines = (decisions_dir / "test.jsonl").read_text().splitlines()
    assert [json.loads(line)["index"] for line in lines] == [42, 3, 9999]
    assert load_decisions("mine")["label"].tolist() == [0]


def test_no_decision_is_an_empty_table():
    table = load_decisions("test")
    assert table.empty and list(table.columns) == ["index", "action", "label", "at"]
    labels, excluded = apply_decisions("test", TEST_LABELS)
    assert np.array_equal(labels, TEST_LABELS) and excluded.size == 0
    with pytest.raises(ValueError, match="expected one of test, mine"):
        load_decisions("train")


def test_the_latest_decision_wins():
    record_decision("test", 5, "relabel", label=3)
    record_decision("test", 6, "keep")
    record_decision("test", 5, "relabel", label=8)
    assert load_decisions("test").set_index("index").loc[5, "label"] == 8
    record_decision("test", 5, "exclude")
    standing = load_decisions("test").set_index("index")
    assert standing.loc[5, "action"] == "exclude" and pd.isna(standing.loc[5, "label"])
    assert standing.loc[6, "action"] == "keep" and len(standing) == 2


def test_clear_withdraws_the_standing_decision():
    record_decision("test", 5, "relabel", label=3)
    record_decision("test", 6, "exclude")
    record_decision("test", 5, "clear")
    record_decision("test", 7, "clear")  # nothing to clear: harmless
    assert load_decisions("test")["index"].tolist() == [6]
    labels, excluded = apply_decisions("test", TEST_LABELS)
    assert labels[5] == TEST_LABELS[5] and excluded.tolist() == [6]
    record_decision("test", 5, "keep")  # a cleared image can be decided again
    assert load_decisions("test")["index"].tolist() == [5, 6]


@pytest.mark.parametrize("args, message", [
    (("val", 1, "keep"), "unknown split 'val'"),
    (("test", -1, "keep"), "index must be"),
    (("test", 10_000, "keep"), r"0\.\.9999"),
    (("test", 1.0, "keep"), "index must be"),
    (("test", True, "keep"), "index must be"),
    (("mine", "3", "keep"), "non-negative integer"),
    (("test", 1, "delete"), "action must be one of keep, relabel, exclude, clear"),
    (("test", 1, "relabel"), "a relabel needs label"),
    (("test", 1, "relabel", 10), "a relabel needs label"),
    (("test", 1, "relabel", "7"), "a relabel needs label"),
    (("test", 1, "keep", 7), "only a relabel takes a label"),
    (("test", 1, "exclude", 0), "only a relabel takes a label"),
])
def test_bad_input_is_refused_and_writes_nothing(decisions_dir, args, message):
    with pytest.raises(ValueError, match=message):
        record_decision(*args)
    assert not decisions_dir.exists() or not any(decisions_dir.iterdir())


def test_a_torn_line_is_skipped_with_a_warning_and_never_swallows_the_next(decisions_dir):
    record_decision("test", 1, "keep")
    with open(decisions_dir / "test.jsonl", "a") as log:
        log.write('{"index": 2, "action": "rel')  # a writer died mid-line
    record_decision("test", 3, "exclude")
    with open(decisions_dir / "test.jsonl", "a") as log:
        log.write('{"index": 4, "action": "relabel", "label": 12, "at": "2024-01-01T00:00:00+00:00"}\n')
    with pytest.warns(UserWarning, match="garbled line") as caught:
        table = load_decisions("test")
    assert table["index"].tolist() == [1, 3] and len(caught) == 2


WRITER = """
import sys
from core.data import record_decision
name = sys.argv[1]
print("ready", flush=True)
sys.stdin.readline()  # start together
for i in range(200):
    if name == "a":
        record_decision("test", i, "relabel", label=i % 10)
    else:
        record_decision("test", 100 + i, "exclude")
"""


def test_two_writers_at_once_lose_no_line(decisions_dir):
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True) for name in "ab"]
    for writer in writers:
        assert writer.stdout.readline().strip() == "ready"
    for writer in writers:
        writer.stdin.write("go\n")
        writer.stdin.flush()
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    lines = (decisions_dir / "test.jsonl").read_text().splitlines()
    entries = [json.loads(line) for line in lines]  # every line parses
    assert len(entries) == 400
    assert sorted(e["index"] for e in entries if e["action"] == "relabel") == list(range(200))
    assert sorted(e["index"] for e in entries if e["action"] == "exclude") == list(range(100, 300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no garbled line
        table = load_decisions("test")
    assert len(table) == 300


def test_apply_decisions_returns_a_copy():
    record_decision("test", 0, "relabel", label=(int(TEST_LABELS[0]) + 1) % 10)
    record_decision("test", 1, "exclude")
    labels, excluded = apply_decisions("test", TEST_LABELS)
    assert labels[0] == (TEST_LABELS[0] + 1) % 10 and excluded.tolist() == [1] and excluded.dtype == np.int64
    assert np.array_equal(np.delete(labels, 0), np.delete(TEST_LABELS, 0))
    assert split_arrays(load_mnist(), "test")[1][0] == TEST_LABELS[0] != labels[0]  # MNIST's labels untouched
    given = np.array([1, 2, 3], np.uint8)
    record_decision("mine", 1, "relabel", label=9)
    record_decision("mine", 50, "exclude")  # beyond the collection: ignored, with a warning
    with pytest.warns(UserWarning, match="beyond the 3"):
        labels, excluded = apply_decisions("mine", given)
    assert labels.tolist() == [1, 9, 3] and given.tolist() == [1, 2, 3] and excluded.size == 0


# --------------------------------------------------------------------------- effect on evaluation


@pytest.fixture(scope="module")
def predictor():
    return load_predictor(DEFAULT_CHECKPOINT, device="cpu")


@pytest.fixture(scope="module")
def base(predictor):
    """The evaluation table with no decisions, and the images it draws."""
    table = evaluate.evaluation_table(predictor, **EVAL)
    return table, np.unique(table.digits["indices"])


def same_table(a, b) -> bool:
    return a.rows.equals(b.rows) and all(np.array_equal(a.digits[k], b.digits[k]) for k in a.digits)


def test_a_relabel_changes_the_truth_everywhere(predictor, base):
    table, drawn = base
    logits = predictor.split_logits("test")
    read_right = drawn[logits[drawn].argmax(axis=1) == TEST_LABELS[drawn]]
    moved = read_right[:60]
    new = (TEST_LABELS[moved].astype(np.int64) + 1) % 10
    for index, label in zip(moved, new):
        record_decision("test", int(index), "relabel", label=int(label))
    decided_labels = apply_decisions("test", TEST_LABELS)[0]

    assert same_table(evaluate.evaluation_table(predictor, **EVAL), table)  # decisions=False: as before
    decided = evaluate.evaluation_table(predictor, **EVAL, decisions=True)
    idx, true, pred = (decided.digits[k] for k in ("indices", "true_digits", "pred_digits"))
    here = np.isin(idx, moved)
    assert here.sum() >= 5  # the set holds relabelled images
    assert np.array_equal(true[here], decided_labels[idx[here]])
    assert np.array_equal(true, decided_labels[idx])  # every image carries its decided label ...
    sums = np.bincount(decided.row_of_digit, true, len(decided))
    assert np.array_equal(decided.rows["true_sum"].to_numpy(), sums)  # ... into every sum
    holding = np.unique(decided.row_of_digit[here])
    assert not np.array_equal(sums[holding], np.bincount(decided.row_of_digit, TEST_LABELS[idx], len(decided))[holding])
    # confusion: each relabelled image moves from its MNIST row to its decided row
    mnist_confusion = np.bincount(TEST_LABELS[idx].astype(np.int64) * 10 + pred, minlength=100).reshape(10, 10)
    delta = evaluate.digit_confusion(decided) - mnist_confusion
    expected = np.zeros((10, 10), np.int64)
    np.add.at(expected, (true[here], pred[here]), 1)
    np.add.at(expected, (TEST_LABELS[idx[here]], pred[here]), -1)
    assert np.array_equal(delta, expected) and expected.any()
    # digit figures: the 60 images the model read right now count as misread
    assert evaluate.digit_accuracy(predictor, decisions=True) == pytest.approx(
        evaluate.digit_accuracy(predictor) - 60 / 10_000)
    calibration = digit_calibration(predictor, decisions=True)
    assert calibration["images"] == 10_000
    assert calibration["after"]["accuracy"] == pytest.approx(evaluate.digit_accuracy(predictor, decisions=True))
    assert digit_calibration(predictor)["after"]["accuracy"] == pytest.approx(evaluate.digit_accuracy(predictor))


def test_an_exclusion_removes_the_image_from_every_sequence(predictor, base):
    table, drawn = base
    excluded, also_aside = drawn[:30], drawn[30:31]
    for index in excluded:
        record_decision("test", int(index), "exclude")
    assert same_table(evaluate.evaluation_table(predictor, **EVAL), table)  # decisions=False: as before
    decided = evaluate.evaluation_set(predictor, **EVAL, exclude=also_aside, decisions=True)
    used = np.concatenate(decided["indices"].to_list())
    assert len(decided) == len(table) and not np.isin(used, np.concatenate([excluded, also_aside])).any()
    assert np.array_equal(np.concatenate(decided["true_digits"].to_list()), TEST_LABELS[used])  # no relabel: MNIST's
    assert digit_calibration(predictor, exclude=also_aside, decisions=True)["images"] == 10_000 - 31
    keep = np.ones(10_000, bool)
    keep[excluded] = False
    logits = predictor.split_logits("test")
    assert evaluate.digit_accuracy(predictor, decisions=True) == pytest.approx(
        (logits[keep].argmax(axis=1) == TEST_LABELS[keep]).mean())


def test_suspect_labels_judge_the_decided_labels(predictor):
    probs = predictor.split_logits("test")
    sure = int(np.argmax(probs[np.arange(10_000), TEST_LABELS]))  # the image the model is surest of
    record_decision("test", sure, "relabel", label=(int(TEST_LABELS[sure]) + 5) % 10)  # a wrong decision
    record_decision("test", 0, "exclude")
    ranked = evaluate.suspect_labels(predictor, decisions=True)
    assert len(ranked) == 9_999 and 0 not in set(ranked["index"])
    assert ranked.iloc[0]["index"] == sure and ranked.iloc[0]["given"] == (TEST_LABELS[sure] + 5) % 10
    assert len(evaluate.suspect_labels(predictor)) == 10_000  # decisions=False: as before
    with pytest.raises(ValueError, match="whole split"):
        evaluate.suspect_labels(predictor, images=np.zeros((2, 28, 28), np.uint8), labels=[1, 2], decisions=True)


class ReadsMnist:
    """A test double that reads every test image as its MNIST label: a relabelled image is then a misread."""

    def run_indexed(self, split_images, indices, lengths, split=None):
        probs = [np.eye(10, dtype=np.float32)[TEST_LABELS[row[:n]]] for row, n in zip(indices, lengths)]
        sums = np.array([float(p.argmax(axis=1).sum()) for p in probs])
        interval = np.stack([sums, sums], axis=1).astype(np.int64)
        return FakePrediction(sums, probs, [np.cumsum(p.argmax(axis=1)).astype(float) for p in probs],
                              np.ones(len(sums)), interval)

    def split_logits(self, split):
        return np.eye(10, dtype=np.float32)[TEST_LABELS]


def test_headline_figures_use_the_decisions():
    plain = evaluate.headline_figures(ReadsMnist())
    assert plain["digit_acc"] == 1.0 and plain["protocol_exact"] == 1.0 and plain["mae_1000"] == 0.0
    for index in range(50):
        record_decision("test", index, "relabel", label=(int(TEST_LABELS[index]) + 1) % 10)
    record_decision("test", 50, "exclude")
    assert evaluate.headline_figures(ReadsMnist()) == plain  # decisions=False: as before
    decided = evaluate.headline_figures(ReadsMnist(), decisions=True)
    assert decided["digit_acc"] == pytest.approx(1 - 50 / 9_999)  # one image fewer, 50 misread
    assert decided["protocol_exact"] < 1.0 and decided["mae_1000"] > 0.0

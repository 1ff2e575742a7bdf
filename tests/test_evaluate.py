"""core.evaluate: per-sequence rows and the aggregates built from them must agree."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from core import evaluate
from core.data import evaluation_sequences, generate_sequences, parse_lengths

LABELS = np.random.default_rng(0).integers(0, 10, size=3000).astype(np.uint8)
IMAGES = np.zeros((3000, 28, 28), dtype=np.uint8)


@dataclass
class FakePrediction:
    sums: np.ndarray
    digit_probs: list
    running: list
    p_exact: np.ndarray
    interval: np.ndarray


class MisreadsSevens:
    """A test double with known behaviour: reads every 7 as a 1, everything else right."""

    def run_indexed(self, split_images, indices, lengths):
        probs, running, sums = [], [], []
        for row, n in zip(indices, lengths):
            digits = LABELS[row[:n]].astype(int)
            read = np.where(digits == 7, 1, digits)
            p = np.full((n, 10), 0.01, dtype=np.float32)
            p[np.arange(n), read] = 0.91
            probs.append(p)
            running.append(np.cumsum(read).astype(float))
            sums.append(float(read.sum()))
        sums = np.array(sums)
        p_exact = np.array([p.max(axis=1).prod() for p in probs])  # as if the readings were independent
        interval = np.stack([np.rint(sums) - 1, np.rint(sums) + 1], axis=1).astype(np.int64)
        return FakePrediction(sums, probs, running, p_exact, interval)


@pytest.fixture(scope="module")
def results() -> pd.DataFrame:
    frames, offset = [], 0
    for length in (1, 5, 12):
        seqs = generate_sequences("test", 200, length, seed=length, labels=LABELS)
        frames.append(evaluate.evaluate_sequences(MisreadsSevens(), seqs, IMAGES, id_offset=offset))
        offset += len(seqs)
    return pd.concat(frames, ignore_index=True)


def test_rows_reflect_the_predictor(results):
    sevens = results["true_digits"].map(lambda d: d.count(7))
    np.testing.assert_allclose(results["error"], -6.0 * sevens)  # each misread 7 costs -6
    assert (results["exact"] == (sevens == 0)).all()
    assert (results["n_wrong_digits"] == sevens).all()
    assert results["seq_id"].is_unique
    assert all(len(r) == n for r, n in zip(results["running"], results["length"]))


def test_by_length_agrees_with_rows(results):
    stats = evaluate.by_length(results).set_index("length")
    for length, group in results.groupby("length"):
        assert stats.loc[length, "n"] == len(group)
        assert stats.loc[length, "mae"] == pytest.approx(group["abs_error"].mean())
        assert stats.loc[length, "rmse"] == pytest.approx(np.sqrt((group["error"] ** 2).mean()))
        assert stats.loc[length, "exact_acc"] == pytest.approx(group["exact"].mean())
    assert stats["n"].sum() == len(results)


def test_sum_buckets_partition_the_rows(results):
    buckets = evaluate.by_sum_range(results, width=7)
    assert buckets["n"].sum() == len(results)
    assert ((buckets["sum_lo"] % 7) == 0).all()
    weighted = (buckets["mae"] * buckets["n"]).sum() / buckets["n"].sum()
    assert weighted == pytest.approx(results["abs_error"].mean())
    grid = evaluate.by_length_and_sum(results, width=10)
    assert grid["n"].sum() == len(results)
    with pytest.raises(ValueError, match="bucket width"):
        evaluate.by_sum_range(results, width=0)


def test_confusion_and_confusion_lookup(results):
    cm = evaluate.digit_confusion(results)
    assert cm.sum() == results["length"].sum()
    assert cm[7, 7] == 0 and cm[7, 1] == sum(d.count(7) for d in results["true_digits"])
    rows = evaluate.sequences_with_confusion(results, 7, 1)
    assert len(rows) == (results["true_digits"].map(lambda d: 7 in d)).sum()
    assert evaluate.sequences_with_confusion(results, 3, 8).empty


def test_filters_and_summary(results):
    filtered = evaluate.filter_results(results, length_range=(5, 12), sum_range=(10, 40), errors_only=True)
    assert filtered["length"].between(5, 12).all() and filtered["true_sum"].between(10, 40).all()
    assert not filtered["exact"].any() and 0 < len(filtered) < len(results)
    assert evaluate.summary(filtered)["exact_acc"] == 0
    assert evaluate.summary(results)["mae"] == pytest.approx(results["abs_error"].mean())
    worst = evaluate.worst_sequences(results, 5)
    assert list(worst["abs_error"]) == sorted(results["abs_error"], reverse=True)[:5]


def test_parse_lengths():
    assert parse_lengths("1-3, 10,2") == [1, 2, 3, 10]
    for bad in ("", "0", "5-2", "a", "1-", "6000"):
        with pytest.raises(ValueError):
            parse_lengths(bad)


def test_evaluation_sets_of_neighbouring_seeds_do_not_overlap():
    # Seeding each length with seed + length made (seed 0, length 6) and (seed 1, length 5) one stream.
    a = evaluation_sequences([5, 6], 50, seed=0, labels=LABELS)
    b = evaluation_sequences([5, 6], 50, seed=1, labels=LABELS)
    stream_a6, stream_b5 = a.digits[a.lengths == 6].ravel()[:250], b.digits[b.lengths == 5][:, :5].ravel()
    assert (stream_a6 == stream_b5).mean() < 0.3  # independent draws agree on about 10% of digits
    # ... while adding a length leaves the other lengths' rows unchanged.
    c = evaluation_sequences([5, 6, 9], 50, seed=0, labels=LABELS)
    np.testing.assert_array_equal(c.indices[c.lengths == 5][:, :5], a.indices[a.lengths == 5][:, :5])

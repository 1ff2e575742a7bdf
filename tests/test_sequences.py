"""core.data.sequences: determinism, correct sums, constraints, and split hygiene."""

import time

import numpy as np
import pytest

from core.data import generate_sequences, load_mnist, split_arrays

RNG_LABELS = np.random.default_rng(0).integers(0, 10, size=2000).astype(np.uint8)


def test_same_seed_same_sequences_other_seed_differs():
    a = generate_sequences("train", 50, (1, 20), seed=7, labels=RNG_LABELS)
    b = generate_sequences("train", 50, (1, 20), seed=7, labels=RNG_LABELS)
    c = generate_sequences("train", 50, (1, 20), seed=8, labels=RNG_LABELS)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    assert not np.array_equal(a.indices, c.indices)


def test_sums_digits_and_padding_are_consistent():
    seqs = generate_sequences("train", 200, (1, 30), seed=1, labels=RNG_LABELS)
    assert len(seqs) == 200 and seqs.lengths.min() >= 1 and seqs.lengths.max() <= 30
    for i in range(len(seqs)):
        indices, digits = seqs.sequence(i)
        assert len(indices) == seqs.lengths[i]
        np.testing.assert_array_equal(RNG_LABELS[indices], digits)  # digits are the images' labels
        assert digits.sum() == seqs.sums[i]
        assert (seqs.indices[i, seqs.lengths[i]:] == -1).all()


def test_exact_target_sum_and_sum_range_are_honoured():
    exact = generate_sequences("train", 100, 12, seed=2, target_sum=40, labels=RNG_LABELS)
    assert (exact.sums == 40).all()
    ranged = generate_sequences("train", 300, (3, 15), seed=3, sum_range=(20, 25), labels=RNG_LABELS)
    assert ranged.sums.min() >= 20 and ranged.sums.max() <= 25
    assert len(np.unique(ranged.sums)) > 1  # the range is used, not one end of it


def test_allowed_digits_are_honoured_with_and_without_a_sum():
    free = generate_sequences("train", 100, 8, seed=4, allowed_digits=[2, 7], labels=RNG_LABELS)
    assert set(np.unique(free.digits)) == {2, 7}
    constrained = generate_sequences("train", 50, 10, seed=4, allowed_digits={1, 3}, target_sum=20, labels=RNG_LABELS)
    assert set(np.unique(constrained.digits)) <= {1, 3} and (constrained.sums == 20).all()


def test_extreme_sums_are_constructive_and_instant():
    start = time.perf_counter()
    zeros = generate_sequences("train", 10, 50, seed=5, target_sum=0, labels=RNG_LABELS)
    nines = generate_sequences("train", 10, 50, seed=5, target_sum=450, labels=RNG_LABELS)
    assert time.perf_counter() - start < 2
    assert (zeros.digits == 0).all() and (nines.digits == 9).all()


def test_long_sequences_up_to_5000():
    seqs = generate_sequences("train", 2, 5000, seed=6, target_sum=22500, labels=RNG_LABELS)
    assert seqs.indices.shape == (2, 5000) and (seqs.sums == 22500).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(length=5, target_sum=100), "no sequence of length 5"),
        (dict(length=3, allowed_digits=[]), "empty"),
        (dict(length=3, allowed_digits=[4, 12]), "digits 0-9"),
        (dict(length=4, allowed_digits=[1, 3], target_sum=5), "not every value"),  # four odd digits: even sum
        (dict(length=0), "1..5000"),
        (dict(length=-2), "1..5000"),
        (dict(length=5001), "1..5000"),
        (dict(length=2.5), "integer"),
        (dict(length="7"), "integer"),
        (dict(length=(5, 2)), "lo <= hi"),
        (dict(length=5, target_sum=3, sum_range=(1, 4)), "not both"),
        (dict(length=5, sum_range=(9, 2)), "lo <= hi"),
    ],
)
def test_impossible_or_invalid_requests_raise_value_error(kwargs, message):
    length = kwargs.pop("length")
    with pytest.raises(ValueError, match=message):
        generate_sequences("train", 3, length, seed=0, labels=RNG_LABELS, **kwargs)


def test_invalid_count_is_refused():
    with pytest.raises(ValueError, match="count"):
        generate_sequences("train", 0, 5, seed=0, labels=RNG_LABELS)


def test_real_splits_never_leak():
    mnist = load_mnist()
    train = generate_sequences("train", 2000, (1, 10), seed=9)
    assert train.indices.max() < 55000  # indices into train[:55000] only: val and test are never touched
    train_images = split_arrays(mnist, "train")[0]
    np.testing.assert_array_equal(train.images(train_images)[0], mnist.x_train[train.sequence(0)[0]])
    test = generate_sequences("test", 500, 10, seed=9)
    np.testing.assert_array_equal(mnist.y_test[test.indices], test.digits)


# --- uniformity of the sum-constrained sampler ------------------------------------------------------

def exact_counts(length: int, digits=range(10)) -> dict[int, int]:
    """{sum: number of sequences of `length` digits with that sum}, by plain integer dynamic programming."""
    counts = {0: 1}
    for _ in range(length):
        nxt: dict[int, int] = {}
        for s, c in counts.items():
            for d in digits:
                nxt[s + d] = nxt.get(s + d, 0) + c
        counts = nxt
    return counts


def first_digit_law(length: int, target: int) -> np.ndarray:
    """P(first digit = d) over all sequences of `length` digits summing to `target`: exact counts."""
    rest = exact_counts(length - 1)
    ways = np.array([rest.get(target - d, 0) for d in range(10)], dtype=float)
    return ways / ways.sum()


def assert_frequencies(observed: np.ndarray, expected: np.ndarray, draws: int) -> None:
    """Every frequency within 5 standard errors of its exact probability."""
    tolerance = 5 * np.sqrt(expected * (1 - expected) / draws) + 1e-9
    assert np.all(np.abs(observed - expected) <= tolerance), (observed.round(4), expected.round(4))


def test_target_sum_sampler_is_uniform_over_all_sequences():
    # Length 10, sum 45: the first digit is 0 (or 9) in 9.26% of all such sequences. The old sampler,
    # uniform over the digits that could still reach the target, gave 0 or 9 in 11.7% of draws.
    draws = 60_000
    seqs = generate_sequences("train", draws, 10, seed=11, target_sum=45, labels=RNG_LABELS)
    expected = first_digit_law(10, 45)
    assert abs(expected[0] - 0.0926) < 1e-3
    for position in (0, 9):  # no position is special
        assert_frequencies(np.bincount(seqs.digits[:, position], minlength=10) / draws, expected, draws)


def test_sum_range_weights_each_sum_by_its_number_of_sequences():
    draws = 40_000
    seqs = generate_sequences("train", draws, 4, seed=12, sum_range=(0, 6), labels=RNG_LABELS)
    counts = exact_counts(4)
    expected = np.array([counts[s] for s in range(7)], dtype=float)
    expected /= expected.sum()  # 1, 4, 10, 20, 35, 56, 84 sequences: sum 6 is 84 times as likely as sum 0
    assert_frequencies(np.bincount(seqs.sums, minlength=7) / draws, expected, draws)


def test_long_sequences_beyond_the_count_table_are_uniform_too(monkeypatch):
    # Beyond the table, a tilted prefix plus an exact suffix: shrink the table to check it exactly.
    from core.data import sequences as module

    monkeypatch.setattr(module, "EXACT_TABLE_MAX", 3)
    monkeypatch.setattr(module, "_TABLES", {})
    draws = 40_000
    seqs = generate_sequences("train", draws, 8, seed=13, target_sum=20, labels=RNG_LABELS)
    assert (seqs.sums == 20).all()
    expected = first_digit_law(8, 20)
    for position in (0, 7):  # prefix (tilted) and suffix (exact) positions
        assert_frequencies(np.bincount(seqs.digits[:, position], minlength=10) / draws, expected, draws)
    with pytest.raises(ValueError, match="single target sum"):
        generate_sequences("train", 5, 8, seed=13, sum_range=(10, 20), labels=RNG_LABELS)


@pytest.mark.parametrize("sum_range", [(None, 10), (5, None), (1, 2, 3), "10-20", (1.5, 3)])
def test_a_sum_range_that_is_not_two_integers_is_a_value_error(sum_range):
    with pytest.raises(ValueError, match="sum_range must be a \\(lo, hi\\) pair of integers"):
        generate_sequences("test", 1, 5, seed=0, sum_range=sum_range, labels=np.arange(100) % 10)

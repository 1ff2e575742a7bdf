"""core.sequences: determinism, correct sums, constraints, and split hygiene."""

import time

import numpy as np
import pytest

from core.data import load_mnist, split_arrays
from core.sequences import generate_sequences

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

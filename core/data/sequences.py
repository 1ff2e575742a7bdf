"""Deterministic sequences of MNIST digit images, with optional sum and digit constraints.

A sequence is a list of image indices into one split (see core.data.split_arrays). Sequences come
back as padded arrays plus lengths (`Sequences`), which vectorise well; `.sequence(i)` gives the
unpadded view of one.

How a sequence is drawn, from a numpy Generator seeded by `seed`:
  1. its length: fixed, or uniform in an inclusive range;
  2. its digits: uniform over the allowed digits; or, under a sum constraint, a target sum drawn
     uniformly from the reachable sums in the constraint, then the digits built constructively so
     the remaining sum always stays reachable (no rejection sampling: length 50 with sum 450 is
     instant), then shuffled so no position is biased;
  3. for each digit, an image drawn uniformly among the split's images of that digit.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

MAX_LENGTH = 5000


@dataclass(frozen=True)
class Sequences:
    split: str
    indices: np.ndarray  # int64 (N, Lmax): image index into the split, padded with -1
    digits: np.ndarray  # int64 (N, Lmax): true digit labels, padded with -1
    lengths: np.ndarray  # int64 (N,)
    sums: np.ndarray  # int64 (N,)

    def __len__(self) -> int:
        return len(self.lengths)

    def sequence(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """(image indices, digits) of sequence i, without padding."""
        n = self.lengths[i]
        return self.indices[i, :n], self.digits[i, :n]

    def images(self, split_images: np.ndarray) -> list[np.ndarray]:
        """The sequences as a ragged list of (L_i, 28, 28) uint8 arrays."""
        return [split_images[self.indices[i, : self.lengths[i]]] for i in range(len(self))]


# --------------------------------------------------------------------------- argument checks

def _check_length(length) -> tuple[int, int]:
    lo, hi = (length, length) if np.isscalar(length) else tuple(length) if len(length) == 2 else (None, None)
    for value in (lo, hi):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"length must be an integer or an inclusive (lo, hi) pair of integers, got {length!r}")
    if not 1 <= lo <= hi <= MAX_LENGTH:
        raise ValueError(f"length must lie in 1..{MAX_LENGTH} with lo <= hi, got {length!r}")
    return int(lo), int(hi)


def _check_digits(allowed_digits) -> tuple[int, ...]:
    if allowed_digits is None:
        return tuple(range(10))
    digits = tuple(sorted(set(int(d) for d in allowed_digits)))
    if not digits:
        raise ValueError("allowed_digits is empty: allow at least one digit from 0-9")
    if digits[0] < 0 or digits[-1] > 9:
        raise ValueError(f"allowed_digits must be digits 0-9, got {list(allowed_digits)!r}")
    return digits


def _check_sum(target_sum, sum_range) -> tuple[int, int] | None:
    if target_sum is not None and sum_range is not None:
        raise ValueError("give either target_sum or sum_range, not both")
    if target_sum is not None:
        if not isinstance(target_sum, (int, np.integer)) or isinstance(target_sum, bool):
            raise ValueError(f"target_sum must be an integer, got {target_sum!r}")
        return int(target_sum), int(target_sum)
    if sum_range is not None:
        lo, hi = (int(v) for v in sum_range)
        if lo > hi:
            raise ValueError(f"sum_range must be (lo, hi) with lo <= hi, got {sum_range!r}")
        return lo, hi
    return None


# --------------------------------------------------------------------------- reachable sums

@lru_cache(maxsize=8)
def _reachable(digits: tuple[int, ...], max_len: int) -> np.ndarray:
    """reach[k, s] is True when s is a sum of exactly k digits from `digits` (k = 0..max_len).

    Stored as packed bits so length 5000 costs ~28 MB rather than 225 MB.
    """
    width = 9 * max_len + 1
    current = np.zeros(width, dtype=bool)
    current[0] = True
    rows = [np.packbits(current)]
    for _ in range(max_len):
        nxt = np.zeros(width, dtype=bool)
        for d in digits:
            nxt[d:] |= current[: width - d]
        current = nxt
        rows.append(np.packbits(current))
    return np.stack(rows)


def _is_reachable(reach: np.ndarray, k, s) -> np.ndarray:
    """Vectorised bit test reach[k, s] (False for negative or out-of-range sums)."""
    s = np.asarray(s)
    valid = (s >= 0) & (s < reach.shape[1] * 8)
    safe = np.where(valid, s, 0)
    bits = (reach[k, safe >> 3] >> (7 - (safe & 7))) & 1
    return valid & bits.astype(bool)


def _constrained_digits(rng, reach, length: int, count: int, digits, sum_lo: int, sum_hi: int) -> np.ndarray:
    """count rows of `length` digits whose sum lies in [sum_lo, sum_hi], built step by step.

    reach: _reachable(digits, L) for any L >= length (row k only depends on k).
    """
    candidates = np.arange(max(sum_lo, 0), min(sum_hi, 9 * length) + 1)
    feasible = candidates[_is_reachable(reach, length, candidates)]
    if feasible.size == 0:
        allowed = ",".join(map(str, digits))
        gaps = "; with these digits not every value in between is reachable" if len(digits) < 10 else ""
        raise ValueError(
            f"no sequence of length {length} with digits {{{allowed}}} has a sum in [{sum_lo}, {sum_hi}] "
            f"(sums of {length} such digits lie within {length * digits[0]}..{length * digits[-1]}{gaps})"
        )
    remaining = rng.choice(feasible, size=count)
    digit_values = np.array(digits)
    out = np.empty((count, length), dtype=np.int64)
    for position in range(length):
        left_after = length - position - 1
        # A digit is allowed when what remains after it is still a reachable sum of the remaining steps.
        ok = _is_reachable(reach, left_after, remaining[:, None] - digit_values[None, :])
        # Choose uniformly among the allowed digits of each row (every row has at least one).
        scores = np.where(ok, rng.random(ok.shape), -1.0)
        chosen = digit_values[scores.argmax(axis=1)]
        out[:, position] = chosen
        remaining = remaining - chosen
    return rng.permuted(out, axis=1)  # constructive order favours some digits early: shuffle positions


# --------------------------------------------------------------------------- public API

def generate_sequences(split: str, count: int, length, *, seed: int, target_sum=None, sum_range=None,
                       allowed_digits=None, labels: np.ndarray | None = None) -> Sequences:
    """`count` sequences from `split`, deterministic in `seed`. See the module docstring."""
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    lo, hi = _check_length(length)
    digits = _check_digits(allowed_digits)
    sum_bounds = _check_sum(target_sum, sum_range)
    if labels is None:
        from core.data import load_mnist, split_arrays

        labels = split_arrays(load_mnist(), split)[1]
    labels = np.asarray(labels)
    missing = [d for d in digits if not np.any(labels == d)]
    if missing:
        raise ValueError(f"split {split!r} has no images of digit(s) {missing}")

    rng = np.random.default_rng(seed)
    allowed_lengths = np.arange(lo, hi + 1)
    if sum_bounds is not None and lo < hi:
        # With a range of lengths, draw only lengths that can meet the sum constraint at all.
        reach = _reachable(digits, hi)
        a, b = max(sum_bounds[0], 0), min(sum_bounds[1], 9 * hi)
        ok = [a <= b and np.unpackbits(reach[k])[a: b + 1].any() for k in allowed_lengths]
        if any(ok):
            allowed_lengths = allowed_lengths[np.array(ok)]
        else:
            allowed_lengths = allowed_lengths[-1:]  # let the check below explain why it is impossible
    lengths = rng.choice(allowed_lengths, size=count)
    digit_rows = np.full((count, hi), -1, dtype=np.int64)
    for n in np.unique(lengths):  # rows of one length are built together
        rows = np.flatnonzero(lengths == n)
        if sum_bounds is None:
            block = rng.choice(np.array(digits), size=(rows.size, n))
        else:
            block = _constrained_digits(rng, _reachable(digits, hi), int(n), rows.size, digits, *sum_bounds)
        digit_rows[rows, :n] = block

    # Pick an image of each digit: index into a per-digit list of the split's images.
    indices = np.full_like(digit_rows, -1)
    for d in digits:
        pool = np.flatnonzero(labels == d)
        where = digit_rows == d
        indices[where] = pool[rng.integers(0, pool.size, size=int(where.sum()))]

    sums = np.where(digit_rows >= 0, digit_rows, 0).sum(axis=1)
    return Sequences(split=split, indices=indices, digits=digit_rows, lengths=lengths.astype(np.int64), sums=sums)


def parse_lengths(text: str) -> list[int]:
    """'1-10,20,50' -> [1, 2, ..., 10, 20, 50] (sorted, unique); ValueError on anything else."""
    lengths: set[int] = set()
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"bad length {part!r}: expected numbers or ranges like '1-10,20,100'")
        lo_n, hi_n = int(lo), int(hi) if sep else int(lo)
        if not 1 <= lo_n <= hi_n <= MAX_LENGTH:
            raise ValueError(f"bad length {part!r}: lengths lie in 1..{MAX_LENGTH}, ranges go low-high")
        lengths.update(range(lo_n, hi_n + 1))
    if not lengths:
        raise ValueError("no lengths given: expected something like '1-10,20,100'")
    return sorted(lengths)

"""Deterministic sequences of MNIST digit images, with optional sum and digit constraints.

A sequence is a list of image indices into one split (see core.data.split_arrays). Sequences come
back as padded arrays plus lengths (`Sequences`), which vectorise well; `.sequence(i)` gives the
unpadded view of one.

How a sequence is drawn, from a numpy Generator seeded by `seed`:
  1. its length: fixed, or uniform in an inclusive range;
  2. its digits: uniform over the allowed digits; or, under a sum constraint, uniform over all the
     sequences of that length that meet it: the sum is drawn weighted by how many sequences have
     it, then each digit weighted by how many ways the rest of the sequence can still be completed
     (counts kept as logs; no rejection sampling, so length 50 with sum 450 is instant);
  3. for each digit, an image drawn uniformly among the split's images of that digit.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from core.data.mnist import load_mnist
from core.data.splits import split_arrays
from core.seeds import derive_seed

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
        pair = tuple(sum_range) if isinstance(sum_range, (tuple, list)) else ()
        if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in pair):
            raise ValueError(f"sum_range must be a (lo, hi) pair of integers, got {sum_range!r}")
        lo, hi = (int(v) for v in pair)
        if lo > hi:
            raise ValueError(f"sum_range must be (lo, hi) with lo <= hi, got {sum_range!r}")
        return lo, hi
    return None


# --------------------------------------------------------------------------- counting completions

EXACT_TABLE_MAX = 1000  # longest length with a full table of completion counts (72 MB at 1000)


def _log_counts(digits: tuple[int, ...], max_len: int) -> np.ndarray:
    """table[k, s] = log(number of sequences of k digits from `digits` that sum to s); -inf if none.

    Logs, because counts reach 10**1000 at length 1000. Row k comes from row k-1 by a log-sum-exp
    over the allowed digits.
    """
    width = 9 * max_len + 1
    table = np.full((max_len + 1, width), -np.inf)
    table[0, 0] = 0.0
    shifted = np.full((len(digits), width), -np.inf)
    for k in range(1, max_len + 1):
        span = 9 * k + 1
        for i, d in enumerate(digits):
            shifted[i, :d] = -np.inf
            shifted[i, d:span] = table[k - 1, : span - d]
        top = shifted[:, :span].max(axis=0)
        finite = np.isfinite(top)
        with np.errstate(invalid="ignore", divide="ignore"):
            total = np.exp(shifted[:, :span] - np.where(finite, top, 0.0)).sum(axis=0)
            table[k, :span] = np.where(finite, np.log(total) + top, -np.inf)
    return table


_TABLES: dict[tuple[int, ...], np.ndarray] = {}


def _table(digits: tuple[int, ...], length: int) -> np.ndarray:
    """The count table of `digits` with at least min(length, EXACT_TABLE_MAX) + 1 rows, kept per digit
    set and grown by doubling, so a range of lengths builds it once."""
    table = _TABLES.get(digits)
    if table is None or table.shape[0] <= min(length, EXACT_TABLE_MAX):
        size = min(EXACT_TABLE_MAX, max(64, 1 << (int(length) - 1).bit_length()))
        if len(_TABLES) >= 4:
            _TABLES.clear()
        table = _TABLES[digits] = _log_counts(digits, size)
    return table


def _pick(rng, log_weights: np.ndarray) -> np.ndarray:
    """One column index per row, drawn with probability proportional to exp(log_weights) (Gumbel-max)."""
    return (log_weights + rng.gumbel(size=log_weights.shape)).argmax(axis=1)


def _exact_suffix(rng, table: np.ndarray, remaining: np.ndarray, length: int, digit_values: np.ndarray) -> np.ndarray:
    """Rows of `length` digits with the given sums, each uniform over all such sequences: every digit is
    weighted by the number of ways to complete the rest of the sequence after it."""
    out = np.empty((len(remaining), length), dtype=np.int64)
    for position in range(length):
        rest = remaining[:, None] - digit_values[None, :]
        left_after = length - position - 1
        valid = (rest >= 0) & (rest <= 9 * left_after)
        weights = np.where(valid, table[left_after, np.clip(rest, 0, table.shape[1] - 1)], -np.inf)
        chosen = digit_values[_pick(rng, weights)]
        out[:, position] = chosen
        remaining = remaining - chosen
    return out


def _tilted_prefix(rng, table, digit_values, target: int, length: int, count: int) -> np.ndarray:
    """Rows longer than the table, all summing to `target`, uniform over all such sequences.

    The first `length - m` digits are drawn i.i.d. from an exponentially tilted digit distribution
    p(d) ~ exp(theta d), with theta chosen so the mean digit is target / length, and the row is kept
    with probability ~ C[m, rest] exp(theta rest) (rest: what the last m digits must add up to);
    the last m digits are then drawn exactly. The probability of a whole row then depends only on
    its sum, so every sequence with sum `target` is equally likely.
    """
    m = table.shape[0] - 1
    prefix_len = length - m
    mean = target / length
    lo, hi = -50.0, 50.0  # bisection for theta: the tilted mean grows with theta
    for _ in range(100):
        theta = (lo + hi) / 2
        w = np.exp(theta * digit_values - (theta * digit_values).max())
        lo, hi = (theta, hi) if (w * digit_values).sum() / w.sum() < mean else (lo, theta)
    probs = w / w.sum()
    rests = np.arange(table.shape[1])
    accept_log = table[m] + theta * rests  # log C[m, rest] + theta rest, up to a constant
    accept_log -= accept_log[np.isfinite(accept_log)].max()
    rows = np.empty((count, length), dtype=np.int64)
    todo = np.arange(count)
    while todo.size:
        prefix = rng.choice(digit_values, size=(todo.size, prefix_len), p=probs)
        rest = target - prefix.sum(axis=1)
        ok = (rest >= 0) & (rest < table.shape[1])
        keep = ok & (np.log(rng.random(todo.size)) < np.where(ok, accept_log[np.clip(rest, 0, rests[-1])], -np.inf))
        rows[todo[keep], :prefix_len] = prefix[keep]
        rows[todo[keep], prefix_len:] = _exact_suffix(rng, table, rest[keep], m, digit_values)
        todo = todo[~keep]
    return rows


@lru_cache(maxsize=8)
def _reachable_row(digits: tuple[int, ...], length: int) -> np.ndarray:
    """reach[s]: whether `length` digits from `digits` can sum to s (for lengths beyond the table).
    Bit s of a Python int marks sum s, so one step is a few shifts and ORs of a 45,000-bit number."""
    reach = 1
    for _ in range(length):
        reach = functools.reduce(operator.or_, (reach << d for d in digits))
    width = 9 * length + 1
    bits = np.unpackbits(np.frombuffer(reach.to_bytes((width + 7) // 8, "little"), np.uint8), bitorder="little")
    return bits[:width].astype(bool)


def _log_ways(digits: tuple[int, ...], length: int, sums: np.ndarray) -> np.ndarray:
    """log(number of sequences of `length` digits with each sum): exact up to EXACT_TABLE_MAX; beyond
    it only reachability (0 or -inf), which is all a single target sum needs."""
    if length <= EXACT_TABLE_MAX:
        return _table(digits, length)[length, sums]
    return np.where(_reachable_row(digits, length)[sums], 0.0, -np.inf)


def _constrained_digits(rng, length: int, count: int, digits, sum_lo: int, sum_hi: int) -> np.ndarray:
    """count rows of `length` digits whose sum lies in [sum_lo, sum_hi], uniform over all such rows.

    The sum is drawn first, weighted by how many rows have it; then the digits, each weighted by its
    number of completions (_exact_suffix), or by the tilted scheme beyond the table (_tilted_prefix).
    """
    candidates = np.arange(max(sum_lo, 0), min(sum_hi, 9 * length) + 1)
    log_ways = _log_ways(digits, length, candidates)
    feasible = np.isfinite(log_ways)
    if not feasible.any():
        allowed = ",".join(map(str, digits))
        gaps = "; with these digits not every value in between is reachable" if len(digits) < 10 else ""
        raise ValueError(
            f"no sequence of length {length} with digits {{{allowed}}} has a sum in [{sum_lo}, {sum_hi}] "
            f"(sums of {length} such digits lie within {length * digits[0]}..{length * digits[-1]}{gaps})"
        )
    table, digit_values = _table(digits, length), np.array(digits)
    if length <= EXACT_TABLE_MAX:
        targets = candidates[_pick(rng, np.broadcast_to(log_ways, (count, len(log_ways))))]
        return _exact_suffix(rng, table, targets, length, digit_values)
    if feasible.sum() > 1:
        raise ValueError(f"a sum range is supported up to length {EXACT_TABLE_MAX}; "
                         f"give a single target sum for length {length}")
    return _tilted_prefix(rng, table, digit_values, int(candidates[feasible][0]), length, count)


# --------------------------------------------------------------------------- public API

def generate_sequences(split: str, count: int, length, *, seed: int, target_sum=None, sum_range=None,
                       allowed_digits=None, labels: np.ndarray | None = None, exclude=None) -> Sequences:
    """`count` sequences from `split`, deterministic in `seed`. See the module docstring.
    exclude: image indices of the split never to use (e.g. images whose labels are suspect)."""
    if not isinstance(count, (int, np.integer)) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive integer, got {count!r}")
    lo, hi = _check_length(length)
    digits = _check_digits(allowed_digits)
    sum_bounds = _check_sum(target_sum, sum_range)
    if labels is None:
        labels = split_arrays(load_mnist(), split)[1]
    labels = np.asarray(labels)
    if exclude is not None and len(exclude):
        labels = labels.copy()
        labels[np.asarray(exclude, np.int64)] = 255  # no digit: never drawn
    missing = [d for d in digits if not np.any(labels == d)]
    if missing:
        raise ValueError(f"split {split!r} has no images of digit(s) {missing}")

    rng = np.random.default_rng(seed)
    allowed_lengths = np.arange(lo, hi + 1)
    if sum_bounds is not None and lo < hi:
        # With a range of lengths, draw only lengths that can meet the sum constraint at all.
        a, b = max(sum_bounds[0], 0), sum_bounds[1]
        ok = [a <= min(b, 9 * k) and np.isfinite(_log_ways(digits, int(k), np.arange(a, min(b, 9 * k) + 1))).any()
              for k in allowed_lengths]
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
            block = _constrained_digits(rng, int(n), rows.size, digits, *sum_bounds)
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


def parse_digits(text: str) -> list[int]:
    """Allowed digits written as digits, with or without commas: '137', '1,3,7' and '1, 3, 7' all mean
    {1, 3, 7}. The one reading for the CLI's --digits and the dashboard's `digits` link parameter."""
    cleaned = str(text).replace(",", "").replace(" ", "")
    if not cleaned or not cleaned.isdigit() or not cleaned.isascii():
        raise ValueError(f"expected digits 0-9 such as 1,3,7 (or 137), got {text!r}")
    return sorted(set(int(c) for c in cleaned))


# --------------------------------------------------------------------------- evaluation sets

def evaluation_sequences(lengths, per_length: int, seed: int, split: str = "test", labels=None,
                         exclude=None) -> Sequences:
    """`per_length` sequences of each length in `lengths`, as one Sequences (padded to the longest).

    Each length draws from its own stream, derived from (seed, length), so adding a length never
    changes the others' rows and the sets of two seeds never share a stream. exclude: image indices
    to set aside (generate_sequences).
    """
    if labels is None:
        labels = split_arrays(load_mnist(), split)[1]
    parts = [generate_sequences(split, per_length, length, seed=derive_seed(seed, length), labels=labels,
                                exclude=exclude)
             for length in sorted(set(int(n) for n in lengths))]
    if not parts:
        raise ValueError("lengths is empty: give at least one sequence length")
    return concat_sequences(parts)


def concat_sequences(parts: list[Sequences]) -> Sequences:
    """Stack several Sequences of one split into one, padding to the longest."""
    width = max(p.indices.shape[1] for p in parts)

    def pad(array):
        return np.pad(array, ((0, 0), (0, width - array.shape[1])), constant_values=-1)

    return Sequences(
        split=parts[0].split,
        indices=np.concatenate([pad(p.indices) for p in parts]),
        digits=np.concatenate([pad(p.digits) for p in parts]),
        lengths=np.concatenate([p.lengths for p in parts]),
        sums=np.concatenate([p.sums for p in parts]),
    )

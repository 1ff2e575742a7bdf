"""A distribution over each sequence's sum, by exact convolution of its per-step digit distributions.

    P(sum = s) = sum over digit sequences d_1..d_L with d_1 + ... + d_L = s of  prod_t q_t(d_t)

Assumption: the steps are independent given the images. For the argmax-sum head, q_t is the CNN's
calibrated reading of image t alone, so this holds exactly for the model. For the lstm head, q_t is
the head's own calibrated distribution over the digit that step t adds; it already conditions on the
earlier steps, so independence is an approximation, and the benchmark measures how good it is
(coverage of the intervals, calibration of p_exact).

Sums whose probability is below TAIL (1e-12) are dropped from the stored distributions; p_exact and
the intervals are computed before that trimming.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TAIL = 1e-12
INTERVAL_MASS = 0.95
FFT_FROM = 64  # below this width a direct convolution is faster (and exact to rounding)


@dataclass(frozen=True)
class SumDistribution:
    """P(sum = start + i) = probs[i]; sums outside the stored range have probability below TAIL."""

    start: int
    probs: np.ndarray  # float64

    @property
    def support(self) -> np.ndarray:
        return np.arange(self.start, self.start + len(self.probs))

    def prob(self, s: int) -> float:
        i = int(s) - self.start
        return float(self.probs[i]) if 0 <= i < len(self.probs) else 0.0


def _pair(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Convolve the last axes of a and b (same shape (..., W)) -> (..., 2W - 1)."""
    width = a.shape[-1]
    if width < FFT_FROM:
        out = np.zeros(a.shape[:-1] + (2 * width - 1,))
        for i in range(width):
            out[..., i : i + width] += a[..., i : i + 1] * b
        return out
    n = 2 * width - 1
    out = np.fft.irfft(np.fft.rfft(a, n) * np.fft.rfft(b, n), n)
    return np.clip(out, 0.0, None)  # FFT rounding leaves tiny negatives where the mass is ~0


def convolve(step_probs: np.ndarray) -> np.ndarray:
    """(N, L, 10) per-step digit distributions -> (N, 9L + 1) distributions of the sum.

    Pairs of neighbouring steps are merged level by level (a balanced tree), so length 5000 costs
    13 levels of FFTs instead of 5000 sequential convolutions.
    """
    p = np.asarray(step_probs, dtype=np.float64)
    n, length, _ = p.shape
    while p.shape[1] > 1:
        if p.shape[1] % 2:  # an odd count: pad with a step that adds 0 for sure
            delta = np.zeros((n, 1, p.shape[2]))
            delta[:, 0, 0] = 1.0
            p = np.concatenate([p, delta], axis=1)
        p = _pair(p[:, 0::2], p[:, 1::2])
    dense = p[:, 0, : 9 * length + 1]
    return dense / dense.sum(axis=1, keepdims=True)


def _by_length(step_probs: list[np.ndarray]):
    """Yield (rows, dense (n, 9L + 1)) for each group of sequences of one length."""
    lengths = np.array([len(p) for p in step_probs])
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        yield rows, convolve(np.stack([step_probs[i] for i in rows]))


def summarize_dense(dense: np.ndarray, head_sums: np.ndarray, point: str = "head",
                    mass: float = INTERVAL_MASS) -> dict[str, np.ndarray]:
    """The point prediction (the head's own sum, or the distribution's "mode" or "median"), p_exact of
    its rounded value, and the central `mass` interval, widened if needed to hold the point."""
    cdf = np.cumsum(dense, axis=1)
    tail = (1.0 - mass) / 2
    points = {"head": np.asarray(head_sums, np.float64), "mode": np.argmax(dense, axis=1).astype(np.float64),
              "median": np.argmax(cdf >= 0.5, axis=1).astype(np.float64)}[point]
    rounded = np.rint(points).astype(np.int64)
    inside = (rounded >= 0) & (rounded < dense.shape[1])
    lo = np.argmax(cdf > tail - 1e-12, axis=1)  # P(sum < lo) <= tail
    hi = np.argmax(cdf >= 1.0 - tail - 1e-12, axis=1)  # P(sum > hi) <= tail
    return {
        "point": points,
        "p_exact": np.where(inside, dense[np.arange(len(dense)), np.clip(rounded, 0, dense.shape[1] - 1)], 0.0),
        "interval": np.stack([np.minimum(lo, rounded), np.maximum(hi, rounded)], axis=1).astype(np.int64),
    }


def summarize(step_probs: list[np.ndarray], head_sums: np.ndarray, point: str = "head") -> dict[str, np.ndarray]:
    """summarize_dense for ragged sequences: step_probs[i] is (L_i, 10)."""
    n = len(step_probs)
    out = {"point": np.empty(n), "p_exact": np.empty(n), "interval": np.empty((n, 2), np.int64)}
    for rows, dense in _by_length(step_probs):
        for key, values in summarize_dense(dense, np.asarray(head_sums)[rows], point).items():
            out[key][rows] = values
    return out


def distributions(step_probs: list[np.ndarray]) -> list[SumDistribution]:
    """The full distribution of each sequence's sum, tails below TAIL dropped."""
    out: list[SumDistribution | None] = [None] * len(step_probs)
    for rows, dense in _by_length(step_probs):
        for row, pmf in zip(rows, dense):
            kept = np.flatnonzero(pmf >= TAIL)
            out[row] = SumDistribution(int(kept[0]), pmf[kept[0] : kept[-1] + 1].copy())
    return out

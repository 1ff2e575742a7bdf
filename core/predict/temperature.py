"""Temperature scaling and interval margins: the pure maths (fitting them on val and writing them into a
checkpoint is core.training.fit_calibration's job).

Label smoothing leaves the CNN's softmax under-confident (a clear digit reads about 91%), so its
probabilities are divided by a temperature T: softmax(logits / T). One T keeps every argmax, and
therefore every prediction, unchanged; it only makes the confidences honest. The lstm head gets its
own temperature for its per-step digit logits (it reads the CNN's raw logits, as it was trained).

Intervals: the convolved distribution of a long sum is still too narrow, because the rare digits the
CNN misreads with confidence add up along a sequence. So each 95% interval is widened by a margin
fitted on val sequences of lengths 10, 100 and 1000 (split-conformal: the smallest widening that
covers 95% of val sums), interpolated in log-length between them.

The checkpoint's metadata holds {"calibration": {"cnn_temperature", "head_temperature",
"interval_margin", ...}}; a checkpoint without it behaves as T = 1 with no margin.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

T_BOUNDS = (0.05, 20.0)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / T) at the labels."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(z)), np.asarray(labels)]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises val NLL (a 1-D bounded search over log T)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if len(logits) == 0 or logits.shape[1:] != (10,):
        raise ValueError(f"fit_temperature needs (n, 10) logits with n >= 1, got {logits.shape}")
    result = minimize_scalar(lambda log_t: nll(logits, labels, np.exp(log_t)),
                             bounds=np.log(T_BOUNDS), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def margin_for(margins: dict, lengths: np.ndarray) -> np.ndarray:
    """The interval widening for each length: interpolated in log-length between the fitted lengths,
    the shortest one's below them, and growing like sqrt(length) beyond the longest."""
    lengths = np.asarray(lengths, np.float64)
    if not margins:
        return np.zeros(len(lengths), np.int64)
    fitted = np.array(sorted(int(k) for k in margins), np.float64)
    values = np.array([margins[str(int(k))] for k in fitted], np.float64)
    out = np.interp(np.log(lengths), np.log(fitted), values)
    beyond = lengths > fitted[-1]
    out[beyond] = values[-1] * np.sqrt(lengths[beyond] / fitted[-1])
    return np.ceil(out - 1e-9).astype(np.int64)


def fit_margin(intervals: np.ndarray, truth: np.ndarray, coverage: float = 0.95) -> int:
    """The smallest m such that [lo - m, hi + m] holds at least `coverage` of the true sums (with the
    split-conformal (n + 1) correction)."""
    outside = np.maximum(0, np.maximum(intervals[:, 0] - truth, truth - intervals[:, 1]))
    k = min(len(truth), int(np.ceil((len(truth) + 1) * coverage)))  # the k-th smallest distance
    return int(np.sort(outside)[k - 1])


def temperatures(metadata: dict) -> tuple[float, float, dict]:
    """(cnn temperature, head temperature, interval margins) of a checkpoint; 1.0 and none where it was
    never calibrated."""
    calibration = metadata.get("calibration") or {}
    return (float(calibration.get("cnn_temperature", 1.0)), float(calibration.get("head_temperature", 1.0)),
            dict(calibration.get("interval_margin") or {}))

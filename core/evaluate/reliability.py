"""Is the model's confidence honest? Calibration and selective-prediction metrics.

Digit level: expected calibration error (ECE, 15 equal-width bins of confidence), NLL and Brier score,
before and after temperature scaling. Sum level: ECE of p_exact against exact-match, coverage of the
95% intervals by length, and the risk-coverage curve: keep the sequences the model is surest of
(highest p_exact first) and watch the error rate of what is kept. AURC is the area under that curve
(lower is better).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.evaluate.tables import evaluation_truth, rows_of
from core.predict.temperature import nll, softmax

ECE_BINS = 15


def reliability(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> pd.DataFrame:
    """Per confidence bin: n, mean confidence, accuracy (the reliability diagram's points)."""
    confidence, correct = np.asarray(confidence, np.float64), np.asarray(correct, np.float64)
    which = np.clip((confidence * bins).astype(int), 0, bins - 1)  # bin b holds [b/bins, (b+1)/bins)
    n = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        conf = np.bincount(which, confidence, bins) / n
        acc = np.bincount(which, correct, bins) / n
    return pd.DataFrame({"bin_lo": np.arange(bins) / bins, "bin_hi": np.arange(1, bins + 1) / bins, "n": n,
                         "confidence": conf, "accuracy": acc})


def ece(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> float:
    """Expected calibration error: the n-weighted mean |accuracy - confidence| over the bins."""
    table = reliability(confidence, correct, bins)
    used = table[table["n"] > 0]
    return float((used["n"] * (used["accuracy"] - used["confidence"]).abs()).sum() / max(len(confidence), 1))


def digit_metrics(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> dict[str, float]:
    """ECE, NLL, Brier score and accuracy of softmax(logits / T) on labelled digits."""
    probs = softmax(logits, temperature)
    labels = np.asarray(labels, np.int64)
    onehot = np.eye(10)[labels]
    return {"ece": ece(probs.max(axis=1), probs.argmax(axis=1) == labels), "nll": nll(logits, labels, temperature),
            "brier": float(((probs - onehot) ** 2).sum(axis=1).mean()),
            "accuracy": float((probs.argmax(axis=1) == labels).mean())}


def digit_calibration(predictor, split: str = "test", exclude=None, tables: bool = False,
                      decisions: bool = False) -> dict:
    """digit_metrics of the predictor's CNN on every image of `split` but the excluded, uncalibrated
    ("before") and calibrated ("after"); with tables, their reliability diagrams too. decisions: the
    decided labels as truth, the excluded images left out (core.evaluate.tables.evaluation_truth)."""
    labels, exclude = evaluation_truth(split, exclude, decisions)
    logits = predictor.split_logits(split)  # raw logits, from the checkpoint's disk cache
    keep = np.ones(len(labels), dtype=bool)
    if exclude is not None:
        keep[np.asarray(exclude, np.int64)] = False
    logits, labels = logits[keep], labels[keep]
    out: dict = {"images": int(keep.sum())}
    for name, temperature in (("before", 1.0), ("after", predictor.cnn_temperature)):
        out[name] = digit_metrics(logits, labels, temperature)
        if tables:
            probs = softmax(logits, temperature)
            out[name + "_table"] = reliability(probs.max(axis=1), probs.argmax(axis=1) == labels)
    return out


def risk_coverage(df: pd.DataFrame) -> pd.DataFrame:
    """Sequences sorted by p_exact, surest first: coverage (share kept) and risk (error rate of the kept)."""
    df = rows_of(df)  # an EvalTable's per-sequence columns
    kept = df.dropna(subset=["p_exact"]).sort_values("p_exact", ascending=False, kind="stable")
    errors = np.cumsum(~kept["exact"].to_numpy())
    n = np.arange(1, len(kept) + 1)
    return pd.DataFrame({"threshold": kept["p_exact"].to_numpy(), "coverage": n / len(df), "risk": errors / n})


def aurc(curve: pd.DataFrame) -> float:
    """Area under the risk-coverage curve (the mean risk over all coverages)."""
    return float(curve["risk"].mean()) if len(curve) else float("nan")


def exact_at_coverage(df: pd.DataFrame, coverage: float = 0.9) -> float:
    """Exact-match on the `coverage` share of sequences with the highest p_exact."""
    df = rows_of(df)  # an EvalTable's per-sequence columns
    curve = risk_coverage(df)
    if not len(curve):
        return float("nan")
    k = max(1, int(round(coverage * len(df))))
    return float(1.0 - curve["risk"].iloc[min(k, len(curve)) - 1])


def at_threshold(df: pd.DataFrame, threshold: float) -> dict[str, float]:
    """Keep the sequences with p_exact >= threshold: the share kept and their exact-match."""
    df = rows_of(df)  # an EvalTable's per-sequence columns
    kept = df[df["p_exact"] >= threshold]
    return {"coverage": len(kept) / max(len(df), 1), "exact": float(kept["exact"].mean()) if len(kept) else float("nan")}


def sum_calibration(df: pd.DataFrame) -> dict:
    """Sum-level figures of an evaluation table (core.evaluate's columns): the ECE of p_exact, interval
    coverage by length, AURC and exact-match at 90% coverage. NaN where the head has no distribution."""
    df = rows_of(df)  # an EvalTable's per-sequence columns
    known = df.dropna(subset=["p_exact"])
    if not len(known):
        return {"available": False}
    covered = (known["interval_lo"] <= known["true_sum"]) & (known["true_sum"] <= known["interval_hi"])
    return {
        "available": True,
        "sum_ece": ece(known["p_exact"], known["exact"]),
        "mean_p_exact": float(known["p_exact"].mean()), "exact": float(known["exact"].mean()),
        "coverage_by_length": {int(k): float(v) for k, v in covered.groupby(known["length"]).mean().items()},
        "interval_width_by_length": {int(k): float(v) for k, v in
                                     (known["interval_hi"] - known["interval_lo"]).groupby(known["length"]).mean().items()},
        "aurc": aurc(risk_coverage(known)), "exact_at_90": exact_at_coverage(known, 0.9),
    }

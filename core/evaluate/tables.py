"""Evaluation: per-sequence results as a DataFrame, and the aggregates every report and chart uses.

One place for the metrics: the benchmark, `scripts/evaluate` and the dashboard all call these.
Reported figures use the test split only (core.data.split_arrays(mnist, "test")).

Per-sequence columns (`evaluate_sequences`):
  seq_id, split, length, true_sum, pred_sum, pred_rounded, error (pred - true), abs_error,
  exact (rounded prediction == true sum), true_digits, pred_digits, digit_conf, n_wrong_digits,
  indices (image indices into the split), running (the model's running sum after each step)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.data import load_mnist, split_arrays
from core.data.sequences import Sequences, generate_sequences
from core.seeds import derive_seed

ORIGINAL_MAE = 0.838  # the original project: test MAE on 20,000 length-10 sequences
ORIGINAL_PROTOCOL = {"length": 10, "count": 20_000, "seed": 0}


def evaluate_sequences(predictor, seqs: Sequences, split_images: np.ndarray, id_offset: int = 0) -> pd.DataFrame:
    """Run the predictor over `seqs` (CNN once per unique image) and return one row per sequence."""
    # A real Predictor serves a whole split's images from its cached logits (test doubles take no split).
    by_split = {"split": seqs.split} if hasattr(predictor, "split_logits") else {}
    prediction = predictor.run_indexed(split_images, seqs.indices, seqs.lengths, **by_split)
    rows = {
        "seq_id": np.arange(len(seqs)) + id_offset,
        "split": seqs.split,
        "length": seqs.lengths,
        "true_sum": seqs.sums,
        "pred_sum": prediction.sums,
    }
    df = pd.DataFrame(rows)
    df["pred_rounded"] = np.rint(df["pred_sum"]).astype(np.int64)
    df["error"] = df["pred_sum"] - df["true_sum"]
    df["abs_error"] = df["error"].abs()
    df["exact"] = df["pred_rounded"] == df["true_sum"]
    df["p_exact"] = prediction.p_exact  # NaN for heads without a distribution over the sum
    df["interval_lo"], df["interval_hi"] = prediction.interval[:, 0], prediction.interval[:, 1]
    # The list columns, built over every position at once (row-major: sequence order), then cut per row.
    lengths = np.asarray(seqs.lengths, np.int64)
    ends = np.cumsum(lengths)
    bounds = list(zip((ends - lengths).tolist(), ends.tolist()))
    used = np.arange(seqs.indices.shape[1]) < lengths[:, None]

    def per_row(flat: np.ndarray) -> list[list]:
        values = flat.tolist()
        return [values[start:end] for start, end in bounds]

    probs = np.concatenate(prediction.digit_probs)
    top2 = np.argsort(-probs, axis=1, kind="stable")[:, :2]  # the two most likely readings of each digit
    top2_conf = np.round(np.take_along_axis(probs, top2, axis=1).astype(float), 4)
    true_flat = seqs.digits[used]
    df["true_digits"] = per_row(true_flat)
    df["pred_digits"] = per_row(top2[:, 0])
    df["digit_conf"] = per_row(top2_conf[:, 0])  # calibrated
    df["second_digits"] = per_row(top2[:, 1])
    df["second_conf"] = per_row(top2_conf[:, 1])
    df["n_wrong_digits"] = np.add.reduceat((true_flat != top2[:, 0]).astype(np.int64), ends - lengths)
    df["indices"] = per_row(seqs.indices[used])
    df["running"] = per_row(np.concatenate([np.asarray(r, dtype=float) for r in prediction.running]))
    return df


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


def evaluation_set(predictor, lengths, per_length: int, seed: int, split: str = "test", exclude=None) -> pd.DataFrame:
    """evaluation_sequences(...) evaluated; seq_id runs over the set. One padded batch, one predictor
    call: every image shared between lengths goes through the CNN once."""
    images, labels = split_arrays(load_mnist(), split)
    seqs = evaluation_sequences(lengths, per_length, seed, split, labels, exclude)
    return evaluate_sequences(predictor, seqs, images)


def mark_suspects(df: pd.DataFrame, suspect_indices) -> pd.DataFrame:
    """Add column `suspect_only`: the sequence is wrong and every digit it misreads is an image with a
    suspect label (core.label_issues), so the error may be the label's fault, not the model's."""
    suspects = set(int(i) for i in suspect_indices)
    flags = []
    for exact, idx, true, pred in zip(df["exact"], df["indices"], df["true_digits"], df["pred_digits"]):
        misread = [i for i, t, p in zip(idx, true, pred) if t != p]
        flags.append(bool(not exact and misread and all(i in suspects for i in misread)))
    return df.assign(suspect_only=flags)


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


# --------------------------------------------------------------------------- aggregates

def _metrics(group: pd.DataFrame) -> pd.Series:
    wrong = group["n_wrong_digits"].sum()
    digits = group["length"].sum()
    return pd.Series({
        "n": len(group),
        "mae": group["abs_error"].mean(),
        "rmse": float(np.sqrt((group["error"] ** 2).mean())),
        "exact_acc": group["exact"].mean(),
        "mean_error": group["error"].mean(),
        "digit_acc": 1 - wrong / digits if digits else np.nan,
    })


def summary(df: pd.DataFrame) -> dict:
    """Headline figures of a results table: n, mae, rmse, exact_acc, mean_error, digit_acc."""
    if df.empty:
        return {"n": 0, "mae": np.nan, "rmse": np.nan, "exact_acc": np.nan, "mean_error": np.nan, "digit_acc": np.nan}
    return {key: float(value) for key, value in _metrics(df).items()} | {"n": len(df)}


def by_length(df: pd.DataFrame) -> pd.DataFrame:
    """One row per sequence length: n, mae, rmse, exact_acc, mean_error, digit_acc."""
    out = df.groupby("length", sort=True)[list(df.columns)].apply(_metrics).reset_index()
    return out.astype({"n": int})


def sum_bucket(true_sum: pd.Series, width: int) -> pd.Series:
    """Lower edge of each sum's bucket [lo, lo + width)."""
    if int(width) < 1:
        raise ValueError(f"bucket width must be a positive integer, got {width!r}")
    return (true_sum // int(width)) * int(width)


def by_sum_range(df: pd.DataFrame, width: int = 10) -> pd.DataFrame:
    """One row per true-sum bucket: sum_lo, sum_hi (inclusive), n, mae, rmse, exact_acc, ..."""
    keyed = df.assign(sum_lo=sum_bucket(df["true_sum"], width))
    out = keyed.groupby("sum_lo", sort=True)[list(df.columns)].apply(_metrics).reset_index()
    out.insert(1, "sum_hi", out["sum_lo"] + int(width) - 1)
    return out.astype({"n": int})


def by_length_and_sum(df: pd.DataFrame, width: int = 10) -> pd.DataFrame:
    """One row per (length, sum bucket) cell, for the heatmap: length, sum_lo, n, mae, error_rate."""
    keyed = df.assign(sum_lo=sum_bucket(df["true_sum"], width))
    grouped = keyed.groupby(["length", "sum_lo"], sort=True)
    out = grouped.agg(n=("seq_id", "size"), mae=("abs_error", "mean"), exact_acc=("exact", "mean")).reset_index()
    out["error_rate"] = 1 - out["exact_acc"]
    return out


def digit_confusion(df: pd.DataFrame) -> np.ndarray:
    """10x10 counts: rows are true digits, columns the CNN's predicted digits, over every image."""
    true = np.concatenate([np.asarray(d, dtype=int) for d in df["true_digits"]]) if len(df) else np.array([], int)
    pred = np.concatenate([np.asarray(d, dtype=int) for d in df["pred_digits"]]) if len(df) else np.array([], int)
    return np.bincount(true * 10 + pred, minlength=100).reshape(10, 10)


def sequences_with_confusion(df: pd.DataFrame, true_digit: int, pred_digit: int) -> pd.DataFrame:
    """Rows holding at least one image of `true_digit` that the CNN read as `pred_digit`."""
    mask = [any(t == true_digit and p == pred_digit for t, p in zip(ts, ps))
            for ts, ps in zip(df["true_digits"], df["pred_digits"])]
    return df[np.asarray(mask, dtype=bool)] if len(df) else df


def filter_results(df: pd.DataFrame, length_range=None, sum_range=None, errors_only: bool = False) -> pd.DataFrame:
    """Rows within the inclusive length and true-sum ranges; with errors_only, the inexact ones."""
    mask = np.ones(len(df), dtype=bool)
    if length_range is not None:
        mask &= df["length"].between(*length_range).to_numpy()
    if sum_range is not None:
        mask &= df["true_sum"].between(*sum_range).to_numpy()
    if errors_only:
        mask &= ~df["exact"].to_numpy()
    return df[mask]


def worst_sequences(df: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """The n rows with the largest absolute error (ties: longer first)."""
    return df.sort_values(["abs_error", "length"], ascending=[False, False]).head(n)


HEADLINE_EXTRAPOLATION = {100: 1000, 1000: 100}  # length -> sequences (100k digits each)


def headline_figures(predictor, exclude=None) -> dict[str, float]:
    """The figures a checkpoint is judged by, on test images: the original protocol's MAE and
    exact-match, CNN digit accuracy, and MAE / exact-match at lengths 100 and 1000. exclude: test
    image indices to set aside (e.g. suspect labels), from the sequences and the digit accuracy."""
    images, labels = split_arrays(load_mnist(), "test")
    proto = ORIGINAL_PROTOCOL
    seqs = generate_sequences("test", proto["count"], proto["length"], seed=proto["seed"], labels=labels,
                              exclude=exclude)
    overall = summary(evaluate_sequences(predictor, seqs, images))
    out = {"protocol_mae": overall["mae"], "protocol_exact": overall["exact_acc"],
           "digit_acc": digit_accuracy(predictor, exclude=exclude)}
    for length, count in HEADLINE_EXTRAPOLATION.items():
        seqs = generate_sequences("test", count, length, seed=derive_seed(proto["seed"], length), labels=labels,
                                  exclude=exclude)
        stats = summary(evaluate_sequences(predictor, seqs, images))
        out[f"mae_{length}"], out[f"exact_{length}"] = stats["mae"], stats["exact_acc"]
    return out


def digit_accuracy(predictor, split: str = "test", exclude=None) -> float:
    """The CNN's accuracy on every image of `split` but the excluded (the split's cached logits: a
    temperature never changes the argmax)."""
    labels = split_arrays(load_mnist(), split)[1]
    keep = np.ones(len(labels), bool)
    if exclude is not None:
        keep[np.asarray(exclude, np.int64)] = False
    logits = predictor.split_logits(split)
    return float((logits[keep].argmax(axis=1) == labels[keep]).mean())

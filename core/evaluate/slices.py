"""Error slices: readable rules for the kinds of sequences a model gets wrong.

`find_error_slices(table)` describes each sequence of an evaluation table (core.evaluate.tables) by a
few features: length, true sum, its lowest digit confidence, p_exact, how often each digit occurs,
whether it holds a suspect-label image, and whether it holds both digits of an easily confused pair
(4/9, 3/5, 7/1, 2/7). scikit-learn decision trees learn where the errors are, and every node of a tree
(not just its leaves: Microsoft's Responsible AI error analysis reports the nodes too) becomes a slice:
its path, merged per feature into a rule such as "length ≥ 50 and holds a 7" (core.evaluate.rules).
Every slice holds at least `min_size` sequences, so it is evidence rather than noise.

`compare_slices` does the same for two models on the same sequences; `digit_disagreements` lists the
images of a split that exactly one of two checkpoints reads right.

The table's `suspect_only` column (core.evaluate.tables.mark_suspects) is not a feature: it is true of
wrong sequences only, so it would find the errors by their definition. Pass `suspects` instead.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from core.data import load_mnist, split_arrays
from core.evaluate.rules import candidate_slices
from core.predict.temperature import softmax

REQUIRED = ["seq_id", "length", "true_sum", "pred_rounded", "true_digits", "digit_conf"]
COLUMNS = ["slice", "size", "error_rate", "error_coverage", "seq_ids"]
COMPARE_COLUMNS = ["slice", "size", "error_rate_a", "error_rate_b", "difference", "seq_ids"]
PAIRS = [(4, 9), (3, 5), (7, 1), (2, 7)]  # digits the CNN confuses easily


# --------------------------------------------------------------------------- features

def _check(table: pd.DataFrame, name: str = "table") -> None:
    if not isinstance(table, pd.DataFrame):
        raise ValueError(f"{name} must be a DataFrame of core.evaluate's per-sequence columns, "
                         f"got {type(table).__name__}")
    missing = [c for c in REQUIRED if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}: it needs core.evaluate's {REQUIRED}")


def sequence_features(table: pd.DataFrame, suspects=None, confidences: bool = True) -> pd.DataFrame:
    """One row per sequence (the table's order): length, true_sum, min_conf, p_exact (when the table has
    it for every row), count_0..count_9, has_4_9, has_3_5, has_7_1, has_2_7, and has_suspect (with
    `suspects`, image indices of the split). confidences=False leaves out the model's own confidences."""
    _check(table)
    lengths = np.array([len(d) for d in table["true_digits"]], np.int64)
    rows = np.repeat(np.arange(len(table)), lengths)
    flat = np.concatenate([np.asarray(d, np.int64) for d in table["true_digits"]]) if len(table) else np.zeros(0, int)
    counts = np.bincount(rows * 10 + flat, minlength=10 * len(table)).reshape(len(table), 10)
    out = pd.DataFrame({"length": table["length"].to_numpy(np.int64), "true_sum": table["true_sum"].to_numpy(np.int64)})
    if confidences:
        conf = np.concatenate([np.asarray(c, np.float64) for c in table["digit_conf"]])
        out["min_conf"] = np.minimum.reduceat(conf, np.cumsum(lengths) - lengths)
        if "p_exact" in table.columns and np.isfinite(table["p_exact"].to_numpy(float)).all():
            out["p_exact"] = table["p_exact"].to_numpy(float)  # NaN for regression heads: left out
    for d in range(10):
        out[f"count_{d}"] = counts[:, d]
    for a, b in PAIRS:
        out[f"has_{a}_{b}"] = ((counts[:, a] > 0) & (counts[:, b] > 0)).astype(np.int64)
    if suspects is not None:
        if "indices" not in table.columns:
            raise ValueError("suspects needs the table's `indices` column (the image indices of each sequence)")
        marked = set(int(i) for i in suspects)
        out["has_suspect"] = [int(any(int(i) in marked for i in idx)) for idx in table["indices"]]
    return out


# --------------------------------------------------------------------------- the public functions

def _settings(n: int, tolerance, min_size, max_depth, top) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) or tolerance < 0:
        raise ValueError(f"tolerance must be a number >= 0 (0: an error is any inexact sum), got {tolerance!r}")
    for name, value in (("min_size", min_size), ("max_depth", max_depth), ("top", top)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(min_size) if min_size is not None else max(20, math.ceil(0.01 * n))


def errors_of(table: pd.DataFrame, tolerance: float = 0) -> np.ndarray:
    """bool (n,): the rounded prediction misses the true sum by more than `tolerance`."""
    return np.abs(table["pred_rounded"].to_numpy(float) - table["true_sum"].to_numpy(float)) > tolerance


def _finish(rows: list[dict], order: list[str], columns: list[str], top: int | None) -> pd.DataFrame:
    """Worst first (fewer conditions first among equals), one row per rule text, the first `top`."""
    if not rows:
        return pd.DataFrame(columns=columns)
    out = pd.DataFrame(rows).sort_values([*order, "conditions", "slice"], kind="stable",
                                         ascending=[False] * len(order) + [True, True])
    return out.drop_duplicates("slice")[columns].head(top or len(out)).reset_index(drop=True)


def find_error_slices(table: pd.DataFrame, *, tolerance: float = 0, min_size: int | None = None, suspects=None,
                      max_depth: int = 3, top: int | None = None) -> pd.DataFrame:
    """The slices of `table` (core.evaluate's per-sequence columns; extra columns, filtered rows and any
    seq_ids are fine) where errors gather, worst first (error_rate, then error_coverage): columns slice
    (the rule), size, error_rate, error_coverage (the share of all errors inside the slice) and seq_ids.
    An error is |pred_rounded - true_sum| > tolerance. Slices hold at least min_size sequences (default:
    20, or 1% of the rows when that is more). suspects: test image indices with doubtful labels."""
    _check(table)
    size = _settings(len(table), tolerance, min_size, max_depth, top)
    errors = errors_of(table, tolerance)
    if len(table) < 2 * size or errors.all() or not errors.any():  # nothing to split
        return pd.DataFrame(columns=COLUMNS)

    def make_tree(**kwargs):  # balanced weights: errors are rare, and the tree should chase where they gather
        return DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=size, class_weight="balanced", **kwargs)

    seq_ids = table["seq_id"].to_numpy()
    found = candidate_slices(make_tree, sequence_features(table, suspects), errors, lambda m: errors[m].mean(), size)
    rows = [{"slice": text, "size": int(mask.sum()), "error_rate": float(errors[mask].mean()),
             "error_coverage": float(errors[mask].sum() / errors.sum()), "seq_ids": seq_ids[mask].tolist(),
             "conditions": conditions} for text, mask, conditions in found]
    return _finish(rows, ["error_rate", "error_coverage"], COLUMNS, top)


def _aligned(table_a: pd.DataFrame, table_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both tables in table_a's order, or a ValueError when they do not hold the same sequences."""
    _check(table_a, "table_a")
    _check(table_b, "table_b")
    problem = ValueError("table_a and table_b must hold the same sequences: the same unique seq_ids, each with the "
                         "same length and true sum (evaluate both models on one evaluation set)")
    ids_a, ids_b = table_a["seq_id"], table_b["seq_id"]
    if not (ids_a.is_unique and ids_b.is_unique and len(ids_a) == len(ids_b) and set(ids_a) == set(ids_b)):
        raise problem
    a = table_a.reset_index(drop=True)
    b = table_b.set_index("seq_id", drop=False).reindex(a["seq_id"]).reset_index(drop=True)
    if not (a[["length", "true_sum"]].to_numpy() == b[["length", "true_sum"]].to_numpy()).all():
        raise problem
    return a, b


def compare_slices(table_a: pd.DataFrame, table_b: pd.DataFrame, *, tolerance: float = 0, min_size: int | None = None,
                   suspects=None, max_depth: int = 3, top: int | None = None) -> pd.DataFrame:
    """Two models' tables over the same sequences -> the slices where their error rates differ most
    (|difference| first): slice, size, error_rate_a, error_rate_b, difference (b - a), seq_ids."""
    a, b = _aligned(table_a, table_b)
    size = _settings(len(a), tolerance, min_size, max_depth, top)
    err_a, err_b = errors_of(a, tolerance), errors_of(b, tolerance)
    difference = err_b.astype(float) - err_a.astype(float)
    if len(a) < 2 * size or not difference.any():
        return pd.DataFrame(columns=COMPARE_COLUMNS)

    # A regression tree on err_b - err_a: a node's mean is exactly the slice's difference in error rate,
    # so the trees split where the two models part most, in either direction.
    def make_tree(**kwargs):
        return DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=size, **kwargs)

    # Sequence features only (not either model's confidence), so a rule means the same for both models.
    features = sequence_features(a, suspects, confidences=False)
    found = candidate_slices(make_tree, features, difference, lambda m: abs(difference[m].mean()), size)
    rows = [{"slice": text, "size": int(mask.sum()), "error_rate_a": float(err_a[mask].mean()),
             "error_rate_b": float(err_b[mask].mean()), "difference": float(difference[mask].mean()),
             "gap": abs(float(difference[mask].mean())), "seq_ids": a["seq_id"].to_numpy()[mask].tolist(),
             "conditions": conditions} for text, mask, conditions in found]
    return _finish(rows, ["gap", "size"], COMPARE_COLUMNS, top)


def digit_disagreements(predictor_a, predictor_b, split: str = "test") -> pd.DataFrame:
    """The images of `split` that exactly one of the two predictors reads right: index (in the split),
    label, pred_a, pred_b and each reading's calibrated confidence conf_a, conf_b (from each checkpoint's
    cached split logits)."""
    labels = split_arrays(load_mnist(), split)[1].astype(np.int64)
    readings = []
    for predictor in (predictor_a, predictor_b):
        probs = softmax(predictor.split_logits(split), predictor.cnn_temperature)
        readings.append((probs.argmax(axis=1).astype(np.int64), probs.max(axis=1).astype(np.float64)))
    (pred_a, conf_a), (pred_b, conf_b) = readings
    one_right = (pred_a == labels) != (pred_b == labels)
    return pd.DataFrame({"index": np.flatnonzero(one_right), "label": labels[one_right], "pred_a": pred_a[one_right],
                         "pred_b": pred_b[one_right], "conf_a": conf_a[one_right], "conf_b": conf_b[one_right]})

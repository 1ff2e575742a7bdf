"""Error slices: readable rules for the kinds of sequences a model gets wrong, that hold up on sequences
they were not found on.

`find_error_slices(table)` describes each sequence of an evaluation table (core.evaluate.tables) by a
few features: length, true sum, its lowest digit confidence, p_exact, how often each digit occurs,
whether it holds a suspect-label image, and whether it holds both digits of an easily confused pair
(4/9, 3/5, 7/1, 2/7). Every per-digit feature is computed on the table's flat digit arrays at once.

Two halves. A seeded hash of each seq_id puts every sequence in the search half or the held-out half
(`search_half`: about half each, the same half for a sequence however the table is filtered or ordered,
so the dashboard's slices are stable). On the search half scikit-learn decision trees learn where the
errors are, and every node of a tree becomes a rule (core.evaluate.rules), such as "length ≥ 50 and
holds a 7". Everything reported is then measured on the held-out half, which the search never saw:
- a condition stays in a rule only if it raises the rule's held-out error rate (the rule without it
  has a lower one), so a condition that merely rode along on the search half is dropped;
- a slice is listed only if its held-out error rate is significantly above the held-out base rate (the
  error rate of the whole held-out half): a one-sided binomial test (P(X ≥ errors) for X ~ Binomial(
  held_out_size, base rate)), with Holm's step-down correction over every distinct rule whose held-out
  error rate was looked at (the candidates and each rule tried while dropping conditions), so the
  chance of listing any slice at all where errors do not gather is at most `alpha` (0.05);
- slices are listed worst first (held-out error rate, then coverage), and a slice whose sequences
  overlap a slice listed above it with a Jaccard index above 0.5 (on the whole table) is left out, so
  one cohort is listed once, under its worst rule.

Columns of find_error_slices:
  slice           the rule; its text selects exactly the sequences in seq_ids
  size            the slice's sequences in the whole table (= len(seq_ids))
  held_out_size   its sequences in the held-out half: what the figures below are measured on
  error_rate      its held-out error rate
  ci_low, ci_high the 95% Wilson score interval of that rate
  error_coverage  the share of the held-out half's errors inside the slice
  p_value         the one-sided binomial p-value, Holm-adjusted (listed: p_value <= alpha)
  seq_ids         the slice's sequences in the whole table, both halves (what the dashboard filters on)
Every slice holds at least `min_size` held-out sequences (default 10, or 1% of the held-out half when
that is more: about the 20 sequences of the whole table the search used to need).

`compare_slices` does the same search for two models on the same sequences (on all of them; it ranks
rather than tests); `digit_disagreements` lists the images of a split that exactly one of two
checkpoints reads right.

The table's `suspect_only` column (core.evaluate.tables.mark_suspects) is not a feature: it is true of
wrong sequences only, so it would find the errors by their definition. Pass `suspects` instead.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from core.data import load_mnist, split_arrays
from core.evaluate.rules import candidate_slices, columns_of, describe, mask, transfer
from core.evaluate.tables import EvalTable, as_table
from core.predict.temperature import softmax

REQUIRED = ["seq_id", "length", "true_sum", "pred_rounded", "true_digits", "digit_conf"]
COLUMNS = ["slice", "size", "held_out_size", "error_rate", "ci_low", "ci_high", "error_coverage", "p_value",
           "seq_ids"]
COMPARE_COLUMNS = ["slice", "size", "error_rate_a", "error_rate_b", "difference", "seq_ids"]
PAIRS = [(4, 9), (3, 5), (7, 1), (2, 7)]  # digits the CNN confuses easily
CONFIDENCE = 0.95  # of the Wilson interval
MAX_OVERLAP = 0.5  # the largest Jaccard index between two listed slices


# --------------------------------------------------------------------------- features

def _checked(table, name: str = "table") -> EvalTable:
    """The table as an EvalTable, or a ValueError naming what is wrong with it."""
    if isinstance(table, EvalTable):
        held = set(table.rows.columns) | set(table.digits)
    elif isinstance(table, pd.DataFrame):
        held = set(table.columns)
    else:
        raise ValueError(f"{name} must be a DataFrame of core.evaluate's per-sequence columns (or an EvalTable), "
                         f"got {type(table).__name__}")
    missing = [c for c in REQUIRED if c not in held]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}: it needs core.evaluate's {REQUIRED}")
    return as_table(table)


def _lowest(values: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per sequence, the lowest of its digits' values (1.0 for an empty sequence: no digit to doubt)."""
    lengths = np.diff(offsets)
    out, nonempty = np.ones(len(lengths)), lengths > 0
    if nonempty.any():  # reduceat runs each start to the next: empty sequences between add nothing
        out[nonempty] = np.minimum.reduceat(values, offsets[:-1][nonempty])
    return out


def sequence_features(table, suspects=None, confidences: bool = True) -> pd.DataFrame:
    """One row per sequence (the table's order): length, true_sum, min_conf, p_exact (when the table has
    it for every row), count_0..count_9, has_4_9, has_3_5, has_7_1, has_2_7, and has_suspect (with
    `suspects`, image indices of the split). confidences=False leaves out the model's own confidences.
    `table`: an EvalTable or the public DataFrame."""
    t = _checked(table)
    n, row = len(t), t.row_of_digit
    counts = np.bincount(row * 10 + t.digits["true_digits"], minlength=10 * n).reshape(n, 10)
    out = pd.DataFrame({"length": t.rows["length"].to_numpy(np.int64), "true_sum": t.rows["true_sum"].to_numpy(np.int64)})
    if confidences:
        out["min_conf"] = _lowest(t.digits["digit_conf"], t.offsets)
        if "p_exact" in t.rows.columns and np.isfinite(t.rows["p_exact"].to_numpy(float)).all():
            out["p_exact"] = t.rows["p_exact"].to_numpy(float)  # NaN for regression heads: left out
    for d in range(10):
        out[f"count_{d}"] = counts[:, d]
    for a, b in PAIRS:
        out[f"has_{a}_{b}"] = ((counts[:, a] > 0) & (counts[:, b] > 0)).astype(np.int64)
    if suspects is not None:
        if "indices" not in t.digits:
            raise ValueError("suspects needs the table's `indices` column (the image indices of each sequence)")
        marked = np.isin(t.digits["indices"], np.asarray(suspects, np.int64).ravel())
        out["has_suspect"] = (np.bincount(row[marked], minlength=n) > 0).astype(np.int64)
    return out


# --------------------------------------------------------------------------- halves and statistics

def search_half(seq_ids, seed: int = 0) -> np.ndarray:
    """bool (n,): the sequences the slices are searched on; the others are held out to score them. A
    seeded hash of each seq_id decides (about half each), not the row order, so a sequence stays in its
    half however the table is filtered or shuffled."""
    keys = pd.util.hash_array(pd.util.hash_array(np.asarray(seq_ids)) ^ np.uint64(seed))
    return keys < np.uint64(2**63)


def wilson(errors, n, confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray]:
    """The Wilson score interval of a rate errors / n (arrays): (low, high)."""
    errors, n = np.asarray(errors, float), np.asarray(n, float)
    z = stats.norm.ppf(0.5 + confidence / 2)
    rate, shrink = errors / n, 1 + z**2 / n
    centre = (rate + z**2 / (2 * n)) / shrink
    half = z / shrink * np.sqrt(rate * (1 - rate) / n + z**2 / (4 * n**2))
    return np.clip(centre - half, 0, 1), np.clip(centre + half, 0, 1)


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: rejecting those <= alpha keeps the family-wise error <= alpha."""
    p = np.asarray(p_values, float)
    order, m = np.argsort(p, kind="stable"), len(p)
    out = np.empty(m)
    out[order] = np.maximum.accumulate(np.minimum(1.0, p[order] * (m - np.arange(m))))
    return out


# --------------------------------------------------------------------------- find_error_slices

def _settings(n: int, tolerance, min_size, max_depth, top, default_min: int) -> int:
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float, np.integer, np.floating)) or tolerance < 0:
        raise ValueError(f"tolerance must be a number >= 0 (0: an error is any inexact sum), got {tolerance!r}")
    for name, value in (("min_size", min_size), ("max_depth", max_depth), ("top", top)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    return int(min_size) if min_size is not None else max(default_min, math.ceil(0.01 * n))


def _significance_settings(alpha, seed) -> None:
    if isinstance(alpha, bool) or not isinstance(alpha, (float, int, np.floating)) or not 0 < alpha < 1:
        raise ValueError(f"alpha must be a number between 0 and 1 (the family-wise error rate), got {alpha!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")


def errors_of(rows: pd.DataFrame, tolerance: float = 0) -> np.ndarray:
    """bool (n,): the rounded prediction misses the true sum by more than `tolerance`."""
    return np.abs(rows["pred_rounded"].to_numpy(float) - rows["true_sum"].to_numpy(float)) > tolerance


def _prune(rule: dict, rate) -> dict:
    """Drop conditions until each one left raises rate(rule), the held-out error rate: each time the one
    whose removal leaves the highest rate, while that rate is no lower than the rule's."""
    while rule:
        shorter = [{k: v for k, v in rule.items() if k != f} for f in rule]
        rates = [rate(r) for r in shorter]
        if max(rates) < rate(rule):
            return rule
        rule = shorter[int(np.argmax(rates))]
    return rule


class _HeldOut:
    """The held-out half: error rates of rules (whole-table bounds select the same rows here), and every
    distinct set of rows whose rate was looked at, each of which counts as one test."""

    def __init__(self, columns: dict[str, np.ndarray], errors: np.ndarray):
        self.columns, self.errors, self.looked_at = columns, errors, {}

    def rows(self, rule: dict) -> np.ndarray:
        return mask(rule, self.columns)

    def rate(self, rule: dict) -> float:
        rows = self.rows(rule)
        errors, size = int(self.errors[rows].sum()), int(rows.sum())
        if rule:  # the empty rule is the whole half: the base rate, not a test
            self.looked_at[rows.tobytes()] = (errors, size)
        return errors / size

    def adjusted_p(self) -> dict[bytes, float]:
        """{rows: Holm-adjusted one-sided binomial p-value against the base rate} of every rule looked at."""
        errors, sizes = (np.array(v) for v in zip(*self.looked_at.values()))
        raw = stats.binom.sf(errors - 1, sizes, self.errors.mean())  # P(X >= errors) under the base rate
        return dict(zip(self.looked_at, holm(raw)))


def _judged(found: list[dict], search: dict, columns: dict, held_out: _HeldOut, min_size: int) -> list[dict]:
    """The rules found on the search half, carried to the whole table and pruned on the held-out half,
    one per set of rows (the plainest). A rule with fewer than min_size held-out sequences is not judged."""
    out = {}
    for rule in found:
        rule = transfer(rule, search, columns)
        if not rule or held_out.rows(rule).sum() < min_size:
            continue
        rule = _prune(rule, held_out.rate)
        if not rule:  # no condition raised the held-out error rate
            continue
        plainness, key = (len(rule), len(describe(rule, columns))), mask(rule, columns).tobytes()
        if key not in out or plainness < out[key][0]:
            out[key] = (plainness, rule)
    return [rule for _, rule in out.values()]


def _slice_row(rule: dict, columns: dict, held_out: _HeldOut, adjusted: dict, seq_ids: np.ndarray) -> dict:
    rows, held = mask(rule, columns), held_out.rows(rule)
    errors, size = int(held_out.errors[held].sum()), int(held.sum())
    low, high = wilson(errors, size)
    return {"slice": describe(rule, columns), "size": int(rows.sum()), "held_out_size": size,
            "error_rate": errors / size, "ci_low": float(low), "ci_high": float(high),
            "error_coverage": errors / int(held_out.errors.sum()), "p_value": float(adjusted[held.tobytes()]),
            "seq_ids": seq_ids[rows].tolist(), "conditions": len(rule), "rows": rows}


def _ranked(rows: list[dict], order: list[str]) -> pd.DataFrame:
    """Largest `order` first, the plainest among equals (fewer conditions, shorter text), one row per rule text."""
    out = pd.DataFrame(rows).assign(chars=lambda d: d["slice"].str.len())
    out = out.sort_values([*order, "conditions", "chars", "slice"], kind="stable",
                          ascending=[False] * len(order) + [True, True, True])
    return out.drop_duplicates("slice").reset_index(drop=True)


def _distinct(ranked: pd.DataFrame) -> pd.DataFrame:
    """The ranked slices less each one that overlaps one above it with a Jaccard index above MAX_OVERLAP."""
    kept: list[np.ndarray] = []
    keep = []
    for rows in ranked["rows"]:
        keep.append(all((rows & other).sum() <= MAX_OVERLAP * (rows | other).sum() for other in kept))
        if keep[-1]:
            kept.append(rows)
    return ranked[keep]


def find_error_slices(table, *, tolerance: float = 0, min_size: int | None = None, suspects=None, max_depth: int = 3,
                      top: int | None = None, alpha: float = 0.05, seed: int = 0) -> pd.DataFrame:
    """The slices of `table` (an EvalTable, or the public DataFrame; extra columns, filtered rows and any
    seq_ids are fine) where errors gather, worst first, found on the search half and measured on the
    held-out half (seed: which sequences go in which half): the module docstring's columns. An error is
    |pred_rounded - true_sum| > tolerance. Listed slices are significantly worse than the held-out base
    rate (one-sided binomial test, Holm-corrected, family-wise error alpha), hold at least min_size
    held-out sequences and overlap no slice above them by a Jaccard index above 0.5. suspects: test
    image indices with doubtful labels."""
    t = _checked(table)
    _significance_settings(alpha, seed)
    search = search_half(t.rows["seq_id"].to_numpy(), seed)
    size = _settings(int((~search).sum()), tolerance, min_size, max_depth, top, default_min=10)
    errors = errors_of(t.rows, tolerance)
    halves = (errors[search], errors[~search])
    if min(len(e) for e in halves) < 2 * size or any(e.all() or not e.any() for e in halves):  # nothing to split
        return pd.DataFrame(columns=COLUMNS)

    def make_tree(**kwargs):  # balanced weights: errors are rare, and the tree should chase where they gather
        return DecisionTreeClassifier(max_depth=max_depth, min_samples_leaf=size, class_weight="balanced", **kwargs)

    features = sequence_features(t, suspects)
    columns, search_errors = columns_of(features), halves[0]
    found = candidate_slices(make_tree, features[search], search_errors, lambda m: search_errors[m].mean(), size)
    held_out = _HeldOut({f: v[~search] for f, v in columns.items()}, halves[1])
    rules = _judged(found, columns_of(features[search]), columns, held_out, size)
    if not rules:
        return pd.DataFrame(columns=COLUMNS)
    adjusted, seq_ids = held_out.adjusted_p(), t.rows["seq_id"].to_numpy()
    rows = [row for row in (_slice_row(r, columns, held_out, adjusted, seq_ids) for r in rules) if row["p_value"] <= alpha]
    if not rows:
        return pd.DataFrame(columns=COLUMNS)
    return _distinct(_ranked(rows, ["error_rate", "error_coverage"]))[COLUMNS].head(top).reset_index(drop=True)


# --------------------------------------------------------------------------- two models

def _aligned(table_a, table_b) -> tuple[EvalTable, pd.DataFrame]:
    """table_a as an EvalTable, and table_b's rows in its order, or a ValueError when they do not hold the
    same sequences."""
    a, b = _checked(table_a, "table_a"), _checked(table_b, "table_b")
    problem = ValueError("table_a and table_b must hold the same sequences: the same unique seq_ids, each with the "
                         "same length and true sum (evaluate both models on one evaluation set)")
    ids_a, ids_b = a.rows["seq_id"], b.rows["seq_id"]
    if not (ids_a.is_unique and ids_b.is_unique and len(ids_a) == len(ids_b) and set(ids_a) == set(ids_b)):
        raise problem
    b_rows = b.rows.set_index("seq_id", drop=False).reindex(ids_a).reset_index(drop=True)
    if not (a.rows[["length", "true_sum"]].to_numpy() == b_rows[["length", "true_sum"]].to_numpy()).all():
        raise problem
    return a, b_rows


def compare_slices(table_a, table_b, *, tolerance: float = 0, min_size: int | None = None,
                   suspects=None, max_depth: int = 3, top: int | None = None) -> pd.DataFrame:
    """Two models' tables (EvalTables or public DataFrames) over the same sequences -> the slices where
    their error rates differ most (|difference| first), found and measured on all the sequences: slice,
    size, error_rate_a, error_rate_b, difference (b - a), seq_ids. Slices hold at least min_size sequences
    (default: 20, or 1% of the rows when that is more)."""
    a, b_rows = _aligned(table_a, table_b)
    size = _settings(len(a), tolerance, min_size, max_depth, top, default_min=20)
    err_a, err_b = errors_of(a.rows, tolerance), errors_of(b_rows, tolerance)
    difference = err_b.astype(float) - err_a.astype(float)
    if len(a) < 2 * size or not difference.any():
        return pd.DataFrame(columns=COMPARE_COLUMNS)

    # A regression tree on err_b - err_a: a node's mean is exactly the slice's difference in error rate,
    # so the trees split where the two models part most, in either direction.
    def make_tree(**kwargs):
        return DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=size, **kwargs)

    # Sequence features only (not either model's confidence), so a rule means the same for both models.
    features = sequence_features(a, suspects, confidences=False)
    columns, seq_ids = columns_of(features), a.rows["seq_id"].to_numpy()
    rows = []
    for rule in candidate_slices(make_tree, features, difference, lambda m: abs(difference[m].mean()), size):
        m = mask(rule, columns)
        rows.append({"slice": describe(rule, columns), "size": int(m.sum()), "error_rate_a": float(err_a[m].mean()),
                     "error_rate_b": float(err_b[m].mean()), "difference": float(difference[m].mean()),
                     "gap": abs(float(difference[m].mean())), "seq_ids": seq_ids[m].tolist(), "conditions": len(rule)})
    if not rows:
        return pd.DataFrame(columns=COMPARE_COLUMNS)
    return _ranked(rows, ["gap", "size"])[COMPARE_COLUMNS].head(top).reset_index(drop=True)


# --------------------------------------------------------------------------- digits

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

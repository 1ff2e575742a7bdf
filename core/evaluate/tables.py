"""Evaluation tables: one row per sequence, and the aggregates every report and chart uses.

One place for the metrics: the benchmark, `scripts/evaluate` and the dashboard all call these.
Reported figures use the test split only (core.data.split_arrays(mnist, "test")). With decisions=True,
the truth is a person's label decisions (core.data.decisions): relabelled images carry their decided
label, excluded ones are drawn nowhere; MNIST's own labels are left as they are.

An evaluation is kept columnar (`EvalTable`): the per-sequence columns in a DataFrame of scalars, and
the per-digit columns as flat NumPy arrays in sequence order, cut into sequences by `offsets`. Every
aggregate works on those arrays at once, never with a Python loop per sequence, and a table of a
million digits is held once, not copied. The public `evaluation_set` / `evaluate_sequences` return
`EvalTable.frame()`: the same data as a DataFrame whose per-digit columns hold one list per row.

Per-sequence columns:
  seq_id, split, length, true_sum, pred_sum, pred_rounded, error (pred - true), abs_error,
  exact (rounded prediction == true sum), p_exact, interval_lo, interval_hi, n_wrong_digits
Per-digit columns (DIGIT_COLUMNS):
  true_digits, pred_digits, digit_conf (calibrated), second_digits, second_conf (the runner-up
  reading), indices (image indices into the split), running (the model's running sum after each step)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from core.constants import ORIGINAL_MAE, ORIGINAL_PROTOCOL  # noqa: F401  (re-exported by core.evaluate)
from core.data import apply_decisions, load_mnist, split_arrays
from core.data.sequences import evaluation_sequences, generate_sequences
from core.seeds import derive_seed

DIGIT_COLUMNS = {"true_digits": np.int64, "pred_digits": np.int64, "digit_conf": np.float64,
                 "second_digits": np.int64, "second_conf": np.float64, "indices": np.int64, "running": np.float64}


@dataclass(frozen=True, eq=False)
class EvalTable:
    """An evaluation set, columnar. rows: one row per sequence (scalar columns, positional index);
    digits: each per-digit column as one flat array; sequence i's digits are [offsets[i], offsets[i+1])."""

    rows: pd.DataFrame
    digits: dict[str, np.ndarray]
    offsets: np.ndarray  # int64 (len + 1,)

    def __len__(self) -> int:
        return len(self.rows)

    @cached_property
    def row_of_digit(self) -> np.ndarray:
        """For every digit, the position of its sequence in `rows`."""
        return np.repeat(np.arange(len(self)), np.diff(self.offsets))

    def digits_of(self, position: int, column: str) -> np.ndarray:
        return self.digits[column][self.offsets[position] : self.offsets[position + 1]]

    def take(self, which) -> EvalTable:
        """The sub-table of the rows selected by a boolean mask or by positions (in that order)."""
        which = np.asarray(which)
        positions = np.flatnonzero(which) if which.dtype == bool else which.astype(np.int64)
        lengths = np.diff(self.offsets)[positions]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # each kept digit's place in the flat arrays: its sequence's old start, plus its step
        gather = np.repeat(self.offsets[positions] - offsets[:-1], lengths) + np.arange(offsets[-1])
        return EvalTable(self.rows.iloc[positions].reset_index(drop=True),
                         {name: values[gather] for name, values in self.digits.items()}, offsets)

    def row(self, position: int) -> pd.Series:
        """One row with its per-digit columns as lists (the inspector's and generator's view of a sequence)."""
        out = self.rows.iloc[position].copy()
        for name in self.digits:
            out[name] = self.digits_of(position, name).tolist()
        return out

    def frame(self) -> pd.DataFrame:
        """The public table: the scalar columns plus one list per row for each per-digit column."""
        df = self.rows.copy()
        cuts = self.offsets[1:-1]
        for name, values in self.digits.items():
            df[name] = [part.tolist() for part in np.split(values, cuts)] if len(df) else []
        return df

    @classmethod
    def from_frame(cls, df: pd.DataFrame) -> EvalTable:
        """An EvalTable from a public table (outside code may have built or edited it): the list columns
        it holds become flat arrays."""
        listed = [name for name in DIGIT_COLUMNS if name in df.columns]
        lengths = (np.fromiter((len(v) for v in df[listed[0]]), np.int64, len(df)) if listed
                   else df["length"].to_numpy(np.int64))
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        digits = {name: (np.concatenate([np.asarray(v, DIGIT_COLUMNS[name]) for v in df[name]]) if len(df)
                         else np.zeros(0, DIGIT_COLUMNS[name])) for name in listed}
        return cls(df.drop(columns=listed).reset_index(drop=True), digits, offsets)


def as_table(table) -> EvalTable:
    """An EvalTable as is; a public DataFrame (list columns) converted."""
    return table if isinstance(table, EvalTable) else EvalTable.from_frame(table)


def rows_of(table) -> pd.DataFrame:
    """The per-sequence columns of an EvalTable, or a public DataFrame as it is."""
    return table.rows if isinstance(table, EvalTable) else table


def _select(table, mask: np.ndarray):
    """The rows of `table` (an EvalTable or a DataFrame, returned as the same kind) where mask holds."""
    return table.take(mask) if isinstance(table, EvalTable) else table[mask]


def sequence_table(predictor, seqs, split_images: np.ndarray, id_offset: int = 0) -> EvalTable:
    """Run the predictor over `seqs` (CNN once per unique image): one row per sequence, columnar."""
    # A real Predictor serves a whole split's images from its cached logits (test doubles take no split).
    by_split = {"split": seqs.split} if hasattr(predictor, "split_logits") else {}
    prediction = predictor.run_indexed(split_images, seqs.indices, seqs.lengths, **by_split)
    lengths = np.asarray(seqs.lengths, np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    used = np.arange(seqs.indices.shape[1]) < lengths[:, None]  # row-major: sequence order
    probs = np.concatenate(prediction.digit_probs)
    top2 = np.argsort(-probs, axis=1, kind="stable")[:, :2]  # the two most likely readings of each digit
    top2_conf = np.round(np.take_along_axis(probs, top2, axis=1).astype(np.float64), 4)
    true = seqs.digits[used].astype(np.int64)
    digits = {"true_digits": true, "pred_digits": top2[:, 0].astype(np.int64), "digit_conf": top2_conf[:, 0],
              "second_digits": top2[:, 1].astype(np.int64), "second_conf": top2_conf[:, 1],
              "indices": seqs.indices[used].astype(np.int64),
              "running": np.concatenate([np.asarray(r, dtype=np.float64) for r in prediction.running])}
    rows = pd.DataFrame({"seq_id": np.arange(len(lengths)) + id_offset, "split": seqs.split, "length": lengths,
                         "true_sum": seqs.sums, "pred_sum": prediction.sums})
    rows["pred_rounded"] = np.rint(rows["pred_sum"]).astype(np.int64)
    rows["error"] = rows["pred_sum"] - rows["true_sum"]
    rows["abs_error"] = rows["error"].abs()
    rows["exact"] = rows["pred_rounded"] == rows["true_sum"]
    rows["p_exact"] = prediction.p_exact  # NaN for heads without a distribution over the sum
    rows["interval_lo"], rows["interval_hi"] = prediction.interval[:, 0], prediction.interval[:, 1]
    wrong = (true != digits["pred_digits"]).astype(np.int64)
    rows["n_wrong_digits"] = np.bincount(np.repeat(np.arange(len(lengths)), lengths), wrong, len(lengths)).astype(np.int64)
    return EvalTable(rows, digits, offsets)


def evaluate_sequences(predictor, seqs, split_images: np.ndarray, id_offset: int = 0) -> pd.DataFrame:
    """sequence_table(...) as the public DataFrame (one list per row for each per-digit column)."""
    return sequence_table(predictor, seqs, split_images, id_offset).frame()


def evaluation_truth(split: str, exclude=None, decisions: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(labels, exclude) an evaluation of `split` uses: MNIST's labels and `exclude` as given; with
    decisions, the decided labels and `exclude` joined by the excluded images (core.data.decisions)."""
    labels = split_arrays(load_mnist(), split)[1]
    if not decisions:
        return labels, exclude
    labels, excluded = apply_decisions(split, labels)
    return labels, excluded if exclude is None else np.union1d(np.asarray(exclude, np.int64), excluded)


def evaluation_table(predictor, lengths, per_length: int, seed: int, split: str = "test", exclude=None,
                     decisions: bool = False) -> EvalTable:
    """evaluation_sequences(...) evaluated, columnar; seq_id runs over the set. One padded batch, one
    predictor call: every image shared between lengths goes through the CNN once. decisions: see evaluation_truth()."""
    images = split_arrays(load_mnist(), split)[0]
    labels, exclude = evaluation_truth(split, exclude, decisions)
    seqs = evaluation_sequences(lengths, per_length, seed, split, labels, exclude)
    return sequence_table(predictor, seqs, images)


def evaluation_set(predictor, lengths, per_length: int, seed: int, split: str = "test", exclude=None,
                   decisions: bool = False) -> pd.DataFrame:
    """evaluation_table(...) as the public DataFrame."""
    return evaluation_table(predictor, lengths, per_length, seed, split, exclude, decisions).frame()


def suspect_only_mask(table, suspect_indices) -> np.ndarray:
    """Per row: the sequence is wrong and every digit it misreads is an image with a suspect label
    (core.evaluate.label_issues), so the error may be the label's fault, not the model's."""
    t = as_table(table)
    misread = t.digits["true_digits"] != t.digits["pred_digits"]
    innocent = misread & ~np.isin(t.digits["indices"], np.asarray(list(suspect_indices), np.int64))
    n_misread = np.bincount(t.row_of_digit[misread], minlength=len(t))
    n_innocent = np.bincount(t.row_of_digit[innocent], minlength=len(t))
    return ~t.rows["exact"].to_numpy(bool) & (n_misread > 0) & (n_innocent == 0)


def mark_suspects(table, suspect_indices):
    """Add column `suspect_only` (suspect_only_mask) to a table (an EvalTable or a DataFrame)."""
    flags = suspect_only_mask(table, suspect_indices)
    if isinstance(table, EvalTable):
        return EvalTable(table.rows.assign(suspect_only=flags), table.digits, table.offsets)
    return table.assign(suspect_only=flags)


# --------------------------------------------------------------------------- aggregates

def _grouped_metrics(df: pd.DataFrame, keys) -> pd.DataFrame:
    """n, mae, rmse, exact_acc, mean_error, digit_acc per group of `keys` (vectorised groupby sums)."""
    work = df.assign(_sq=df["error"] ** 2, _exact=df["exact"].astype(float))
    g = work.groupby(keys, sort=True)
    out = pd.DataFrame({
        "n": g.size(),
        "mae": g["abs_error"].mean(),
        "rmse": np.sqrt(g["_sq"].mean()),
        "exact_acc": g["_exact"].mean(),
        "mean_error": g["error"].mean(),
        "digit_acc": 1 - g["n_wrong_digits"].sum() / g["length"].sum().where(lambda s: s > 0),
    })
    return out.reset_index().astype({"n": int})


def summary(table) -> dict:
    """Headline figures of a results table: n, mae, rmse, exact_acc, mean_error, digit_acc."""
    df = rows_of(table)
    if df.empty:
        return {"n": 0, "mae": np.nan, "rmse": np.nan, "exact_acc": np.nan, "mean_error": np.nan, "digit_acc": np.nan}
    digits = df["length"].sum()
    return {"n": len(df), "mae": float(df["abs_error"].mean()), "rmse": float(np.sqrt((df["error"] ** 2).mean())),
            "exact_acc": float(df["exact"].mean()), "mean_error": float(df["error"].mean()),
            "digit_acc": float(1 - df["n_wrong_digits"].sum() / digits) if digits else np.nan}


def by_length(table) -> pd.DataFrame:
    """One row per sequence length: n, mae, rmse, exact_acc, mean_error, digit_acc."""
    return _grouped_metrics(rows_of(table), "length")


def sum_bucket(true_sum: pd.Series, width: int) -> pd.Series:
    """Lower edge of each sum's bucket [lo, lo + width)."""
    if int(width) < 1:
        raise ValueError(f"bucket width must be a positive integer, got {width!r}")
    return (true_sum // int(width)) * int(width)


def by_sum_range(table, width: int = 10) -> pd.DataFrame:
    """One row per true-sum bucket: sum_lo, sum_hi (inclusive), n, mae, rmse, exact_acc, ..."""
    df = rows_of(table)
    out = _grouped_metrics(df.assign(sum_lo=sum_bucket(df["true_sum"], width)), "sum_lo")
    out.insert(1, "sum_hi", out["sum_lo"] + int(width) - 1)
    return out


def by_length_and_sum(table, width: int = 10) -> pd.DataFrame:
    """One row per (length, sum bucket) cell, for the heatmap: length, sum_lo, n, mae, error_rate."""
    df = rows_of(table)
    keyed = df.assign(sum_lo=sum_bucket(df["true_sum"], width))
    grouped = keyed.groupby(["length", "sum_lo"], sort=True)
    out = grouped.agg(n=("seq_id", "size"), mae=("abs_error", "mean"), exact_acc=("exact", "mean")).reset_index()
    out["error_rate"] = 1 - out["exact_acc"]
    return out


def digit_confusion(table) -> np.ndarray:
    """10x10 counts: rows are true digits, columns the CNN's predicted digits, over every image."""
    t = as_table(table)
    if "true_digits" not in t.digits:
        return np.zeros((10, 10), np.int64)
    return np.bincount(t.digits["true_digits"] * 10 + t.digits["pred_digits"], minlength=100).reshape(10, 10)


def sequences_with_confusion(table, true_digit: int, pred_digit: int):
    """Rows holding at least one image of `true_digit` that the CNN read as `pred_digit`."""
    t = as_table(table)
    hit = (t.digits["true_digits"] == true_digit) & (t.digits["pred_digits"] == pred_digit)
    return _select(table, np.bincount(t.row_of_digit[hit], minlength=len(t)) > 0)


def filter_results(table, length_range=None, sum_range=None, errors_only: bool = False):
    """Rows within the inclusive length and true-sum ranges; with errors_only, the inexact ones."""
    df = rows_of(table)
    mask = np.ones(len(df), dtype=bool)
    if length_range is not None:
        mask &= df["length"].between(*length_range).to_numpy()
    if sum_range is not None:
        mask &= df["true_sum"].between(*sum_range).to_numpy()
    if errors_only:
        mask &= ~df["exact"].to_numpy(bool)
    return _select(table, mask)


def worst_sequences(table, n: int = 20) -> pd.DataFrame:
    """The n rows with the largest absolute error (ties: longer first)."""
    return rows_of(table).sort_values(["abs_error", "length"], ascending=[False, False]).head(n)


HEADLINE_EXTRAPOLATION = {100: 1000, 1000: 100}  # length -> sequences (100k digits each)


def headline_figures(predictor, exclude=None, decisions: bool = False) -> dict[str, float]:
    """The figures a checkpoint is judged by, on test images: the original protocol's MAE and
    exact-match, CNN digit accuracy, and MAE / exact-match at lengths 100 and 1000. exclude: test
    image indices to set aside (e.g. suspect labels), from the sequences and the digit accuracy.
    decisions: see evaluation_truth()."""
    images = split_arrays(load_mnist(), "test")[0]
    labels, exclude = evaluation_truth("test", exclude, decisions)  # read once: every figure sees the same decisions
    proto = ORIGINAL_PROTOCOL
    seqs = generate_sequences("test", proto["count"], proto["length"], seed=proto["seed"], labels=labels,
                              exclude=exclude)
    overall = summary(sequence_table(predictor, seqs, images))
    out = {"protocol_mae": overall["mae"], "protocol_exact": overall["exact_acc"],
           "digit_acc": _digit_accuracy(predictor, "test", labels, exclude)}
    for length, count in HEADLINE_EXTRAPOLATION.items():
        seqs = generate_sequences("test", count, length, seed=derive_seed(proto["seed"], length), labels=labels,
                                  exclude=exclude)
        stats = summary(sequence_table(predictor, seqs, images))
        out[f"mae_{length}"], out[f"exact_{length}"] = stats["mae"], stats["exact_acc"]
    return out


def digit_accuracy(predictor, split: str = "test", exclude=None, decisions: bool = False) -> float:
    """The CNN's accuracy on every image of `split` but the excluded (the split's cached logits: a
    temperature never changes the argmax). decisions: see evaluation_truth()."""
    return _digit_accuracy(predictor, split, *evaluation_truth(split, exclude, decisions))


def _digit_accuracy(predictor, split: str, labels: np.ndarray, exclude) -> float:
    keep = np.ones(len(labels), bool)
    if exclude is not None:
        keep[np.asarray(exclude, np.int64)] = False
    logits = predictor.split_logits(split)
    return float((logits[keep].argmax(axis=1) == labels[keep]).mean())

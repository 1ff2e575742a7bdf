"""Trustworthy predictions, the tables behind the views: selective prediction (p_exact), suspect labels
and the calibrated-vs-uncalibrated figures. Plain functions of core.evaluate's per-sequence tables, no
Streamlit (tests/test_components_trust.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core import evaluate
from core.evaluate import EvalTable, reliability


def has_distribution(table) -> bool:
    """Whether the evaluated head gave a distribution over each sum (p_exact is NaN otherwise)."""
    rows = table.rows if isinstance(table, EvalTable) else table
    return "p_exact" in rows and bool(rows["p_exact"].notna().any())


def below_p_exact(table: EvalTable, threshold: float) -> EvalTable:
    """The sequences the model is less sure of than `threshold` (p_exact < threshold): the ones a
    selective predictor would hand to a person."""
    return table.take(table.rows["p_exact"].to_numpy(dtype=float) < float(threshold))


def suspect_only_ids(table: EvalTable, suspect_indices) -> set[int]:
    """seq_ids of the wrong sequences whose every misread digit is a suspect image
    (core.evaluate.suspect_only_mask)."""
    return set(table.rows["seq_id"].to_numpy()[evaluate.suspect_only_mask(table, suspect_indices)].tolist())


def image_positions(table: EvalTable) -> pd.DataFrame:
    """One row per digit of the set: image (index into the test split), seq_id, step (1-based)."""
    steps = np.arange(len(table.row_of_digit)) - table.offsets[table.row_of_digit] + 1
    return pd.DataFrame({"image": table.digits["indices"], "seq_id": table.rows["seq_id"].to_numpy()[table.row_of_digit],
                         "step": steps})


def sequences_with_image(table: EvalTable, image: int) -> pd.DataFrame:
    """The rows of `table` that hold test image `image`, with the step(s) where it appears."""
    pos = image_positions(table)
    hits = pos[pos["image"] == int(image)]
    steps = hits.groupby("seq_id")["step"].apply(lambda s: ", ".join(str(v) for v in s)).rename("step")
    rows = table.rows
    return rows[rows["seq_id"].isin(steps.index)].merge(steps, left_on="seq_id", right_index=True)


def usage(table: EvalTable, images) -> dict[int, int]:
    """{image: how many sequences of `table` hold it} for each image of `images`."""
    images = [int(i) for i in images]
    hit = np.isin(table.digits["indices"], images)
    pairs = np.unique(np.stack([table.digits["indices"][hit], table.row_of_digit[hit]]), axis=1)
    counts = dict(zip(*np.unique(pairs[0], return_counts=True))) if pairs.size else {}
    return {i: int(counts.get(i, 0)) for i in images}


def thin(curve: pd.DataFrame, max_points: int = 1500) -> pd.DataFrame:
    """At most `max_points` evenly spaced rows of a risk-coverage curve (ends kept): what the browser gets."""
    if len(curve) <= max_points:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, max_points).round().astype(int))
    return curve.iloc[keep]


def selective(rows: pd.DataFrame, threshold: float) -> dict[str, float]:
    """At a p_exact threshold: coverage and exact-match of the kept sequences (at_threshold), and the
    number handed over (below the threshold)."""
    kept = reliability.at_threshold(rows, threshold)
    return {**kept, "below": int((rows["p_exact"].to_numpy(dtype=float) < float(threshold)).sum())}


def interval_table(summary: dict) -> pd.DataFrame:
    """Per length: how often the 95% interval holds the true sum, and its mean width (sum_calibration)."""
    cover, width = summary.get("coverage_by_length", {}), summary.get("interval_width_by_length", {})
    return pd.DataFrame({"length": list(cover), "interval coverage": list(cover.values()),
                         "mean width": [width.get(k, math.nan) for k in cover]})


def _pct(value) -> str:
    return "—" if value is None or not math.isfinite(value) else f"{value:.2%}"


def trust_figures(digits: dict | None, after: dict, before: dict) -> list[tuple[str, str, str]]:
    """The Overview's trust figures: (label, calibrated value, uncalibrated value), '—' where unknown.
    `digits`: cache.digit_calibration; `after` / `before`: sum_calibration of the calibrated and the
    uncalibrated model's evaluation tables."""
    def get(summary, key):
        return summary.get(key) if summary.get("available") else None

    return [("Digit ECE (test)", _pct(digits["after"]["ece"]) if digits else "—",
             _pct(digits["before"]["ece"]) if digits else "—"),
            ("Sum ECE (p_exact)", _pct(get(after, "sum_ece")), _pct(get(before, "sum_ece"))),
            ("Exact-match at 90% coverage", _pct(get(after, "exact_at_90")), _pct(get(before, "exact_at_90")))]

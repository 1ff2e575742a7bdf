"""Trustworthy predictions, the tables behind the views: selective prediction (p_exact), suspect labels
and the calibrated-vs-uncalibrated figures. Plain functions of core.evaluate's per-sequence tables, no
Streamlit (tests/test_components_trust.py)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from core import evaluate
from core.evaluate import reliability


def has_distribution(df: pd.DataFrame) -> bool:
    """Whether the evaluated head gave a distribution over each sum (p_exact is NaN otherwise)."""
    return "p_exact" in df and bool(df["p_exact"].notna().any())


def below_p_exact(df: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The sequences the model is less sure of than `threshold` (p_exact < threshold): the ones a
    selective predictor would hand to a person."""
    return df[df["p_exact"].to_numpy(dtype=float) < float(threshold)]


def suspect_only_ids(df: pd.DataFrame, suspect_indices) -> set[int]:
    """seq_ids of the wrong sequences whose every misread digit is a suspect image (core.evaluate.
    mark_suspects), computed on the wrong rows only (few, however large the set)."""
    wrong = df[~df["exact"].to_numpy(dtype=bool)]
    if wrong.empty:
        return set()
    marked = evaluate.mark_suspects(wrong, suspect_indices)
    return set(int(i) for i in marked.loc[marked["suspect_only"], "seq_id"])


def image_positions(df: pd.DataFrame) -> pd.DataFrame:
    """One row per digit of the set: image (index into the test split), seq_id, step (1-based)."""
    lengths = df["length"].to_numpy(dtype=np.int64)
    if not len(df):
        return pd.DataFrame({"image": [], "seq_id": [], "step": []}, dtype=np.int64)
    images = np.concatenate([np.asarray(v, dtype=np.int64) for v in df["indices"]])
    steps = np.arange(len(images)) - np.repeat(np.cumsum(lengths) - lengths, lengths) + 1
    return pd.DataFrame({"image": images, "seq_id": np.repeat(df["seq_id"].to_numpy(), lengths), "step": steps})


def sequences_with_image(df: pd.DataFrame, image: int) -> pd.DataFrame:
    """The sequences of `df` that hold test image `image`, with the step(s) where it appears."""
    pos = image_positions(df)
    hits = pos[pos["image"] == int(image)]
    steps = hits.groupby("seq_id")["step"].apply(lambda s: ", ".join(str(v) for v in s)).rename("step")
    return df[df["seq_id"].isin(steps.index)].merge(steps, left_on="seq_id", right_index=True)


def usage(df: pd.DataFrame, images) -> dict[int, int]:
    """{image: how many sequences of `df` hold it} for each image of `images`."""
    pos = image_positions(df)
    counts = pos[pos["image"].isin(list(images))].groupby("image")["seq_id"].nunique()
    return {int(i): int(counts.get(int(i), 0)) for i in images}


def thin(curve: pd.DataFrame, max_points: int = 1500) -> pd.DataFrame:
    """At most `max_points` evenly spaced rows of a risk-coverage curve (ends kept): what the browser gets."""
    if len(curve) <= max_points:
        return curve
    keep = np.unique(np.linspace(0, len(curve) - 1, max_points).round().astype(int))
    return curve.iloc[keep]


def selective(df: pd.DataFrame, threshold: float) -> dict[str, float]:
    """At a p_exact threshold: coverage and exact-match of the kept sequences (at_threshold), and the
    number handed over (below the threshold)."""
    kept = reliability.at_threshold(df, threshold)
    return {**kept, "below": int(len(below_p_exact(df, threshold)))}


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

"""The Training page's comparison of two checkpoints, past the by-length table: the slices whose error rates
differ most (core.evaluate.slices.compare_slices on the same evaluation set), and the test digits that one reads
right and the other wrong (core.evaluate.slices.digit_disagreements), drawn as images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import data
from dashboard.ui import decision_format, slice_charts

MAX_IMAGES = 40  # per side; the heading gives the full count


def image_grid(rows: pd.DataFrame, wrong: str) -> None:
    """Test images with their label and the reading of the checkpoint that gets them wrong (`wrong`: a or b)."""
    if rows.empty:
        st.caption("None.")
        return
    images, decided = data.test_split()[0], data.decided("test")
    shown = rows.head(MAX_IMAGES)
    st.image([images[int(i)] for i in shown["index"]], width=48, clamp=True, caption=[
        f"#{int(r['index'])}: {int(r['label'])}, read {int(r[f'pred_{wrong}'])}"
        + (f" {decision_format.strip_badge(decided[int(r['index'])])}" if int(r["index"]) in decided else "")
        for _, r in shown.iterrows()])
    if len(rows) > MAX_IMAGES:
        st.caption(f"The first {MAX_IMAGES} of {len(rows):,}.")


def where_they_differ(s, path_a: Path, path_b: Path, a: str, b: str) -> None:
    """Draw both sections for checkpoints A (`path_a`, named `a`) and B on the sidebar's set (settings `s`)."""
    st.markdown("**Where they differ** — the slices of the evaluation set whose error rates differ most")
    try:
        compared = data.compared_slices(path_a, path_b, s.lengths, s.per_length, s.seed)
        digits = data.disagreements(path_a, path_b)
    except Exception as exc:  # noqa: BLE001 - a broken checkpoint: the message names the file and the problem
        st.error(f"Cannot compare: {exc}")
        return
    if compared.empty:
        st.caption("No slice of this set has different error rates for the two checkpoints.")
    else:
        # Ten rows need no sorting or scrolling: a static table, its rates written as percentages.
        table = slice_charts.compared_table(compared, "A", "B")
        for col in table.columns[2:]:
            table[col] = [f"{v:+.1%}" if col.startswith("difference") else f"{v:.1%}" for v in table[col]]
        st.table(table.set_index("slice"))
        st.caption(f"A is {a}, B is {b}. A negative difference means B makes fewer errors in that slice.")
    a_right = digits[digits["pred_a"] == digits["label"]]
    b_right = digits[digits["pred_b"] == digits["label"]]
    st.markdown(f"**Digits one reads right and the other wrong** — {len(digits):,} of the test images")
    left, right = st.columns(2)
    with left:
        st.caption(f"A right, B wrong: {len(a_right):,} (B's reading under each)")
        image_grid(a_right, "b")
    with right:
        st.caption(f"B right, A wrong: {len(b_right):,} (A's reading under each)")
        image_grid(b_right, "a")

"""The Digit map's chart and its selection helpers: plain functions of core.evaluate.digit_map's DataFrame
(index, x, y, label, pred, ...), no Streamlit (tests/test_pages_digit_map.py checks them with the view).

What goes to the browser is what it shows: x, y and the image index of each test digit, hover text for the
rare kinds only, and one label per digit cluster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.ui.theme import COLORS

# The kinds of test digit, in drawing order (the rare kinds on top), and their markers. A misread digit whose
# label is also suspect is both: it is drawn apart (amber ringed in red), and either pill selects it.
KINDS = {
    "correct": dict(color=COLORS["muted"], size=4, opacity=0.35),
    "misread": dict(color=COLORS["bad"], size=8, opacity=0.95),
    "suspect label": dict(color=COLORS["true"], size=9, opacity=0.95),
    "misread, suspect label": dict(color=COLORS["true"], size=10, opacity=0.95, line=dict(color=COLORS["bad"], width=2)),
}
PILLS = ("misread", "suspect label")  # what the view's "Also select" offers; each names part of a kind


def digit_kinds(points: pd.DataFrame, suspects) -> np.ndarray:
    """Per test digit of the map, its KINDS name: misread (the CNN's reading differs from the label), its
    label among the given suspect indices, both, or neither ('correct')."""
    misread = points["pred"].to_numpy() != points["label"].to_numpy()
    suspect = points["index"].isin(list(suspects)).to_numpy()
    return np.select([misread & suspect, suspect, misread], ["misread, suspect label", "suspect label", "misread"],
                     "correct").astype(object)


def of_kinds(kinds: np.ndarray, pills) -> np.ndarray:
    """Which digits the given PILLS pick: those whose kind includes one of them."""
    return np.isin(kinds, [kind for kind in KINDS if set(kind.split(", ")) & set(pills)])


def telling_first(picked: list[int], points: pd.DataFrame, kinds: np.ndarray) -> list[int]:
    """The picked test indices, misread digits first, then suspect labels, then the rest, each group in
    picking order: a view that shows only the first few shows the digits worth a look."""
    rank = np.select([of_kinds(kinds, ["misread"]), of_kinds(kinds, ["suspect label"])], [0, 1], 2)
    order = np.argsort(pd.Series(rank, index=points["index"]).reindex(picked).to_numpy(), kind="stable")
    return [picked[i] for i in order]


def digit_map_figure(points: pd.DataFrame, kinds: np.ndarray) -> go.Figure:
    """The test digits' 2-D map, one WebGL trace per kind (customdata: each point's test image index), and
    each cluster labelled with its digit at the median position of that label's points. Box select is the
    default drag (lasso and zoom are in the toolbar)."""
    fig = go.Figure()
    for kind, marker in KINDS.items():
        part = points[kinds == kind]
        # Hover text only for the few rare points: 10,000 strings would double what the browser receives.
        text = None if kind == "correct" else [f"label {t}, read {p}" for t, p in zip(part["label"], part["pred"])]
        fig.add_trace(go.Scattergl(
            x=part["x"], y=part["y"], mode="markers", name=f"{kind} ({len(part):,})", marker=marker,
            customdata=part["index"].to_numpy(), text=text,
            hovertemplate="test image %{customdata}<br>" + ("read as labelled" if text is None else "%{text}")
                          + "<extra></extra>"))
    # Annotations, not a trace: a selection never picks them, and they stay readable above the points.
    for digit, (x, y) in points.groupby("label")[["x", "y"]].median().iterrows():
        fig.add_annotation(x=x, y=y, text=str(digit), showarrow=False, font=dict(size=22),
                           bgcolor="rgba(128, 128, 128, 0.35)", borderpad=2)
    fig.update_xaxes(showticklabels=False, title_text=None)
    fig.update_yaxes(showticklabels=False, title_text=None)
    fig.update_layout(height=560, margin=dict(t=10, b=10, l=10, r=10), dragmode="select",
                      legend=dict(orientation="h", y=1.02, x=0, yanchor="bottom"))
    return fig

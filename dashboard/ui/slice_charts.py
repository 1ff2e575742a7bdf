"""Chart and table builders for the Slices view, the checkpoint comparison and the Digit map's selection
(its chart: dashboard/ui/map_charts.py): plain functions of DataFrames, no Streamlit
(tests/test_pages_slices.py checks them with the views).

What goes to the browser is what it shows: slice tables drop their seq_ids lists.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.ui.theme import COLORS

SLICE_COLUMNS = ["slice", "size", "held_out_size", "error_rate", "ci_low", "ci_high", "error_coverage", "p_value"]


def slice_table(slices: pd.DataFrame, limit: int | None = None) -> pd.DataFrame:
    """The slices as shown: rule, size, the held-out error rate with its interval, coverage and the
    Holm-adjusted p-value (no seq_ids), worst first. Tables from before the held-out columns still show."""
    out = slices[[c for c in SLICE_COLUMNS if c in slices.columns]].reset_index(drop=True)
    return out if limit is None else out.head(limit)


def slice_bars(slices: pd.DataFrame, limit: int = 15) -> go.Figure:
    """Error rate of the `limit` worst slices as horizontal bars, coloured by coverage (the share of all
    the set's errors that fall in the slice); bar i is row i of `slices`."""
    top = slices.head(limit)
    coverage = top["error_coverage"].to_numpy(dtype=float)
    rate = top["error_rate"].to_numpy(dtype=float)
    interval = ({"error_x": dict(type="data", symmetric=False, array=top["ci_high"].to_numpy(float) - rate,
                                 arrayminus=rate - top["ci_low"].to_numpy(float), color=COLORS["muted"])}
                if "ci_low" in top else {})
    fig = go.Figure(go.Bar(
        x=rate, y=[f"{i + 1}. {rule}" for i, rule in enumerate(top["slice"])], orientation="h", **interval,
        customdata=np.stack([top["size"], coverage], -1),
        marker=dict(color=coverage, colorscale="Reds", cmin=0, cmax=max(float(coverage.max(initial=0)), 1e-9),
                    colorbar=dict(title="coverage", tickformat=".0%")),
        hovertemplate="%{y}<br>error rate %{x:.1%}<br>%{customdata[0]:.0f} sequences<br>"
                      "%{customdata[1]:.1%} of all errors<extra></extra>"))
    fig.update_yaxes(autorange="reversed", automargin=True)
    fig.update_xaxes(tickformat=".0%", title_text="held-out error rate in the slice (95% interval)", rangemode="tozero")
    fig.update_layout(height=max(220, 28 * len(top) + 80), margin=dict(t=10, b=10, l=10, r=10),
                      clickmode="event+select")
    return fig


def selected_images(event, extra=()) -> list[int]:
    """The test image indices picked in a plotly selection event (their customdata), plus `extra`."""
    points = (event or {}).get("selection", {}).get("points", []) if event else []
    picked = [int(p["customdata"][0] if isinstance(p.get("customdata"), list) else p["customdata"])
              for p in points if p.get("customdata") is not None]
    return list(dict.fromkeys([*picked, *(int(i) for i in extra)]))


def compared_table(compared: pd.DataFrame, a: str, b: str, limit: int = 10) -> pd.DataFrame:
    """The slices whose error rates differ most between two checkpoints, named after them (no seq_ids)."""
    out = compared[["slice", "size", "error_rate_a", "error_rate_b", "difference"]].head(limit)
    return out.rename(columns={"error_rate_a": f"error rate · {a}", "error_rate_b": f"error rate · {b}",
                               "difference": "difference (B − A)"})

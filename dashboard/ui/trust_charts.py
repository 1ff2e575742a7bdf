"""Chart builders for the trust figures (plotly, pure functions, tests/test_components_trust.py):
reliability diagrams, the risk-coverage curve and one sequence's distribution over its sum."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.ui.theme import COLORS

SIDES = {"before": COLORS["muted"], "after": COLORS["pred"]}  # uncalibrated, calibrated


def reliability_figure(tables: dict[str, pd.DataFrame], eces: dict[str, float], what: str) -> go.Figure:
    """Accuracy against mean confidence per bin (core.evaluate.reliability.reliability), one line per
    side ("before" / "after" calibration), with the diagonal a calibrated model would follow. Marker
    size grows with the bin's count; hover gives the count."""
    fig = go.Figure(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                               line=dict(color=COLORS["muted"], dash="dot"), hoverinfo="skip"))
    for side, table in tables.items():
        used = table[table["n"] > 0]
        size = 6 + 14 * np.sqrt(used["n"] / max(int(used["n"].max()) if len(used) else 1, 1))
        label = f"{side} calibration (ECE {eces[side]:.2%})"
        fig.add_trace(go.Scatter(
            x=used["confidence"], y=used["accuracy"], mode="lines+markers", name=label,
            line_color=SIDES.get(side, COLORS["pred"]), marker=dict(size=size), customdata=used["n"],
            hovertemplate="confidence %{x:.1%}<br>" + what + " %{y:.1%}<br>n=%{customdata}<extra>" + side + "</extra>"))
    fig.update_xaxes(range=[-0.02, 1.02], tickformat=".0%", title_text="predicted probability (bin mean)")
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", title_text=f"observed {what}")
    # The legend sits under the axis: above it, it covered the well-calibrated bins near 100%.
    fig.update_layout(height=420, margin=dict(t=10, b=10, l=10, r=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.18, x=0))
    return fig


def risk_coverage_figure(curve: pd.DataFrame, threshold: float | None = None) -> go.Figure:
    """Risk (error rate of the kept sequences) against coverage, surest sequences first
    (core.evaluate.reliability.risk_coverage); a marker where p_exact crosses `threshold`."""
    fig = go.Figure(go.Scatter(x=curve["coverage"], y=curve["risk"], mode="lines", name="risk",
                               line_color=COLORS["pred"], customdata=curve["threshold"],
                               hovertemplate="coverage %{x:.1%}<br>risk %{y:.2%}<br>p_exact ≥ %{customdata:.3f}"
                                             "<extra></extra>"))
    if threshold is not None and len(curve):
        kept = curve[curve["threshold"] >= threshold]
        x, y = (float(kept["coverage"].iloc[-1]), float(kept["risk"].iloc[-1])) if len(kept) else (0.0, 0.0)
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=f"p_exact ≥ {threshold:.2f}",
                                 marker=dict(color=COLORS["true"], size=13, symbol="diamond"),
                                 hovertemplate="coverage %{x:.1%}<br>risk %{y:.2%}<extra>threshold</extra>"))
        fig.add_vline(x=x, line_dash="dash", line_color=COLORS["true"])
    fig.update_xaxes(range=[0, 1.01], tickformat=".0%", title_text="coverage (share of sequences answered)")
    fig.update_yaxes(rangemode="tozero", tickformat=".1%", title_text="risk (error rate of the answered)")
    fig.update_layout(height=360, margin=dict(t=10, b=10, l=10, r=10), showlegend=False)
    return fig


def sum_distribution_figure(start: int, probs: np.ndarray, true_sum: int, interval: tuple[int, int],
                            predicted: int, pad: int = 3) -> go.Figure:
    """P(sum = s) as bars around the interesting range; the 95% interval shaded, the true sum a line
    and the rounded prediction's bar highlighted."""
    probs = np.asarray(probs, dtype=float)
    support = np.arange(start, start + len(probs))
    lo, hi = min(interval[0], true_sum, predicted) - pad, max(interval[1], true_sum, predicted) + pad
    mass = support[probs >= 1e-4]
    if len(mass):
        lo, hi = min(lo, int(mass[0]) - 1), max(hi, int(mass[-1]) + 1)
    keep = (support >= lo) & (support <= hi)
    colors = [COLORS["pred"] if s == predicted else COLORS["muted"] for s in support[keep]]
    fig = go.Figure(go.Bar(x=support[keep], y=probs[keep], marker_color=colors, name="P(sum)",
                           hovertemplate="P(sum = %{x}) = %{y:.4g}<extra></extra>"))
    fig.add_vrect(x0=interval[0] - 0.5, x1=interval[1] + 0.5, fillcolor="rgba(59, 130, 246, 0.12)",
                  line_width=0, layer="below", annotation_text="95% interval", annotation_position="top left",
                  annotation_yshift=-18)  # one line below the true-sum label, which may sit at the same x
    fig.add_vline(x=true_sum, line_color=COLORS["true"], line_width=3, annotation_text=f"true {true_sum}",
                  annotation_position="top right")
    fig.update_xaxes(title_text="sum", range=[lo - 0.5, hi + 0.5])
    fig.update_yaxes(title_text="probability", rangemode="tozero")
    fig.update_layout(height=300, margin=dict(t=30, b=10, l=10, r=10), showlegend=False, bargap=0.1)
    return fig

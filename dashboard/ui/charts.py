"""Chart builders: pure functions from DataFrames / arrays to plotly or altair figures.

No Streamlit here, so every builder is unit-tested directly (tests/test_components.py). Views
render them with `st.plotly_chart(..., theme="streamlit")` / `st.altair_chart`, which adapts the
background and text to the light or dark theme; the data colours come from dashboard.theme.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dashboard.ui.theme import COLORS, SEQUENTIAL, TRAIN_SHADE


def length_figure(stats: pd.DataFrame, train_range: tuple[int, int] | None) -> go.Figure:
    """MAE (left) and exact-match accuracy (right) by sequence length, training range shaded.

    Lengths are categories, so 1..10, 20, 50, 100, 1000 are evenly spaced and readable. MAE uses
    a log axis when it spans more than two decades (extrapolation errors dwarf in-range ones).
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("MAE by length", "Exact-match by length"),
                        horizontal_spacing=0.09)
    x = [str(int(v)) for v in stats["length"]]
    hover = "length %{x}<br>exact-match %{y:.1%}<br>n=%{customdata}<extra></extra>"
    mae = stats["mae"].to_numpy(dtype=float)
    # A log axis only when extrapolation errors dwarf in-range ones (a collapsing head); then MAE
    # is floored at 0.001 for drawing (0 has no logarithm) while the hover shows the real value.
    log_axis = mae.max() > 5 and mae.max() > 50 * max(np.percentile(mae, 25), 1e-3)
    fig.add_trace(go.Scatter(x=x, y=np.maximum(mae, 1e-3) if log_axis else mae, mode="lines+markers",
                             name="MAE", line_color=COLORS["pred"], customdata=np.stack([stats["n"], mae], -1),
                             hovertemplate="length %{x}<br>MAE %{customdata[1]:.4g}<br>n=%{customdata[0]}"
                                           "<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=stats["exact_acc"], mode="lines+markers", name="exact-match",
                             line_color=COLORS["good"], customdata=stats["n"],
                             hovertemplate=hover), row=1, col=2)
    if log_axis:
        fig.update_yaxes(type="log", range=[-3.1, np.log10(mae.max()) + 0.2], row=1, col=1)
    else:
        fig.update_yaxes(rangemode="tozero", row=1, col=1)
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", row=1, col=2)
    fig.update_xaxes(type="category", title_text="sequence length")
    if train_range is not None:
        # On a category axis, shape coordinates are category positions: shade the lengths inside.
        inside = [i for i, v in enumerate(stats["length"]) if train_range[0] <= v <= train_range[1]]
        if inside:
            for col in (1, 2):
                fig.add_vrect(x0=inside[0] - 0.5, x1=inside[-1] + 0.5, fillcolor=TRAIN_SHADE,
                              line_width=0, layer="below", row=1, col=col)
            fig.add_annotation(x=inside[0] - 0.4, y=1.0, xref="x", yref="y domain", showarrow=False,
                               text="trained", xanchor="left", font_color=COLORS["good"])
    fig.update_layout(showlegend=False, height=340, margin=dict(t=40, b=10, l=10, r=10))
    return fig


def heatmap_figure(cells: pd.DataFrame, width: int, metric: str, label: str) -> go.Figure:
    """Length (rows) x true-sum bucket (columns) heatmap of `metric`; hover shows the count.

    `cells` is core.evaluate.by_length_and_sum's long form (length, sum_lo, n, `metric`). Every bucket
    from the lowest to the highest sum gets a column, so an empty bucket shows as a blank column rather
    than the axis skipping it.
    """
    def name(lo: int) -> str:
        return f"{lo}-{lo + width - 1}" if width > 1 else str(lo)

    z = cells.pivot(index="length", columns="sum_lo", values=metric)
    counts = cells.pivot(index="length", columns="sum_lo", values="n")
    lows = range(int(cells["sum_lo"].min()), int(cells["sum_lo"].max()) + 1, int(width)) if len(cells) else []
    z, counts = z.reindex(columns=list(lows)), counts.reindex(columns=list(lows))
    order = [name(lo) for lo in lows]
    fig = go.Figure(go.Heatmap(
        z=z.values, x=order, y=[str(v) for v in z.index], customdata=counts.values,
        colorscale=SEQUENTIAL, colorbar_title=label, hoverongaps=False,
        hovertemplate="length %{y}, sum %{x}<br>" + label + " %{z:.4g}<br>n=%{customdata}"
                      "<extra></extra>"))
    fig.update_xaxes(type="category", title_text="true sum range")
    fig.update_yaxes(type="category", title_text="sequence length")
    fig.update_layout(height=380, margin=dict(t=10, b=10, l=10, r=10))
    return fig


def error_histogram(errors: pd.Series, bins: int = 80) -> go.Figure:
    """Signed error (predicted - true); dashed lines at +/-0.5 bound the errors that still round
    to the right sum. Counts switch to a log axis when one bar dwarfs the rest (a strong model puts
    nearly everything at 0), so the tails stay visible."""
    values = np.asarray(errors, dtype=float)
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.zeros(1), np.array([-1, 1]))
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(go.Bar(x=centres, y=counts, width=np.diff(edges), marker_color=COLORS["pred"],
                           customdata=np.stack([edges[:-1], edges[1:]], -1),
                           hovertemplate="error %{customdata[0]:.2f} to %{customdata[1]:.2f}<br>"
                                         "%{y} sequences<extra></extra>"))
    for x in (-0.5, 0.5):
        fig.add_vline(x=x, line_dash="dash", line_color=COLORS["muted"])
    nonzero = counts[counts > 0]
    log_counts = len(nonzero) > 1 and nonzero.max() > 20 * np.median(nonzero)
    fig.update_layout(height=320, bargap=0.02, margin=dict(t=10, b=10, l=10, r=10),
                      xaxis_title="predicted - true sum",
                      yaxis_title="sequences (log scale)" if log_counts else "sequences")
    if log_counts:
        fig.update_yaxes(type="log")
    return fig


def _points(fig: go.Figure, part: pd.DataFrame, name: str, color: str) -> None:
    # SVG, not WebGL: at most max_points points, and a WebGL context costs more than it saves here
    # (a software-rendered one takes a second to start in a browser without a GPU).
    fig.add_trace(go.Scatter(
        x=part["true_sum"], y=part["pred_sum"], mode="markers", name=name,
        marker=dict(color=color, size=5, opacity=0.7), customdata=part["seq_id"],
        hovertemplate="seq %{customdata}<br>true %{x}<br>pred %{y:.2f}<extra></extra>"))


def pred_vs_true_figure(df: pd.DataFrame, max_points: int = 1000, bins: int = 60) -> go.Figure:
    """Predicted vs true sum with the y = x diagonal. Up to `max_points` sequences are drawn as
    points (red when the rounded prediction is wrong). Beyond that the exact ones become a density
    grid binned here (np.histogram2d: the browser gets bins x bins counts, not every point) and the
    wrong ones (up to `max_points`) stay red points on top, so they still stand out."""
    fig = go.Figure()
    exact = df["exact"].to_numpy(bool)
    if len(df) <= max_points:
        _points(fig, df[exact], "exact", COLORS["good"])
        _points(fig, df[~exact], "wrong", COLORS["bad"])
    else:
        x, y = df["true_sum"].to_numpy(float), df["pred_sum"].to_numpy(float)
        counts, x_edges, y_edges = np.histogram2d(x, y, bins=bins)
        fig.add_trace(go.Heatmap(x=(x_edges[:-1] + x_edges[1:]) / 2, y=(y_edges[:-1] + y_edges[1:]) / 2,
                                 z=np.where(counts.T > 0, counts.T, np.nan), colorscale=SEQUENTIAL,
                                 colorbar_title="sequences", name="all sequences",
                                 hovertemplate="true ≈ %{x:.0f}<br>pred ≈ %{y:.0f}<br>%{z} sequences<extra></extra>"))
        wrong = df[~exact]
        _points(fig, wrong.nlargest(max_points, "abs_error") if len(wrong) > max_points else wrong, "wrong",
                COLORS["bad"])
    if len(df):
        lo = float(min(df["true_sum"].min(), df["pred_sum"].min()))
        hi = float(max(df["true_sum"].max(), df["pred_sum"].max()))
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="y = x",
                                 line=dict(color=COLORS["muted"], dash="dot"), hoverinfo="skip"))
    fig.update_layout(height=360, margin=dict(t=10, b=10, l=10, r=10), xaxis_title="true sum",
                      yaxis_title="predicted sum", legend=dict(orientation="h", y=1.08))
    return fig


def confusion_figure(cm: np.ndarray) -> go.Figure:
    """The CNN's 10x10 confusion matrix (rows true digit, columns predicted digit).

    The diagonal is blanked (it dwarfs the errors) and every cell's count is written in it. An
    invisible square marker sits on each cell so a click selects it: Streamlit's selection events
    come from point traces, not from heatmaps.
    """
    cm = np.asarray(cm)
    if cm.shape != (10, 10):
        raise ValueError(f"confusion matrix must be 10x10, got {cm.shape}")
    off = cm.astype(float)
    np.fill_diagonal(off, np.nan)
    digits = [str(d) for d in range(10)]
    text = np.where(cm > 0, cm.astype(str), "")  # empty cells stay quiet
    fig = go.Figure(go.Heatmap(z=off, x=digits, y=digits, colorscale=SEQUENTIAL, text=text,
                               texttemplate="%{text}", hoverinfo="skip", colorbar_title="misreads"))
    tt, pp = np.meshgrid(range(10), range(10), indexing="ij")
    fig.add_trace(go.Scatter(
        x=[str(p) for p in pp.ravel()], y=[str(t) for t in tt.ravel()], mode="markers",
        marker=dict(symbol="square", size=26, color="rgba(0,0,0,0)"), customdata=cm.ravel(),
        hovertemplate="true %{y} read as %{x}: %{customdata} images<extra></extra>",
        showlegend=False))
    fig.update_xaxes(type="category", title_text="predicted digit", side="top")
    fig.update_yaxes(type="category", title_text="true digit", autorange="reversed")
    fig.update_layout(height=420, margin=dict(t=10, b=10, l=10, r=10), clickmode="event+select")
    return fig


def running_chart(running: np.ndarray, true_digits: np.ndarray) -> alt.VConcatChart:
    """The head's running sum after each step beside the true running sum, and under it their
    difference, which shows where a long sequence goes wrong even when the lines overlap (altair:
    plain, readable line charts sharing the step axis)."""
    steps = np.arange(1, len(running) + 1)
    running = np.asarray(running, float)
    truth = np.cumsum(np.asarray(true_digits, float))
    data = pd.DataFrame({
        "step": np.concatenate([steps, steps]),
        "sum": np.concatenate([running, truth]),
        "series": ["predicted (running)"] * len(steps) + ["true (running)"] * len(steps),
    })
    color = alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                      scale=alt.Scale(domain=["predicted (running)", "true (running)"],
                                      range=[COLORS["pred"], COLORS["true"]]))
    x = alt.X("step:Q", title="step", scale=alt.Scale(domain=[1, max(len(steps), 2)]))
    lines = alt.Chart(data).mark_line(point=len(steps) <= 60).encode(
        x=x, y=alt.Y("sum:Q", title="sum"), color=color,
        tooltip=["step", "series", alt.Tooltip("sum:Q", format=".2f")],
    ).properties(height=220)
    gap = alt.Chart(pd.DataFrame({"step": steps, "error": running - truth})).mark_area(
        color=COLORS["bad"], opacity=0.6, line=True,
    ).encode(x=x, y=alt.Y("error:Q", title="pred − true"),
             tooltip=["step", alt.Tooltip("error:Q", format="+.2f")]).properties(height=90)
    return alt.vconcat(lines, gap)


def headline_bar(ours: float, original: float) -> alt.Chart:
    """Our original-protocol MAE beside the original project's, on one axis."""
    data = pd.DataFrame({"model": ["this checkpoint", "original project"], "MAE": [ours, original]})
    return alt.Chart(data).mark_bar().encode(
        x=alt.X("MAE:Q", title="MAE, 20,000 length-10 test sequences"),
        y=alt.Y("model:N", title=None, sort=None),
        color=alt.Color("model:N", legend=None, scale=alt.Scale(
            domain=["this checkpoint", "original project"],
            range=[COLORS["pred"], COLORS["muted"]])),
        tooltip=["model", alt.Tooltip("MAE:Q", format=".3f")],
    ).properties(height=110)

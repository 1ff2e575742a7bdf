"""Error analysis: where does the predictor fail — which lengths, which sums, which digits?

Every chart, the table and the CSV follow the filters at the top (length range, sum range, errors only,
and p_exact below a threshold: the sequences a selective predictor would not answer) and the slice chosen
in Slices, if any. Wrong sequences whose only misread digits are suspect labels are marked.
Numbers come from core.evaluate on the sidebar's evaluation set.
"""

from functools import partial

import streamlit as st

from core import evaluate
from dashboard import data, links, state
from dashboard.ui import table_format, trust_tables

s = state.settings()
predictor = state.require(s)
train = table_format.training_range(predictor.metadata)
full = state.sidebar_evaluation(s)  # links number rows of the whole set

st.title("Error analysis")
table = state.apply_slice(full, state.slice_notice(s))  # a slice chosen in Slices narrows everything
df = table.rows  # the per-sequence columns; per-digit data stays in `table` (flat arrays)
has_dist = trust_tables.has_distribution(df)
if (request := st.session_state.pop(state.P_EXACT_REQUEST, None)) is not None and has_dist:
    # Sent from Calibration: turn the p_exact filter on at its threshold (before the widgets are drawn).
    st.session_state["f_pexact_on"], st.session_state["f_pexact"] = True, float(request)

# ----------------------------------------------------------------------------- filters
lengths = sorted(int(v) for v in df["length"].unique())
max_sum = int(df["true_sum"].max())
f1, f2, f3 = st.columns([3, 3, 1], vertical_alignment="bottom")
# The bounds are part of each key: a new evaluation set starts from its full range.
length_range = (f1.select_slider("Length range", options=lengths, value=(lengths[0], lengths[-1]),
                                 key=f"f_len_{lengths[0]}_{lengths[-1]}_{len(lengths)}")
                if len(lengths) > 1 else (lengths[0], lengths[0]))
sum_range = f2.slider("True-sum range", 0, max(max_sum, 1), (0, max(max_sum, 1)), key=f"f_sum_{max_sum}")
errors_only = f3.checkbox("Errors only", key="f_errors",
                          help="Only sequences whose rounded prediction is not the true sum.")
g1, g2, _ = st.columns([2, 3, 4], vertical_alignment="center")
pexact_on = g1.checkbox("p_exact below", key="f_pexact_on", disabled=not has_dist,
                        help="Only the sequences the model is unsure of (Calibration view)." if has_dist else
                        state.no_distribution_note(predictor))
st.session_state.setdefault("f_pexact", 0.9)
pexact = g2.slider("p_exact threshold", 0.0, 1.0, step=0.01, key="f_pexact", disabled=not pexact_on,
                   label_visibility="collapsed")
view = evaluate.filter_results(table, length_range, sum_range, errors_only)
if pexact_on and has_dist:
    view = trust_tables.below_p_exact(view, pexact)
rows = view.rows
st.caption(f"{len(view):,} of {len(df):,} sequences match the filters "
           f"({s.per_length} test sequences per length, seed {s.seed}"
           f"{f'; p_exact below {pexact:.2f}' if pexact_on and has_dist else ''}"
           f"{f'; the {s.aside} most suspect images set aside' if s.aside else ''}).")
if rows.empty:
    st.warning("No sequences match these filters: widen the length or sum range, or untick 'Errors only'.")
    st.stop()

# Figures are built once per evaluation set and set of filtered rows (dashboard/data.py).
set_key = state.set_key(s)
figures = data.error_figures(set_key, view, train)

# ----------------------------------------------------------------------------- by length
st.plotly_chart(figures["length"], key="by_length")
st.caption("Mean absolute error (left) and share of sequences whose rounded prediction is exactly "
           "right (right) per length; the green band is the training range, lengths beyond it "
           "show extrapolation.")

# ----------------------------------------------------------------------------- one chart at a time
# Only the chosen chart is built and drawn: each plotly chart costs the browser about 0.1 s to draw.
CHARTS = ["Length × sum heatmap", "Error histogram", "Predicted vs true", "Digit confusion"]
chart = st.radio("Chart", CHARTS, horizontal=True, key="ea_chart", label_visibility="collapsed")
cm = figures["cm"]
if chart == CHARTS[0]:
    h1, h2, _ = st.columns([1, 1, 2])
    suggested = table_format.nice_bucket_width(max_sum)  # ~10-40 columns whatever the lengths
    width = h1.number_input("Sum bucket width", min_value=1, max_value=1000, value=suggested,
                            key=f"bucket_width_{suggested}")
    metric = h2.radio("Colour by", ["mae", "error_rate"], horizontal=True, key="heat_metric",
                      format_func={"mae": "MAE", "error_rate": "error rate"}.get)
    label = "MAE" if metric == "mae" else "error rate"
    st.plotly_chart(data.heatmap(set_key, view, int(width), metric, label), key="heatmap")
    st.caption(f"{label} for each length × true-sum bucket; brighter cells are worse, a blank column is a "
               "sum range no sequence of the filter has. Hover for the number of sequences behind a cell.")
elif chart == CHARTS[1]:
    st.plotly_chart(figures["histogram"], key="histogram")
    st.caption("Signed error (predicted − true). Bars between the dashed lines at ±0.5 still round "
               "to the right sum; a shifted centre means the model is biased.")
elif chart == CHARTS[2]:
    st.plotly_chart(figures["pred_vs_true"], key="pred_vs_true")
    st.caption("Each sequence's predicted against true sum; points off the dotted diagonal are errors. Beyond "
               "1,000 sequences the right ones become a density grid and the wrong ones stay red points.")
else:
    event = st.plotly_chart(figures["confusion"], key="confusion", on_select="rerun", selection_mode="points")
    st.caption("How the CNN read every digit image (rows: true, columns: predicted; diagonal "
               "blanked). Click a cell, or pick digits below, to list the sequences affected.")
    points = event.get("selection", {}).get("points", []) if event else []
    if points:
        clicked = (int(points[0]["y"]), int(points[0]["x"]))
        if clicked != st.session_state.get("_cm_clicked"):
            # A new click drives the selectboxes below (they must be set before they are drawn).
            st.session_state["_cm_clicked"] = clicked
            st.session_state["cm_true"], st.session_state["cm_pred"] = clicked

# Default selection: the most frequent misreading (or, with none, the most frequent digit).
worst_t, worst_p = table_format.most_frequent_confusion(cm)
st.session_state.setdefault("cm_true", worst_t)
st.session_state.setdefault("cm_pred", worst_p)
c1, c2, c3 = st.columns([1, 1, 4], vertical_alignment="bottom")
t = c1.selectbox("True digit", range(10), key="cm_true")
p = c2.selectbox("Read as", range(10), key="cm_pred")
hits = evaluate.sequences_with_confusion(view, t, p).rows
c3.markdown(f"**{len(hits):,}** sequences contain a {t} that the CNN read as {p} "
            f"({int(cm[t, p]):,} such images)." if t != p else
            f"**{len(hits):,}** sequences contain a correctly read {t}.")


def spec(seq_id: int) -> links.SequenceSpec:
    return state.eval_spec(s, seq_id, len(full))


def link(seq_id: int) -> str:
    return links.inspector_url(spec(seq_id), s.checkpoint_name)


suspect_ids = trust_tables.suspect_only_ids(view, data.suspects(s.checkpoint)["index"].head(s.suspect_k))


def shown(picked):
    """The table's columns, its link, p_exact and whether a suspect label alone explains the error."""
    out = table_format.with_links(picked, link)
    if has_dist:
        out.insert(out.columns.get_loc("exact") + 1, "p_exact", picked["p_exact"].to_numpy())
    out.insert(len(out.columns) - 1, "suspect label?", out["seq_id"].isin(suspect_ids))
    return out


LINK = st.column_config.LinkColumn("inspect", display_text="open", help="Opens the sequence in the inspector (new tab)")
FORMATS = {"pred_sum": st.column_config.NumberColumn("pred_sum", format="%.3f"),
           "error": st.column_config.NumberColumn("error", format="%+.3f"),
           "abs_error": st.column_config.NumberColumn("abs_error", format="%.3f"), "inspect": LINK,
           "p_exact": st.column_config.NumberColumn("p_exact", format="%.3f"),
           "suspect label?": st.column_config.CheckboxColumn(
               "suspect label?", help="Wrong, and every digit it misreads is a suspect label (Suspect labels view): "
                                  "possibly the label")}
if len(hits):
    st.dataframe(shown(evaluate.worst_sequences(hits, 200)),
                 hide_index=True, column_config=FORMATS, key="confusion_table", height=220)
    st.caption("Sequences holding the chosen confusion, worst first (at most 200).")

# ----------------------------------------------------------------------------- worst sequences
st.subheader("Worst sequences")
n_worst = st.slider("How many", 5, 200, 25, step=5, key="n_worst")
worst = shown(evaluate.worst_sequences(rows, n_worst))
worst_table = st.dataframe(worst, hide_index=True, column_config=FORMATS, key="worst_table",
                     on_select="rerun", selection_mode="single-row")
n_wrong = int((~rows["exact"]).sum())
st.caption("Largest absolute errors among the filtered sequences. Follow a row's link, or select "
           "a row to open it here. " + (
               f"The {s.aside} most suspect images are set aside (sidebar): no sequence uses them." if s.aside else
               f"**{len(suspect_ids):,}** of the {n_wrong:,} wrong sequences misread only images among the "
               f"{s.suspect_k} most suspect labels (suspect label?): possibly the label."))
picked = worst_table.selection.rows if worst_table else []
if picked:
    seq_id = int(worst.iloc[picked[0]]["seq_id"])
    st.page_link("views/inspector.py", label=f"Open sequence {seq_id} in the inspector",
                 icon=":material/pageview:", query_params=links.link_query(spec(seq_id), s.checkpoint_name))
st.download_button("Download the filtered table (CSV)",
                   partial(table_format.csv_bytes, view),
                   file_name="digitsum_filtered.csv", mime="text/csv", on_click="ignore", key="csv")

"""Digit map: every test digit placed by what the CNN sees in it (core.evaluate.embeddings.digit_map, a 2-D map of its
features), coloured by whether the CNN reads it right, misreads it, or its label is among the sidebar's k most
suspect (or both), each cluster labelled with its digit. Box- or lasso-select (or click) points to see those
images, misread and suspect ones first, and the sequences of the evaluation set that contain them.

The map is computed once per checkpoint, in a subprocess (`python -m scripts.digit_map`): up to a minute
the first time, never inside a Streamlit script thread; this view polls until it is ready, then until the
job's process is reaped.
"""

import streamlit as st

from dashboard import data, links, state
from dashboard.ui import decision_format, map_charts, slice_charts, table_format, trust_tables

MAX_SHOWN = 60  # images drawn for one selection (the count says how many were picked)
POLL_S = 2

s = state.settings()
predictor = state.require(s)
st.title("Digit map")


@st.fragment(run_every=POLL_S)
def wait_for_map() -> None:
    """Shown while the subprocess computes the map; a full rerun draws the map once it is on disk."""
    state, detail = data.digit_map_job(s.checkpoint)
    if state == "ready":
        st.rerun()
    elif state == "failed":
        st.error(f"Computing the digit map failed: {detail}")
        st.button("Try again", on_click=data.start_digit_map, args=(s.checkpoint, True), key="map_retry")
    else:
        st.info(f"Computing the digit map of {s.checkpoint_name} in the background: up to a minute, once per "
                f"checkpoint. This page updates by itself. {detail}", icon=":material/hourglass_top:")


@st.fragment(run_every=POLL_S)
def reap_when_done() -> None:
    """A job exits a moment after it writes its map, so the map can be drawn first: keep reaping until no job
    runs (no <defunct> child stays under the server), then a full rerun stops the polling."""
    if not data.reap_jobs():
        st.rerun()


points = data.digit_map(s.checkpoint)
if points is None:
    data.start_digit_map(s.checkpoint)  # once per checkpoint version
    wait_for_map()
    st.stop()
if data.reap_jobs():
    reap_when_done()

# ----------------------------------------------------------------------------- the map
suspects = data.suspects(s.checkpoint)["index"].head(s.suspect_k)
kinds = map_charts.digit_kinds(points, suspects)
counts = {pill: int(map_charts.of_kinds(kinds, [pill]).sum()) for pill in map_charts.PILLS}
st.caption(f"The {len(points):,} test digits of {s.checkpoint_name}, placed so that digits the CNN sees alike lie "
           f"close; each cluster carries the digit of its labels. Red: the {counts['misread']:,} digits the CNN "
           f"misreads; amber: the {counts['suspect label']:,} most suspect labels (the sidebar's k); amber ringed in "
           "red: both. Drag a box, or pick the lasso in the chart's toolbar, to select.")
quick = st.pills("Also select", map_charts.PILLS, selection_mode="multi", key="map_quick",
                 format_func=lambda pill: f"{pill} ({counts[pill]:,})",
                 help="Every test digit of that kind, without drawing a selection.")
event = st.plotly_chart(map_charts.digit_map_figure(points, kinds), key="digit_map", on_select="rerun",
                        selection_mode=("points", "box", "lasso"))
extra = points.loc[map_charts.of_kinds(kinds, quick or []), "index"]
picked = map_charts.telling_first(slice_charts.selected_images(event, extra), points, kinds)
if not picked:
    st.info("Select digits on the map (drag a box or a lasso, or click a point) to see their images and the "
            "sequences that contain them.")
    st.stop()

# ----------------------------------------------------------------------------- the selected images
rows = points.set_index("index").loc[picked[:MAX_SHOWN]]
more = f" (the first {MAX_SHOWN} shown)" if len(picked) > MAX_SHOWN else ""
st.subheader(f"{len(picked):,} selected test digits{more}")
images = data.test_split()[0]
decided = data.decided("test")  # a person's decisions show on the images they concern


def caption(index: int, label: int, pred: int) -> str:
    """'#12: 4→9' for a misread digit, '#12: 4' otherwise, and a person's decision about its label."""
    text = f"#{index}: {label}→{pred}" if label != pred else f"#{index}: {label}"
    return f"{text} {decision_format.strip_badge(decided[index])}" if index in decided else text


captions = [caption(int(i), int(t), int(p)) for i, t, p in zip(rows.index, rows["label"], rows["pred"])]
st.image([images[i] for i in rows.index], width=56, clamp=True, caption=captions)
st.caption("Misread digits first, then suspect labels, then the rest. Under each image: its test index and label, "
           "and the CNN's reading after the arrow when it differs.")

# ----------------------------------------------------------------------------- their sequences
table = state.sidebar_evaluation(s)
positions = trust_tables.image_positions(table)
holding = positions[positions["image"].isin(picked)].groupby("seq_id")["image"].nunique().rename("selected digits")
hits = table.rows[table.rows["seq_id"].isin(holding.index)]
order = holding.reindex(hits["seq_id"]).to_numpy().argsort(kind="stable")[::-1]  # most selected digits first
hits = hits.iloc[order]
if hits.empty:
    st.info(f"No sequence of the evaluation set ({len(table):,} sequences) contains the selected digits.")
    st.stop()


def link(seq_id: int) -> str:
    return links.inspector_url(state.eval_spec(s, seq_id, len(table)), s.checkpoint_name)


listing = table_format.with_links(hits, link)
listing.insert(1, "selected digits", holding.reindex(listing["seq_id"]).to_numpy())
st.dataframe(listing, hide_index=True, key="map_sequences", column_config={
    "pred_sum": st.column_config.NumberColumn("pred_sum", format="%.3f"),
    "error": st.column_config.NumberColumn("error", format="%+.3f"),
    "abs_error": st.column_config.NumberColumn("abs_error", format="%.3f"),
    "inspect": st.column_config.LinkColumn("inspect", display_text="open", help="Opens the sequence in the inspector")})
st.caption(f"The {len(hits):,} sequences of the evaluation set that contain at least one selected digit.")

"""Slices: the groups of sequences where the model fails most often, found by core.evaluate.slices on the sidebar's
evaluation set (rules such as "length >= 20 and holds a suspect label"). Rules are searched on one half of
the set and scored on the other: each slice's error rate, its 95% interval and coverage (the share of all
the held-out errors that fall in it) are held-out figures, and only slices significantly worse than the
whole set are listed.

Picking a slice (a click on its bar or its table row, or the selector) filters Error analysis, its CSV
download and the inspector's Previous / Next to it, until Clear (here or on those views). The choice lives
in session state under state.SLICE.
"""

import streamlit as st

from dashboard import data, state
from dashboard.ui import slice_charts

s = state.settings()
predictor = state.require(s)
table = state.sidebar_evaluation(s)
ss = st.session_state
generation = ss.get(state.SLICE_WIDGETS, 0)  # bumped by Clear: the table and chart forget their selection

st.title("Slices")
st.caption(f"Where does the model fail? Each slice is a rule over the sequences of the evaluation set "
           f"({len(table):,} test sequences; suspects: the sidebar's {s.suspect_k} most suspect images). A sequence "
           "counts as an error when its rounded prediction misses the true sum by more than the tolerance.")

c1, c2, _ = st.columns([1, 1, 2])
tolerance = c1.number_input("Tolerance", min_value=0, max_value=1000, value=0, step=1, key="slice_tolerance",
                            help="0: only exact sums are right; 1: a sum off by one still counts as right.")
min_size = c2.number_input("Minimum slice size", min_value=1, max_value=max(len(table), 1), value=None, step=5,
                           key="slice_min_size", placeholder="automatic",
                           help="Slices with fewer held-out sequences are ignored (empty: 10, or 1% of the held-out "
                                "half when that is more).")
slices = data.error_slices(s, int(tolerance), None if min_size is None else int(min_size))
chosen = state.slice_notice(s)  # drops a slice of another set, even when this set has none
if slices.empty:
    st.success("No slice stands out: no rule found on half of the set is significantly worse than the whole set on "
               "the other half (or the model makes no errors at this tolerance). Use more sequences per length, or "
               "a smaller minimum size.")
    st.stop()


def choose(position: int | None) -> None:
    """Store the slice at `position` of the table (None: clear)."""
    if position is None:
        state.clear_slice(ss)
        return
    row = slices.iloc[int(position)]
    state.choose_slice(ss, s, row["slice"], row["seq_ids"])


def chose_row() -> None:
    rows = ss[f"slice_table_{generation}"].selection.rows
    choose(rows[0] if rows else None)


def chose_bar() -> None:
    points = ss[f"slice_bars_{generation}"].selection.points
    if points:  # a click elsewhere on the chart clears its selection but keeps the filter
        choose(int(points[0]["point_index"]))  # bar i is row i of the table


def chose_in_box() -> None:
    rule = ss["slice_pick"]
    choose(None if rule == ALL else list(slices["slice"]).index(rule))


# ----------------------------------------------------------------------------- the chart
st.plotly_chart(slice_charts.slice_bars(slices), key=f"slice_bars_{generation}", on_select=chose_bar,
                selection_mode="points")
st.caption("The worst slices by error rate; a darker bar holds a larger share of all the set's errors. Click a "
           "bar to filter Error analysis and the inspector to that slice.")

# ----------------------------------------------------------------------------- the selector and the table
ALL = "(the whole evaluation set)"
rules = list(slices["slice"])
ss["slice_pick"] = chosen["rule"] if chosen is not None and chosen["rule"] in rules else ALL
st.selectbox("Filter the other views to", [ALL, *rules], key="slice_pick", on_change=chose_in_box,
             help="The same as a click on a bar or a row.")
shown = slice_charts.slice_table(slices)
st.dataframe(shown, hide_index=True, key=f"slice_table_{generation}", on_select=chose_row,
             selection_mode="single-row", width="stretch", column_config={
                 "slice": st.column_config.TextColumn("slice", width="large"),
                 "size": st.column_config.NumberColumn("size", help="Sequences of the whole set in the slice"),
                 "held_out_size": st.column_config.NumberColumn(
                     "held out", help="Sequences of the held-out half in the slice: the rates are measured on them"),
                 "error_rate": st.column_config.NumberColumn("error rate (held out)", format="percent"),
                 "ci_low": st.column_config.NumberColumn("95% low", format="percent", help="Wilson interval"),
                 "ci_high": st.column_config.NumberColumn("95% high", format="percent", help="Wilson interval"),
                 "p_value": st.column_config.NumberColumn(
                     "p (Holm)", format="%.1e", help="One-sided binomial test against the whole held-out half's "
                     "error rate, Holm-corrected over every rule tried"),
                 "error_coverage": st.column_config.NumberColumn(
                     "coverage", format="percent", help="The share of all the set's errors inside the slice")})
worst = slices.iloc[0]
st.caption(f"{len(slices):,} slices, worst first. Rates are held out: each rule was found on one half of the set "
           f"and is scored on the other. The worst errs on {worst['error_rate']:.0%} of its "
           f"{int(worst['held_out_size']):,} held-out sequences (95% interval {worst['ci_low']:.0%}–"
           f"{worst['ci_high']:.0%}); it holds {int(worst['size']):,} sequences of the whole set. Select a row to "
           "filter the other views to it.")
if chosen is not None:
    st.page_link("views/errors.py", label="Open Error analysis on this slice", icon=":material/troubleshoot:")

"""Sequence inspector: one sequence, digit by digit — what the CNN read, and how the head summed it.

The URL is the source of truth (st.query_params), so a copied link reopens the same sequence:
  ?src=eval&lengths=1-10,20&per_length=100&seed=0&index=37&ckpt=checkpoints/default.pt
  ?src=gen&length=50&seed=7[&target=200 | &sum_min=100&sum_max=150][&digits=1,7]&ckpt=...
An "eval" link names a row (seq_id) of the test-split evaluation set chosen in the sidebar (`aside=k`:
built without the k most suspect images). Heads with a distribution over the sum also show P(sum).
"""

from urllib.parse import urlencode

import numpy as np
import streamlit as st

from core import evaluate
from dashboard import data, decide, links, state
from dashboard.ui import charts, decision_format, digit_strip, table_format, trust_charts

s = state.settings()
predictor = state.require(s)
table = state.sidebar_evaluation(s)
# With a slice chosen in Slices, Previous / Next / Jump to worst move within it (the number box still
# reaches any sequence of the set).
chosen = state.active_slice(st.session_state, s)
worst_id = int(evaluate.worst_sequences(state.apply_slice(table, chosen), 1)["seq_id"].iloc[0])


def eval_spec(index: int) -> links.SequenceSpec:
    return state.eval_spec(s, index, len(table))


def show(spec: links.SequenceSpec) -> None:
    """Point the URL at `spec` (and the selected checkpoint)."""
    st.query_params.from_dict(links.link_query(spec, s.checkpoint_name))


# ----------------------------------------------------------------------------- which sequence
params = st.query_params.to_dict()
spec, problem = None, None
if params.get("src"):
    try:
        spec = links.SequenceSpec.from_query(params)
    except ValueError as exc:
        problem = f"This link cannot be opened ({exc}); showing the worst sequence instead."
if spec is not None and spec.source == "eval" and spec.index >= len(table):
    problem = (f"The link's index={spec.index} is beyond this set's {len(table):,} sequences; showing the last "
               f"one, #{len(table) - 1}, instead.")
if spec is None:
    spec = eval_spec(worst_id)
elif spec.source == "eval":
    # The sidebar's set wins (it was seeded from this link on load, and the user may change it).
    spec = eval_spec(spec.index)

row = None
if spec.source == "gen":
    try:
        row = data.generated_row(s.checkpoint, spec)
        title = links.spec_title(spec)
    except ValueError as exc:  # constraints no sequence meets: core says why
        problem = f"This generator link describes an impossible sequence ({exc}); showing the worst sequence instead."
        spec = eval_spec(worst_id)
if row is None:
    row = table.row(spec.index)  # seq_id is the row's position in the whole set
    title = links.spec_title(spec, len(table), int(row["length"]))
show(spec)
images = data.sequence_images(row)

NOTICE_KEY = decide.NOTICE
st.title("Sequence inspector")
if problem:
    st.warning(problem, icon=":material/link_off:")

# ----------------------------------------------------------------------------- navigation
state.slice_notice(s)


def step(delta: int) -> links.SequenceSpec:
    if chosen is not None and spec.source == "eval":
        return eval_spec(state.slice_step(chosen["seq_ids"], spec.index, delta))
    return links.stepped(spec, delta, len(table))


# A generated sequence is no row of the set: the box is empty rather than showing a stale number.
st.session_state["insp_goto"] = spec.index if spec.source == "eval" else None
n1, n2, n3, n4 = st.columns([1, 1, 1, 2], vertical_alignment="bottom")
n1.button("Previous", icon=":material/chevron_left:", on_click=lambda: show(step(-1)),
          key="prev", width="stretch", disabled=spec.source == "eval" and step(-1).index == spec.index)
n2.button("Next", icon=":material/chevron_right:", icon_position="right", key="next", width="stretch",
          on_click=lambda: show(step(1)), disabled=spec.source == "eval" and step(1).index == spec.index)
n3.button("Jump to worst", icon=":material/warning:", on_click=lambda: show(eval_spec(worst_id)), key="worst",
          width="stretch", help="The sequence with the largest absolute error" + (" in the slice." if chosen else "."))


def go_to() -> None:
    if st.session_state["insp_goto"] is not None:
        show(eval_spec(st.session_state["insp_goto"]))


n4.number_input("Go to sequence #", min_value=0, max_value=len(table) - 1, step=1, key="insp_goto",
                placeholder="a row of the evaluation set", on_change=go_to)

# ----------------------------------------------------------------------------- the sequence
st.subheader(title)
true_digits, pred_digits = np.asarray(row["true_digits"]), np.asarray(row["pred_digits"])
m1, m2, m3, m4 = st.columns(4)
m1.metric("True sum", int(row["true_sum"]))
m2.metric("Predicted sum", f"{row['pred_sum']:.2f}", help=f"rounds to {int(row['pred_rounded'])}")
m3.metric("Error", f"{row['error']:+.2f}", delta="exact" if row["exact"] else "wrong",
          delta_color="normal" if row["exact"] else "inverse", delta_arrow="off")
m4.metric("Misread digits", f"{int((true_digits != pred_digits).sum())} of {len(true_digits)}")

decided = data.decided("test")
indices = [int(i) for i in row["indices"]]
st.html(digit_strip.digit_row_html(images, true_digits, pred_digits, row["digit_conf"], second=row["second_digits"],
                                   second_conf=row["second_conf"],
                                   badges=[decision_format.strip_badge(decided.get(i)) for i in indices]))
st.caption("Each digit image with its true label, the CNN's reading and its calibrated probability, and "
           "its second most likely reading (2nd); misread digits are framed in red. Scroll sideways for long "
           "sequences. " + digit_strip.misread_summary(true_digits, pred_digits)
           + " A highlighted word under a digit is your decision about its label.")

# ----------------------------------------------------------------------------- decisions about labels
with st.expander("Decide about a label in this sequence", icon=":material/gavel:",
                 expanded=NOTICE_KEY in st.session_state):
    decide.notice()
    wrong_first = sorted(range(len(indices)), key=lambda i: (true_digits[i] == pred_digits[i], i))
    at = st.selectbox("Digit", wrong_first, key="insp_decide_step",
                        format_func=lambda i: f"step {i + 1}: test image {indices[i]}, labelled {int(true_digits[i])}, "
                                              f"read {int(pred_digits[i])}"
                                              + (f" ({decision_format.badge(decided[indices[i]])})" if indices[i] in decided else ""))
    # the given label is MNIST's, also when the set applies decisions (its truth may be the decided one)
    given = int(data.test_split()[1][indices[at]])
    decide.controls("test", indices[at], given, int(pred_digits[at]), key=f"insp_dec_{indices[at]}")

# ----------------------------------------------------------------------------- P(sum)
dist = data.sum_distribution(s.checkpoint, row)
if dist is None:
    st.info(state.no_distribution_note(predictor))
else:
    lo, hi = int(row["interval_lo"]), int(row["interval_hi"])
    d1, d2 = st.columns([4, 1])
    d1.plotly_chart(trust_charts.sum_distribution_figure(dist[0], dist[1], int(row["true_sum"]), (lo, hi),
                                                         int(row["pred_rounded"])), key="sum_distribution")
    d2.metric("P(exact)", f"{row['p_exact']:.1%}", help=f"the model's probability that the sum is {int(row['pred_rounded'])}")
    d2.metric("95% interval", f"{lo}–{hi}", delta="holds the true sum" if lo <= row["true_sum"] <= hi else "misses it",
              delta_color="normal" if lo <= row["true_sum"] <= hi else "inverse", delta_arrow="off")
    st.caption("The model's distribution over this sequence's sum (its per-step digit distributions convolved): "
               "the blue bar is the predicted sum, the amber line the true sum, the shaded band the 95% interval.")

left, right = st.columns([3, 2])
with left:
    st.altair_chart(charts.running_chart(row["running"], true_digits), width="stretch")
    st.caption("The head's running prediction after each digit beside the true running sum, and "
               "their difference below: where it leaves zero, the sum went wrong.")
with right:
    members = data.member_readings(s.checkpoint, row)  # None for a single CNN
    st.dataframe(table_format.step_table(row, members), hide_index=True, height=300, key="steps", column_config={
        "members": st.column_config.TextColumn("members", help="what each CNN of the ensemble read, in order"),
        "conf": st.column_config.NumberColumn("conf", format="percent"),
        "added": st.column_config.NumberColumn("added", format="%.2f", help="how much the head added at this step"),
        "running": st.column_config.NumberColumn("running", format="%.2f"),
        "gap": st.column_config.NumberColumn("gap", format="%+.2f",
                                             help="running prediction minus the true running sum")})
    st.caption("Per step: what the CNN read and how much the head added to its running sum."
               + (f" The {members.shape[1]} CNNs of this ensemble each read the digit (members); where they "
                  "disagree, the reading is doubtful even when its averaged probability is high."
                  if members is not None else ""))

link = f"{st.context.url or ''}?{urlencode(st.query_params.to_dict())}"
st.code(link, language=None)
st.caption("This sequence's link (also in the address bar): copy it to reopen this exact view, "
           "with the same checkpoint and evaluation set.")

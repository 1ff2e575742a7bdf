"""Suspect labels: the test images whose given label the model doubts most (cleanlab on the checkpoint's
calibrated readings), and the sequences of the sidebar's evaluation set that use each of them.

A sequence that is wrong only because of such an image may be the label's fault, not the model's:
Error analysis marks those, and the sidebar's "Set suspect images aside" rebuilds the set without them.
"""

import streamlit as st

from dashboard import data, decide, links, state
from dashboard.ui import decision_format, table_format, trust_tables

s = state.settings()
predictor = state.require(s)
table = state.sidebar_evaluation(s)
ranked = data.suspects(s.checkpoint)
images = data.test_split()[0]
COLUMNS_PER_ROW = 10

decided = data.decided("test")
st.title("Suspect labels")
decide.notice()
st.caption(f"Every test image ranked by score, the model's calibrated probability that the given label is "
           f"wrong (1 − cleanlab's self-confidence). cleanlab's stricter confident-learning check flags "
           f"{int(ranked['flagged'].sum()):,} of {len(ranked):,} test images. Checkpoint {s.checkpoint_name}.")

k = st.slider("How many images", 5, 200, 30, step=5, key="sus_k")
top = ranked.head(k)
used = trust_tables.usage(table, top["index"])
n_used = sum(1 for v in used.values() if v)
st.caption(f"The evaluation set ({len(table):,} sequences" + (f", the {s.aside} most suspect images set aside"
                                                           if s.aside else "")
           + f") uses **{n_used}** of these {k} images. Click an image's button to list its sequences.")


def select(index: int) -> None:
    st.session_state["sus_selected"] = index


# ----------------------------------------------------------------------------- the grid
st.caption("Under each image: **given**, the label MNIST gives it; **read**, the digit the model reads instead; "
           "**score**, the model's calibrated probability that the given label is wrong; **flagged**, cleanlab's "
           "confident-learning verdict; and your decision, if you made one (**Decide**: the label is right, "
           "relabel it, exclude it as ambiguous, or undo). Decisions apply where the sidebar's "
           "\"Apply my label decisions\" is on; the Label decisions view lists them all.")
for start in range(0, len(top), COLUMNS_PER_ROW):
    for col, row in zip(st.columns(COLUMNS_PER_ROW), top.iloc[start:start + COLUMNS_PER_ROW].to_dict("records")):
        image = int(row["index"])
        with col:
            st.image(images[image], width=56, clamp=True)
            st.markdown(f"given **{row['given']}**  \nread **{row['suggested']}**  \nscore {row['score']:.3f}"
                        + ("  \n:red[flagged]" if row["flagged"] else "")
                        + (f"  \n{decision_format.badge(decided[image])}" if image in decided else ""))
            with st.popover("Decide", width="stretch"):  # no icon: a tenth of the page is too narrow for both
                decide.controls("test", image, int(row["given"]), int(row["suggested"]), key=f"dec_{image}")
            st.button(f"#{image}", key=f"sus_{image}", on_click=select, args=(image,),
                      help=f"List the evaluation set's sequences that use test image {image} ({used[image]})",
                      type="primary" if st.session_state.get("sus_selected") == image else "secondary")

# ----------------------------------------------------------------------------- one image's sequences
chosen = st.session_state.get("sus_selected")
if chosen is None:
    st.info("Click an image's button to list the sequences of the evaluation set that contain it.")
    st.stop()
info = ranked[ranked["index"] == chosen].iloc[0]
st.subheader(f"Test image {chosen}: given {info['given']}, read as {info['suggested']} (score {info['score']:.3f})")
hits = trust_tables.sequences_with_image(table, chosen)
if hits.empty:
    aside = s.aside and chosen in set(ranked["index"].head(s.aside))
    st.info(f"No sequence of the evaluation set contains test image {chosen}"
            + (" (it is set aside: see the sidebar)." if aside else "."))
    st.stop()


def link(seq_id: int) -> str:
    return links.inspector_url(state.eval_spec(s, seq_id, len(table)), s.checkpoint_name)


listing = table_format.with_links(hits, link)
listing.insert(2, "step", hits["step"].to_numpy())
st.dataframe(listing, hide_index=True, key="suspect_sequences", column_config={
    "pred_sum": st.column_config.NumberColumn("pred_sum", format="%.3f"),
    "error": st.column_config.NumberColumn("error", format="%+.3f"),
    "abs_error": st.column_config.NumberColumn("abs_error", format="%.3f"),
    "step": st.column_config.TextColumn("step", help="where the image sits in the sequence"),
    "inspect": st.column_config.LinkColumn("inspect", display_text="open", help="Opens the sequence in the inspector")})
st.caption(f"The {len(hits):,} sequences of the evaluation set that use test image {chosen}; follow a link to "
           "inspect one.")

"""digitsum dashboard: the entry point. Run with `streamlit run dashboard/app.py` (or `make run`).

This script runs on every rerun, around whichever view is selected: it sets the layout, routes with
st.navigation over dashboard/views/, draws the sidebar's shared controls (checkpoint + evaluation
set, kept in st.session_state by dashboard.state) and runs the view. Views hold the UI only.
"""

import sys
from pathlib import Path

# Streamlit puts this script's folder (dashboard/) on sys.path, not the repo root that holds the
# `core` and `dashboard` packages (with `python -P` or the venv's streamlit, nothing else adds it).
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import streamlit as st  # noqa: E402

from core import promotion  # noqa: E402
from dashboard import data, state  # noqa: E402

# A local favicon: a :material/ page icon would be fetched from Google's font servers on every page.
st.set_page_config(page_title="digitsum", page_icon=str(Path(__file__).with_name("favicon.png")), layout="wide")

PAGES = {
    "Analysis": [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("views/errors.py", title="Error analysis", icon=":material/troubleshoot:"),
        st.Page("views/slice_finder.py", title="Slices", icon=":material/splitscreen:", url_path="slices"),
        st.Page("views/digit_atlas.py", title="Digit map", icon=":material/scatter_plot:", url_path="digit_map"),
        st.Page("views/inspector.py", title="Sequence inspector", icon=":material/pageview:"),
        st.Page("views/generator.py", title="Generator", icon=":material/casino:"),
        st.Page("views/calibration.py", title="Calibration", icon=":material/verified:"),
        st.Page("views/suspects.py", title="Suspect labels", icon=":material/label_off:"),
        st.Page("views/decision_log.py", title="Label decisions", icon=":material/gavel:", url_path="decisions"),
        st.Page("views/write_your_own.py", title="Write your own", icon=":material/draw:",
                url_path="handwriting"),
    ],
    "Models": [
        st.Page("views/training.py", title="Training", icon=":material/model_training:"),
    ],
}


def sidebar() -> None:
    """The shared controls, seeded from the URL on a session's first load."""
    checkpoints = data.list_checkpoints()
    state.seed_from_url(st.session_state, st.query_params, checkpoints)
    for notice in st.session_state.pop(state.LINK_NOTICES, []):  # once, on the page the link opened
        st.warning(notice, icon=":material/link_off:")
    with st.sidebar:
        st.selectbox("Checkpoint", list(checkpoints), key=state.CKPT,
                     help="The active default, every *.pt in the checkpoint folder, plus finished training runs.")
        active_default(checkpoints.get(st.session_state.get(state.CKPT)))
        st.caption("Evaluation set (test split)")
        st.text_input("Lengths", key=state.LENGTHS, help="Comma-separated lengths and ranges, "
                      "e.g. 1-10,20,50,100. Lengths beyond training show extrapolation.")
        c1, c2 = st.columns(2)
        c1.number_input("Per length", min_value=1, max_value=state.MAX_PER_LENGTH, step=50,
                        key=state.PER_LENGTH, help="Sequences drawn for each length.")
        c2.number_input("Seed", min_value=0, max_value=state.MAX_SEED, step=1, key=state.SEED)
        st.toggle("Set suspect images aside", key=state.ASIDE,
                  help="Rebuild the evaluation set without the k test images whose labels the model doubts "
                       "most (Suspect labels view), so every figure can be seen both ways.")
        st.number_input("Suspects (k)", min_value=1, max_value=state.MAX_SUSPECT_K, step=10, key=state.SUSPECT_K,
                        help="How many of the most suspect test images count as suspects: Error analysis marks "
                             "them, and the switch above sets them aside.")
        n_decided = len(data.decided("test"))
        st.toggle(f"Apply my label decisions ({n_decided})", key=state.DECIDED, disabled=not n_decided,
                  help="Rebuild the evaluation set with the labels you decided: a relabelled test image counts as "
                       "its new digit, an excluded one is used nowhere. Figures a person vouched for, unlike "
                       "setting suspect images aside, which is the model's own upper bound. Decide on the "
                       "Suspect labels view or in the inspector.")


PROMOTION_NOTICE = "_promotion_notice"  # the error of the last Make default, shown once under the buttons


def change_default(change, *args) -> None:
    """A button's callback: promote or go back; a refusal (say, a file changed on disk) is kept to show."""
    try:
        change(*args)
    except (ValueError, OSError) as exc:
        st.session_state[PROMOTION_NOTICE] = f"Not changed: {exc}"


def active_default(selected) -> None:
    """Which model the dashboard and the scripts use by default, and where it came from; Make default for
    the selected checkpoint, or back to the shipped one (the shipped one's own Make default, in effect)."""
    active = promotion.active_default()
    since = f" (since {active.since})" if active.since else ""
    st.caption(f"Active default: {data.display_name(active.path)} — {active.origin}{since}")
    if selected is not None and selected.resolve() not in (active.path.resolve(), promotion.shipped_default().resolve()):
        st.button("Make default", key="make_default", on_click=change_default, args=(promotion.promote, selected),
                  help="The model the dashboard opens on and scripts.serve, evaluate and generate use. "
                       "Stored as a pointer in your user folder: no shipped file changes.")
    if not active.shipped:
        st.button("Back to the shipped default", key="back_to_shipped", on_click=change_default,
                  args=(promotion.reset_to_shipped,))
    if notice := st.session_state.pop(PROMOTION_NOTICE, None):
        st.error(notice)


page = st.navigation(PAGES)
sidebar()
state.keep_controls(st.session_state)
page.run()

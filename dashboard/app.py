"""digitsum dashboard: the router. Run with `streamlit run dashboard/app.py` (or `make run`).

This file runs on every rerun, around whichever page is selected: it sets the layout, draws the
sidebar's shared controls (checkpoint + evaluation set, kept in st.session_state by dashboard.state)
and hands over to the page. Pages hold the UI; the numbers come from core's public API.
"""

from __future__ import annotations

import streamlit as st
from _bootstrap import routing  # dashboard/ is on sys.path; this also adds the repo root

from dashboard import state

st.set_page_config(page_title="digitsum", page_icon=":material/functions:", layout="wide")

PAGES = {
    "Analysis": [
        st.Page("pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("pages/errors.py", title="Error analysis", icon=":material/troubleshoot:"),
        st.Page("pages/inspector.py", title="Sequence inspector", icon=":material/pageview:"),
        st.Page("pages/generator.py", title="Generator", icon=":material/casino:"),
    ],
    "Models": [
        # --- Training page (issue 5): the runs helper adds its st.Page line here. ---
        st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    ],
}


def sidebar() -> None:
    """The shared controls. First load: seed them from the URL so a copied link reproduces the
    same checkpoint and evaluation set."""
    ss, params = st.session_state, st.query_params
    checkpoints = state.list_checkpoints()
    if "_seeded_from_url" not in ss:
        ss["_seeded_from_url"] = True
        if params.get("ckpt") in checkpoints:
            ss[state.CKPT] = params["ckpt"]
        for key, param, cast in ((state.LENGTHS, "lengths", str),
                                 (state.PER_LENGTH, "per_length", lambda v: min(max(int(v), 1), 5000)),
                                 (state.SEED, "seed", lambda v: min(max(int(v), 0), 2**31 - 1))):
            if params.get("src", "eval") == "eval" and params.get(param):
                try:
                    ss[key] = cast(params[param])
                except ValueError:
                    pass  # the page reports a bad link; the sidebar keeps its default
    for key, value in state.DEFAULTS.items():
        ss.setdefault(key, value)
    if ss.get(state.CKPT) not in checkpoints:
        ss[state.CKPT] = next(iter(checkpoints), None)

    with st.sidebar:
        st.selectbox("Checkpoint", list(checkpoints), key=state.CKPT,
                     help="Every *.pt in the checkpoint folder, plus finished training runs.")
        st.caption("Evaluation set (test split)")
        st.text_input("Lengths", key=state.LENGTHS, help="Comma-separated lengths and ranges, "
                      "e.g. 1-10,20,50,100. Lengths beyond training show extrapolation.")
        c1, c2 = st.columns(2)
        c1.number_input("Per length", min_value=1, max_value=5000, step=50, key=state.PER_LENGTH,
                        help="Sequences drawn for each length.")
        c2.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key=state.SEED)


pages = {section: items for section, items in PAGES.items() if items}
page = st.navigation(pages)
sidebar()
with routing():  # pages check it (see _bootstrap.router_guard)
    page.run()

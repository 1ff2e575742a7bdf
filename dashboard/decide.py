"""The decision buttons a view offers on one image (Suspect labels, the inspector): the label is right,
relabel it to another digit, exclude it as ambiguous, or undo. A click appends one decision to the log
(core.data.record_decision) in its callback, so it is never lost to a rerun; every view re-reads the log
when it changes (dashboard.data.decided)."""

from __future__ import annotations

import streamlit as st

from core.data import record_decision
from dashboard import data
from dashboard.ui import decision_format

NOTICE = "_decision_notice"


def record(split: str, index: int, action: str, label_key: str | None = None) -> None:
    """A button's callback: record one decision (the label read from the widget `label_key`), keeping the
    outcome to show once."""
    label = int(st.session_state[label_key]) if label_key else None
    try:
        record_decision(split, index, action, label)
        done = "decision withdrawn" if action == "clear" else decision_format.badge((action, label))
        st.session_state[NOTICE] = ("success", f"Image {index} ({split}): {done}.")
    except (ValueError, OSError) as exc:  # a full disk, a read-only folder: one line, nothing half-written
        st.session_state[NOTICE] = ("error", f"Could not record the decision about image {index}: {exc}")


def controls(split: str, index: int, given: int, read: int, key: str) -> None:
    """The four choices for image `index` of `split` (given label `given`, the model reads `read`),
    with its standing decision shown as a badge."""
    standing = data.decided(split).get(index)
    st.markdown(decision_format.badge(standing) or "No decision yet.")
    c1, c2, c3 = st.columns(3)
    c1.button("Label is right", key=f"{key}_keep", icon=":material/check_circle:", width="stretch",
              on_click=record, args=(split, index, "keep"), help=f"Keep the given label {given}")
    c2.button("Exclude", key=f"{key}_exclude", icon=":material/block:", width="stretch",
              on_click=record, args=(split, index, "exclude"), help="Ambiguous: use this image nowhere")
    c3.button("Undo", key=f"{key}_clear", icon=":material/undo:", width="stretch", disabled=standing is None,
              on_click=record, args=(split, index, "clear"), help="Withdraw the decision about this image")
    r1, r2 = st.columns([1, 2], vertical_alignment="bottom")
    others = [d for d in range(10) if d != given]
    r1.selectbox("Relabel to", others, index=others.index(read) if read in others else 0, key=f"{key}_label")
    r2.button("Relabel", key=f"{key}_relabel", icon=":material/edit:", width="stretch",
              on_click=record, args=(split, index, "relabel", f"{key}_label"))


def notice() -> None:
    """The outcome of the last decision, shown once."""
    kind, text = st.session_state.pop(NOTICE, (None, None))
    if kind:
        getattr(st, kind)(text)

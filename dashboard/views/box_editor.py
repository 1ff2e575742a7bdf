"""Fixing the Write your own view's boxes before saving: merge a box with the next, split one in two,
delete one, or go back to what was found. The boxes live in session state per image; the digits are read
again from the same image for the edited boxes (dashboard.data.reread)."""

from __future__ import annotations

import streamlit as st

Box = tuple[int, int, int, int]


def _key(image_id: str) -> str:
    return f"hw_boxes_{image_id}"


def _merge(boxes: list[Box], i: int) -> list[Box]:
    a, b = boxes[i], boxes[i + 1]
    return [*boxes[:i], (min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])), *boxes[i + 2:]]


def _split(boxes: list[Box], i: int) -> list[Box]:
    x0, y0, x1, y1 = boxes[i]
    middle = (x0 + x1) // 2
    return [*boxes[:i], (x0, y0, middle, y1), (middle, y0, x1, y1), *boxes[i + 1:]]


def edited(boxes: list[Box], action: str, i: int) -> list[Box]:
    """The boxes after one edit of box i (0-based): "merge" with the next, "split" down the middle, "delete"."""
    if action == "merge" and i + 1 < len(boxes):
        return _merge(boxes, i)
    if action == "split" and boxes[i][2] - boxes[i][0] >= 2:
        return _split(boxes, i)
    if action == "delete" and len(boxes) > 1:
        return [*boxes[:i], *boxes[i + 1:]]
    return boxes


def _apply(image_id: str, action: str) -> None:
    boxes, i = st.session_state[_key(image_id)], int(st.session_state["hw_box_pick"]) - 1
    st.session_state[_key(image_id)] = edited(boxes, action, i)


def box_editor(image_id: str, found) -> tuple:
    """The boxes to read (found's, until the person edits them), with the editing controls."""
    key = _key(image_id)
    if key not in st.session_state:
        st.session_state[key] = [tuple(int(v) for v in box) for box in found.boxes]
    boxes = st.session_state[key]
    with st.expander("Fix the boxes (merge, split, delete)", icon=":material/crop:",
                     expanded=len(boxes) != len(found.boxes)):
        c1, c2, c3, c4, c5 = st.columns([1, 1, 1, 1, 1], vertical_alignment="bottom")
        c1.selectbox("Box", range(1, len(boxes) + 1), key="hw_box_pick")
        c2.button("Merge with the next", key="hw_box_merge", on_click=_apply, args=(image_id, "merge"),
                  disabled=len(boxes) < 2, width="stretch")
        c3.button("Split in two", key="hw_box_split", on_click=_apply, args=(image_id, "split"), width="stretch")
        c4.button("Delete", key="hw_box_delete", on_click=_apply, args=(image_id, "delete"),
                  disabled=len(boxes) < 2, width="stretch")
        c5.button("Start over", key="hw_box_reset", on_click=st.session_state.pop, args=(key, None),
                  width="stretch")
        st.caption("A miscounted row can still be labelled: merge two boxes that hold one digit, split a box "
                   "that holds two, delete one that holds none. The digits are read again from the picture.")
    return tuple(boxes)

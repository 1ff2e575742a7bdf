"""How a person's label decisions look in the views: a badge per decided image, and the decisions
table. Plain functions, no Streamlit."""

from __future__ import annotations

import numpy as np
import pandas as pd

ICONS = {"keep": ":material/check_circle:", "relabel": ":material/edit:", "exclude": ":material/block:"}
Decision = tuple[str, int | None]  # (action, decided label or None)


def badge(decision: Decision | None) -> str:
    """Markdown: ':material/edit: relabelled to 3', or '' for an image nobody decided about."""
    if decision is None:
        return ""
    action, label = decision
    text = {"keep": "label confirmed", "relabel": f"relabelled to {label}", "exclude": "excluded (ambiguous)"}[action]
    return f"{ICONS[action]} {text}"


def strip_badge(decision: Decision | None) -> str:
    """A few plain characters for the digit strip's HTML: 'kept', '→3', 'excl.', or ''."""
    if decision is None:
        return ""
    action, label = decision
    return {"keep": "kept", "relabel": f"→{label}", "exclude": "excl."}[action]


def decisions_table(split: str, decisions: pd.DataFrame, given: np.ndarray, read: np.ndarray | None) -> pd.DataFrame:
    """One row per standing decision of `split`: image, given label, the model's reading, the decision, the
    decided label and when. `given`/`read` are the split's labels and the model's argmax per image."""
    index = decisions["index"].to_numpy(np.int64)
    inside = index < len(given)  # a decision about a deleted save of "mine" has no image any more
    out = pd.DataFrame({
        "split": split, "image": index,
        "given": np.where(inside, given[np.minimum(index, len(given) - 1)], -1) if len(given) else -1,
        "model reads": (np.where(inside, read[np.minimum(index, len(read) - 1)], -1)
                        if read is not None and len(read) else -1),
        "decision": decisions["action"].to_numpy(), "decided label": decisions["label"].to_numpy(),
        "at": decisions["at"].to_numpy()})
    return out.sort_values("at", ascending=False, kind="stable").reset_index(drop=True)

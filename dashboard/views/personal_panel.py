"""The Write your own view's lower half: the collection at a glance (how many digits, how many held out,
and how the selected model reads the held-out part), the button that trains a personal model on the
rest, and each personal model beside the model it started from."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core import runs
from core.model.checkpoint import read_metadata
from dashboard import data
from dashboard.ui import charts

MIN_TRAIN_DIGITS = 20  # the personal preset refuses fewer (core.training)
NOTICE = "_personal_notice"
QUICK = {"train_subset": 2000}  # a quick check: the whole loop in a minute, not a model to keep


def collection_summary(checkpoint: Path, name: str) -> int:
    """The collection's parts and the selected model's held-out figures; returns the train part's size."""
    parts = data.collection()
    everything, held, train = len(parts["labels"]), parts["held_out"], parts["train"]
    st.subheader("Your collection")
    c1, c2, c3 = st.columns(3)
    c1.metric("Digits saved", f"{everything:,}")
    c2.metric("Held out", f"{held:,}", help="About a fifth of your saves, chosen by file, never trained on: "
                                           "the fair test of a personal model.")
    scores = data.holdout_scores(checkpoint)
    c3.metric(f"{name} on the held-out part", "—" if not scores["n"] else f"{scores['accuracy']:.1%}",
              help="The selected model's digit accuracy on your held-out digits.")
    if scores["n"]:
        with st.expander("Its confusion on your held-out digits"):
            st.plotly_chart(charts.confusion_figure(scores["confusion"]), key="hw_confusion")
    st.caption(f"{train:,} digits of the train part (after your label decisions) can teach a personal model.")
    return train


def _launch(parent: str) -> None:
    quick = QUICK if st.session_state.get("hw_quick") else {}
    try:
        run = runs.launch({"preset": "personal", "init_from": parent, "device": "auto", **quick})
    except (ValueError, runs.RunError, OSError) as exc:
        st.session_state[NOTICE] = ("error", f"Cannot start the personal run: {exc}")
    else:
        st.session_state[NOTICE] = ("success", f"Run {run.id} is training a personal model from {Path(parent).name}: "
                                               "the Training view follows it.")


def train_button(checkpoint: Path, name: str, train_digits: int) -> None:
    """Launch a registry run with the `personal` preset, starting from the selected model."""
    enough = train_digits >= MIN_TRAIN_DIGITS
    st.toggle("Quick check", key="hw_quick", help=f"Train on {QUICK['train_subset']:,} MNIST images instead of the "
              "preset's: the whole loop in about a minute, to see it work, not a model to keep.")
    st.button(f"Train a personal model from {name}", icon=":material/model_training:", key="hw_train_personal",
              disabled=not enough, on_click=_launch, args=(str(checkpoint),),
              help="Fine-tunes the model's CNN briefly on MNIST mixed with your collection's train part, in the "
                   "background (a few minutes on a CPU)." if enough else
                   f"Needs at least {MIN_TRAIN_DIGITS} saved train digits; you have {train_digits}.")
    kind, text = st.session_state.pop(NOTICE, (None, None))
    if kind:
        getattr(st, kind)(text)
        if kind == "success":
            st.page_link("views/training.py", label="Open the Training view", icon=":material/model_training:")


def personal_models() -> None:
    """Every succeeded personal run beside its parent: held-out accuracy on the collection and MNIST test."""
    done = [r for r in runs.list_runs() if r.preset == "personal" and r.status == "succeeded" and r.checkpoint
            and Path(r.checkpoint).is_file()]
    if not done:
        return
    st.subheader("Personal models and the models they started from")
    rows = []
    for run in done:
        parent = (read_metadata(run.checkpoint).get("lineage") or {}).get("parent") or {}
        for role, path in (("personal", Path(run.checkpoint)), ("parent", Path(parent["path"]) if parent else None)):
            if path is None or not path.is_file():
                continue
            scores = data.holdout_scores(path)
            rows.append({"run": run.id, "model": role, "checkpoint": data.display_name(path),
                         "your held-out digits": scores["accuracy"] if scores["n"] else None,
                         "MNIST test digits": data.test_accuracy(path)})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="hw_personal_table", column_config={
        "your held-out digits": st.column_config.NumberColumn(format="percent"),
        "MNIST test digits": st.column_config.NumberColumn(format="percent")})
    st.caption("Digit accuracy of each personal model and its parent on your collection's held-out part (never "
               "trained on) and on the 10,000 MNIST test digits. Make a better one the default in the sidebar.")

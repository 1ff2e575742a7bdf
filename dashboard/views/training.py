"""Training: launch a run, watch it, stop or resume it, compare its model with the selected one.

UI only. Every action goes through core.runs (the run registry); the comparison goes through
dashboard.cache's evaluation (core.evaluate). Runs are separate processes looked after by a
supervisor outside Streamlit, so closing the tab or restarting the server neither stops nor loses
them — this view only reads their status, and polls (st.fragment run_every: the run list with the
chosen run's panel) only while the chosen run is queued or running.
"""

from pathlib import Path

import pandas as pd
import streamlit as st

from core import promotion, runs
from core.constants import DEVICES
from dashboard import data, links, state
from dashboard.ui import run_format, table_format
from dashboard.ui.run_format import EPOCHS, ICONS
from dashboard.ui.theme import COLORS
from dashboard.views import training_compare

REFRESH_S = 2.0  # live panel refresh while a run is queued or running
# Session keys: the selected run, the run being compared, a message from the last action.
SELECTED, COMPARE, NOTICE = "training_run", "training_compare", "training_notice"


# ----------------------------------------------------------------------------------- launch form
# Actions run in widget callbacks: a callback runs exactly once per click, before the script, so a
# click is never lost to a rerun (a fragment's, say) and can set widget state.


def notify(kind: str, text: str) -> None:
    st.session_state[NOTICE] = (kind, text)


def launch_from_form(base: dict, device_count: int) -> None:
    ss = st.session_state
    form = {key: ss.get(f"train_{key}") for key in ("preset", "device", "head", "lengths", "lr", "batch_size",
                                                     "seed", "world", *(k for k, _ in EPOCHS))}
    config, world = run_format.launch_config(form, base, device_count)
    try:
        run = runs.launch(config, world_size=world)
    except (ValueError, runs.RunError) as exc:
        notify("error", f"Not launched: {exc}")
        return
    ss[SELECTED] = run.id
    notify("success", f"Run {run.id} {run.status} on {run.device} ×{run.world_size}.")


def launch_form() -> None:
    presets, detected = runs.presets(), data.gpus()
    with st.expander("Launch a training run", expanded=not runs.list_runs(limit=1)):
        preset = st.selectbox("Preset", list(presets), key="train_preset",
                              help="smoke: a quick test (<1 min on the CPU); default: the shipped "
                                   "model (≤30 min on a 2-core CPU); full: best quality, for a GPU.")
        base = presets[preset]  # empty fields below mean "the preset's value", shown as placeholder
        with st.form("launch_form", border=False):
            c1, c2 = st.columns(2)
            c1.selectbox("Head", runs.heads(), index=runs.heads().index(base["head"]), key="train_head",
                         help="lstm: the default design; lstm-final: the original project's; "
                              "deepsets and argmax-sum: reference baselines.")
            c2.selectbox("Device", DEVICES, key="train_device",
                         help="auto picks a CUDA GPU when there is one, then Apple's mps, else the CPU.")
            for col, (key, label) in zip(st.columns(3), EPOCHS):
                col.number_input(label, min_value=0, max_value=1000, value=None, step=1, key=f"train_{key}",
                                 placeholder=f"preset: {base[key]}")
            st.slider("Training lengths", 1, 100, (base["min_len"], base["max_len"]), key="train_lengths",
                      help="Sequence lengths the head is trained on (inclusive).")
            c1, c2, c3 = st.columns(3)
            c1.number_input("Learning rate", min_value=1e-5, max_value=1.0, value=None, step=0.01,
                            format="%.4g", key="train_lr", placeholder=f"preset: {base['lr']:g}")
            c2.number_input("Batch size", min_value=1, max_value=65536, value=None, step=32,
                            key="train_batch_size", placeholder=f"preset: {base['batch_size']}")
            c3.number_input("Seed", min_value=0, max_value=2**31 - 1, value=None, step=1, key="train_seed",
                            placeholder=f"preset: {base['seed']}")
            if len(detected) > 1:
                st.number_input("GPUs (torchrun processes, for device cuda/auto)", 1, len(detected),
                                len(detected), key="train_world")
            st.form_submit_button("Launch", type="primary", on_click=launch_from_form,
                                  args=(base, len(detected)))
        if detected:
            st.caption("Detected GPUs: " + ", ".join(f"`cuda:{i}` {n}" for i, n in enumerate(detected)))
        else:
            st.info("Only the CPU is available here: runs train on the CPU (the smoke preset takes "
                    "under a minute; default about 30 minutes).")
    kind, text = st.session_state.pop(NOTICE, (None, None))  # the last action's outcome
    if kind:
        getattr(st, kind)(text)  # st.error / st.warning / st.success


# ----------------------------------------------------------------------------------- run list
def runs_table(items: list[runs.Run]) -> None:
    st.dataframe(run_format.runs_rows(items), hide_index=True, width="stretch", key="runs_table",
                 column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})


# ----------------------------------------------------------------------------------- one run
def draw_run(run_id: str) -> runs.Run:
    run = runs.get(run_id)
    shown = run_format.status(run)
    st.subheader(f"{ICONS.get(shown, '')} Run {run.id} — {shown}")
    overrides = run_format.settings_text(run) or "preset defaults"
    st.caption(f"preset `{run.preset}` ({overrides}) · device `{run.device}` ×{run.world_size} · "
               f"created {run.created} · attempt {max(run.attempts, 1)} · log `{run.log_path}`")
    st.progress(run.progress, text=run_format.progress_text(run))
    actions(run)
    if run.error:
        (st.warning if run.status == "cancelled" else st.error)(run.error.split("\n")[0])
    curves(runs.read_metrics(run.id))
    with st.expander("Log (last 40 lines)", expanded=run.status in ("running", "failed")):
        st.code(runs.log_tail(run.id, 40) or "(empty)", language=None)
    return run


def act(action, run_id: str) -> None:
    try:
        action(run_id)
    except runs.RunError as exc:  # e.g. it finished between the draw and the click
        notify("warning", str(exc))


def make_default(run_id: str) -> None:
    try:
        promotion.promote(run_id)
    except (ValueError, OSError) as exc:  # e.g. its checkpoint was deleted since the panel was drawn
        notify("warning", f"Not made the default: {exc}")
        return
    notify("success", f"Run {run_id}'s model is now the active default (dashboard, serve, evaluate, generate).")


def actions(run: runs.Run) -> None:
    c1, c2, c3 = st.columns([2, 1, 2])
    if run.status in runs.LIVE and run_format.status(run) != "cancelling":
        c1.button("Cancel run", key=f"cancel_{run.id}", on_click=act, args=(runs.cancel, run.id),
                  help="SIGTERM: the trainer saves its state and stops (SIGKILL if it hangs).")
    if run.status in ("failed", "cancelled"):
        c1.button("Resume run", key=f"resume_{run.id}", on_click=act, args=(runs.resume, run.id),
                  help="Continues from the last saved epoch, as the same run.")
    if run.status == "succeeded" and run.checkpoint:
        c1.button("Compare with the selected checkpoint", key=f"cmp_{run.id}",
                  on_click=st.session_state.__setitem__, args=(COMPARE, run.id))
        name = data.display_name(run.checkpoint)
        c2.button("Select in sidebar", key=f"use_{run.id}", disabled=st.session_state.get(state.CKPT) == name,
                  on_click=st.session_state.__setitem__, args=(state.CKPT, name),
                  help="Analyse this run's model on every page.")
        is_default = promotion.active_default().path.resolve() == Path(run.checkpoint).resolve()
        c3.button("Make default", key=f"default_{run.id}", disabled=is_default, on_click=make_default,
                  args=(run.id,), help="The model the dashboard opens on and the scripts use by default.")


def curves(metrics: list[dict]) -> None:
    if not metrics:
        st.caption("No metrics yet: the first line appears after the first training step.")
        return
    df = pd.DataFrame(metrics)
    df = df[df["phase"] != "done"] if "phase" in df else df
    c1, c2 = st.columns(2)
    with c1:
        st.caption("Training loss by step (each phase has its own loss)")
        if "loss" in df and df["loss"].notna().any():
            st.line_chart(df, x="step", y="loss", color=COLORS["pred"], height=220)
    with c2:
        st.caption("Validation MAE of the predicted sum (lower is better)")
        val = df.dropna(subset=["val_mae"]) if "val_mae" in df else df.iloc[0:0]
        if len(val):
            st.line_chart(val, x="step", y="val_mae", color=COLORS["true"], height=220)
        else:
            st.caption("— measured at the end of each head epoch")


def runs_and_panel(items: list[runs.Run]) -> runs.Run:
    """The run list, the run selector and the chosen run's panel; returns the chosen run."""
    runs_table(items)
    by_id = {r.id: r for r in items}
    if st.session_state.get(SELECTED) not in by_id:
        st.session_state[SELECTED] = items[0].id
    chosen = st.selectbox("Run", list(by_id), key=SELECTED, format_func=lambda i: run_format.run_label(by_id[i]))
    return draw_run(chosen)


@st.fragment(run_every=REFRESH_S)
def live_runs() -> None:
    """Redrawn every REFRESH_S while the chosen run is queued/running, the list with the panel so that
    both show the same status; a full rerun when it ends stops the polling and lets the sidebar list
    the new checkpoint."""
    if runs_and_panel(runs.list_runs()).status not in runs.LIVE:
        st.rerun()


# ----------------------------------------------------------------------------------- comparison
def comparison(run: runs.Run) -> None:
    s = state.settings()
    st.subheader("Comparison with the selected checkpoint")
    if s.checkpoint is None:
        st.info("Select a checkpoint in the sidebar to compare with.")
        return
    if s.checkpoint.resolve() == Path(run.checkpoint).resolve():
        st.info("This run's checkpoint is the one selected in the sidebar; select another to compare.")
        return
    st.caption(f"Same evaluation set for both (sidebar: lengths {links.format_lengths(s.lengths)}, "
               f"{s.per_length} per length, seed {s.seed}; test split).")
    try:
        base = data.evaluation_table(s.checkpoint, s.lengths, s.per_length, s.seed).rows
        new = data.evaluation_table(Path(run.checkpoint), s.lengths, s.per_length, s.seed).rows
    except Exception as exc:  # a broken checkpoint: the message names the file and the problem
        st.error(f"Cannot evaluate: {exc}")
        return
    a, b = f"selected ({s.checkpoint_name})", f"run {run.id}"
    # A and B in the column labels: the names would widen the table past the screen, hiding Δ MAE.
    formats = {"MAE · A": "%.3f", "MAE · B": "%.3f", "exact · A": "percent", "exact · B": "percent", "Δ MAE": "%+.3f"}
    st.dataframe(table_format.compare_by_length(base, new, "A", "B"), hide_index=True, width="stretch",
                 column_config={col: st.column_config.NumberColumn(format=f) for col, f in formats.items()})
    st.caption(f"Per length: MAE and exact-match of A, {a}, and B, {b}; Δ MAE = B − A, below 0 when the run "
               "is better.")
    diff = table_format.disagreements(base, new, a, b)
    st.markdown(f"**Sequences where the two disagree** (rounded sums differ): {len(diff)} of {len(base)}")
    st.dataframe(diff.head(500), hide_index=True, width="stretch")
    training_compare.where_they_differ(s, s.checkpoint, Path(run.checkpoint), a, b)


# ----------------------------------------------------------------------------------- page
st.title("Training")
st.caption("Train a new model in the background, follow it live, and compare it with the model "
           "selected in the sidebar. Runs keep going when this tab or the server closes.")
launch_form()
items = runs.list_runs()
if not items:
    st.info("No runs yet. Launch one above — the smoke preset finishes in under a minute.")
    st.stop()
chosen = next((r for r in items if r.id == st.session_state.get(SELECTED)), items[0])
if chosen.status in runs.LIVE:
    live_runs()
else:
    current = runs_and_panel(items)
    if st.session_state.get(COMPARE) == current.id and current.status == "succeeded":
        comparison(current)

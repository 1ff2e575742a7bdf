"""Overview: how good is the selected checkpoint, in the figures that matter, beside the original.

Headline figures come from the checkpoint's metadata when it recorded them; missing ones can be
measured here on the test split (cached per checkpoint version). The sidebar's evaluation set
adds a per-length summary computed live.
"""

import streamlit as st
from _bootstrap import router_guard  # first: puts the repo root on sys.path

from core import evaluate
from dashboard import charts, components, state

router_guard()  # first: a page opened without the router reruns through it

s = state.settings()
predictor = state.require(s)
meta = predictor.metadata or {}
train = components.training_range(meta)

st.title("Overview")
st.caption(f"Checkpoint **{s.checkpoint_name}** · head `{meta.get('head')}` · preset "
           f"`{meta.get('preset')}` · trained on lengths "
           f"{f'{train[0]}–{train[1]}' if train else 'unknown'} · created {meta.get('created') or '?'}")

# ----------------------------------------------------------------------------- headline figures
from_meta = components.stored_headlines(meta)
from_benchmark = components.benchmark_headlines(state.benchmark(), s.checkpoint, state.REPO_ROOT,
                                                meta.get("created"))
stored = {**from_benchmark, **from_meta}
missing = [k for k in components.HEADLINES if k not in stored]
measured = {}
if missing and state.headlines_measured(s.checkpoint):
    measured = state.measured_headlines(s.checkpoint)


def source(key, value) -> str:
    if key in from_meta:
        return "from the checkpoint metadata"
    if key in from_benchmark:
        return "from reports/benchmark.json (python -m scripts.benchmark)"
    return "measured here on the test split" if value is not None else "not recorded yet"


st.subheader("Headline figures (test split)")
figures = {**measured, **stored}  # what the checkpoint recorded wins over a re-measurement
rows = [list(components.HEADLINES)[:3], list(components.HEADLINES)[3:]]
for keys in rows:
    for col, key in zip(st.columns(len(keys)), keys):
        label, fmt, _ = components.HEADLINES[key]
        value = figures.get(key)
        delta = None
        if key == "protocol_mae" and value is not None:
            delta = f"{value - evaluate.ORIGINAL_MAE:+.3f} vs original {evaluate.ORIGINAL_MAE}"
        col.metric(label, "—" if value is None else fmt.format(value), delta=delta,
                   delta_color="inverse", help=source(key, value))
st.caption(f"Original protocol: 20,000 sequences of 10 MNIST test digits, on which the original "
           f"CNN+LSTM project reported MAE {evaluate.ORIGINAL_MAE}. Extrapolation: 1,000 sequences "
           "of length 100 and 100 of length 1000.")
if missing and not measured:
    # A callback flag rather than the button's return value: it survives a rerun through the router.
    st.button(f"Measure the {len(missing)} missing figure(s) on this machine (up to a minute on a CPU)",
              key="measure", on_click=lambda: st.session_state.update(measure_requested=True))
    if st.session_state.pop("measure_requested", False):
        state.measured_headlines(s.checkpoint)
        st.rerun()

# ----------------------------------------------------------------------------- vs the original
left, right = st.columns([3, 2])
with left:
    st.subheader("Against the original project")
    if figures.get("protocol_mae") is not None:
        st.altair_chart(charts.headline_bar(figures["protocol_mae"], evaluate.ORIGINAL_MAE),
                        width="stretch")
        ratio = evaluate.ORIGINAL_MAE / max(figures["protocol_mae"], 1e-9)
        verdict = f"{ratio:.1f}× smaller" if ratio >= 1 else f"{1 / ratio:.1f}× larger"
        st.caption(f"Shorter is better: the original CNN+LSTM reported MAE {evaluate.ORIGINAL_MAE} "
                   f"on the same protocol; this checkpoint's error is {verdict}.")
    else:
        st.info("Measure the original-protocol MAE above to compare it with the original 0.838.")

# ----------------------------------------------------------------------------- this evaluation set
with right:
    st.subheader("On the sidebar's evaluation set")
    df = state.sidebar_evaluation(s)
    total = evaluate.summary(df)
    c1, c2, c3 = st.columns(3)
    c1.metric("Sequences", f"{total['n']:,}")
    c2.metric("MAE", f"{total['mae']:.3f}")
    c3.metric("Exact-match", f"{total['exact_acc']:.1%}")
    st.caption(f"{s.per_length} test sequences per length, lengths "
               f"{components.format_lengths(s.lengths)}, seed {s.seed}. Digit accuracy over "
               f"these images: {total['digit_acc']:.2%}.")

stats = evaluate.by_length(df)
stats["in training range"] = [bool(train and train[0] <= v <= train[1]) for v in stats["length"]]
st.dataframe(stats[["length", "n", "mae", "rmse", "exact_acc", "digit_acc", "in training range"]],
             hide_index=True, width="stretch", height=min(38 + 35 * len(stats), 640), column_config={
                 "mae": st.column_config.NumberColumn("MAE", format="%.3f"),
                 "rmse": st.column_config.NumberColumn("RMSE", format="%.3f"),
                 "exact_acc": st.column_config.ProgressColumn("exact-match", min_value=0, max_value=1,
                                                              format="percent"),
                 "digit_acc": st.column_config.NumberColumn("digit acc", format="percent")})
st.caption("One row per length of the evaluation set; rows outside the training range show how "
           "the head extrapolates. The Error analysis page breaks these down further.")

# ----------------------------------------------------------------------------- training metadata
st.subheader("Training metadata")
cfg = meta.get("train_config") or {}
facts = {"head": meta.get("head"), "preset": meta.get("preset"),
         "training lengths": f"{train[0]}–{train[1]}" if train else None,
         "epochs (cnn/head/joint)": "/".join(str(cfg.get(k, "?")) for k in
                                             ("epochs_cnn", "epochs_head", "epochs_joint")),
         "seed": cfg.get("seed"), "data checksum": meta.get("data_checksum"),
         "code version": meta.get("code_version")}
for col, (k, v) in zip(st.columns(len(facts)), facts.items()):
    col.markdown(f"**{k}**  \n`{v if v is not None else '—'}`")
with st.expander("All metadata fields"):
    st.dataframe(components.metadata_rows(meta), hide_index=True, width="stretch")

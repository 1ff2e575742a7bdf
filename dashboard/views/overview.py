"""Overview: how good is the selected checkpoint, in the figures that matter, beside the original.

Headline figures come from reports/benchmark.json when it measured this checkpoint; otherwise they
can be measured here on the test split (cached per checkpoint version). The sidebar's evaluation
set adds a per-length summary computed live, and the trust figures (digit ECE, sum ECE, exact-match at
90% coverage) beside the uncalibrated model's.
"""

import streamlit as st

from core import evaluate
from core.evaluate import reliability
from dashboard import cache, charts, headlines, links, settings, tables, trust

s = settings.settings()
predictor = settings.require(s)
meta = predictor.metadata or {}
train = tables.training_range(meta)

st.title("Overview")
st.caption(f"Checkpoint **{s.checkpoint_name}** · head `{meta.get('head')}` · preset "
           f"`{meta.get('preset')}` · trained on lengths "
           f"{f'{train[0]}–{train[1]}' if train else 'unknown'} · created {meta.get('created') or '?'}")

# ----------------------------------------------------------------------------- headline figures
from_benchmark = headlines.benchmark_headlines(cache.benchmark(), s.checkpoint, cache.REPO_ROOT, meta.get("created"))
missing = headlines.missing(from_benchmark)
measured = cache.measured_headlines(s.checkpoint) if missing and cache.headlines_measured(s.checkpoint) else {}
figures = headlines.headlines(from_benchmark, measured)

st.subheader("Headline figures (test split)")
for row in (figures[:3], figures[3:]):
    for col, h in zip(st.columns(len(row)), row):
        col.metric(h.label, h.text, delta=h.delta, delta_color="inverse", help=h.source)
st.caption(f"Original protocol: 20,000 sequences of 10 MNIST test digits, on which the original "
           f"CNN+LSTM project reported MAE {evaluate.ORIGINAL_MAE}. Extrapolation: 1,000 sequences "
           "of length 100 and 100 of length 1000.")
if missing and not measured:
    # A callback flag rather than the button's return value: it survives the rerun.
    st.button(f"Measure the {len(missing)} missing figure(s) on this machine (up to a minute on a CPU)",
              key="measure", on_click=lambda: st.session_state.update(measure_requested=True))
    if st.session_state.pop("measure_requested", False):
        cache.measured_headlines(s.checkpoint)
        st.rerun()

# ----------------------------------------------------------------------------- vs the original
protocol_mae = figures[0].value
left, right = st.columns([3, 2])
with left:
    st.subheader("Against the original project")
    if protocol_mae is not None:
        st.altair_chart(charts.headline_bar(protocol_mae, evaluate.ORIGINAL_MAE), width="stretch")
        st.caption(f"Shorter is better: the original CNN+LSTM reported MAE {evaluate.ORIGINAL_MAE} on the same "
                   f"protocol; this checkpoint's error is {headlines.verdict(protocol_mae)}.")
    else:
        st.info(f"Measure the original-protocol MAE above to compare it with the original {evaluate.ORIGINAL_MAE}.")

# ----------------------------------------------------------------------------- this evaluation set
with right:
    st.subheader("On the sidebar's evaluation set")
    df = settings.sidebar_evaluation(s)
    total = evaluate.summary(df)
    c1, c2, c3 = st.columns(3)
    c1.metric("Sequences", f"{total['n']:,}")
    c2.metric("MAE", f"{total['mae']:.3f}")
    c3.metric("Exact-match", f"{total['exact_acc']:.1%}")
    st.caption(f"{s.per_length} test sequences per length, lengths {links.format_lengths(s.lengths)}, seed "
               f"{s.seed}. Digit accuracy over these images: {total['digit_acc']:.2%}.")

stats = tables.length_table(df, train)
st.dataframe(stats, hide_index=True, width="stretch", height=min(38 + 35 * len(stats), 640), key="by_length",
             column_config={
                 "mae": st.column_config.NumberColumn("MAE", format="%.3f"),
                 "rmse": st.column_config.NumberColumn("RMSE", format="%.3f"),
                 "exact_acc": st.column_config.ProgressColumn("exact-match", min_value=0, max_value=1,
                                                              format="percent"),
                 "digit_acc": st.column_config.NumberColumn("digit acc", format="percent")})
st.caption("One row per length of the evaluation set; rows outside the training range show how "
           "the head extrapolates. The Error analysis view breaks these down further.")

# ----------------------------------------------------------------------------- trust
st.subheader("Calibration (is the model's confidence honest?)")
digits = cache.digit_calibration(s.checkpoint, s.aside)
after = reliability.sum_calibration(df)
before = (reliability.sum_calibration(cache.uncalibrated_evaluation(s.checkpoint, s.lengths, s.per_length, s.seed,
                                                                    s.aside)) if after["available"] else after)
for col, (label, value, raw) in zip(st.columns(3), trust.trust_figures(digits, after, before)):
    col.metric(label, value, delta=f"uncalibrated {raw}" if raw != "—" else None, delta_color="off",
               delta_arrow="off", help="calibrated (this checkpoint) beside the same model with T = 1")
st.caption("Digit ECE over the test images; sum ECE (p_exact against exact-match) and exact-match on the 90% "
           "of sequences the model is surest of, over the sidebar's evaluation set. Lower ECE is better. "
           + ("" if after["available"] else settings.no_distribution_note(predictor) + " ")
           + "The Calibration view has the full picture.")

# ----------------------------------------------------------------------------- training metadata
st.subheader("Training metadata")
facts = tables.training_facts(meta)
for col, (k, v) in zip(st.columns(len(facts)), facts.items()):
    col.markdown(f"**{k}**  \n`{v if v is not None else '—'}`")
with st.expander("All metadata fields"):
    st.dataframe(tables.metadata_rows(meta), hide_index=True, width="stretch")

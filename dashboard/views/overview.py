"""Overview: how good is the selected checkpoint, in the figures that matter, beside the original.

Headline figures come from reports/benchmark.json when it measured this checkpoint; otherwise they
can be measured here on the test split (cached per checkpoint version). The sidebar's evaluation
set adds a per-length summary computed live, and the trust figures (digit ECE, sum ECE, exact-match at
90% coverage) beside the uncalibrated model's.
"""

import streamlit as st

from core import evaluate, promotion
from core.evaluate import reliability
from core.paths import REPO_ROOT
from dashboard import data, links, state
from dashboard.ui import charts, headline_cards, table_format, trust_tables

s = state.settings()
predictor = state.require(s)
meta = predictor.metadata or {}
train = table_format.training_range(meta)
decided_label = ("Computed with your label decisions (sidebar: Apply my label decisions): relabelled test images "
                 "count as their decided digit, excluded ones are used nowhere.")
aside_label = (f"Computed without the {s.aside} test images whose labels the model doubts most (sidebar: "
               "Set suspect images aside). This is the model's upper bound, not a figure anyone vouched for.")

st.title("Overview")
st.caption(f"Checkpoint **{s.checkpoint_name}** · {table_format.cnn_text(meta)} · head `{meta.get('head')}` · preset "
           f"`{meta.get('preset')}` · trained on lengths "
           f"{f'{train[0]}–{train[1]}' if train else 'unknown'} · created {meta.get('created') or '?'}")

# ----------------------------------------------------------------------------- headline figures
from_benchmark = headline_cards.benchmark_headlines(data.benchmark(), s.checkpoint, REPO_ROOT, meta.get("created"))
missing = headline_cards.missing(from_benchmark)
measured = data.measured_headlines(s.checkpoint) if missing and data.headlines_measured(s.checkpoint) else {}
figures = headline_cards.headlines(from_benchmark, measured)

st.subheader("Headline figures (test split)")
if s.aside:  # the headline protocol always uses every test image; the figures below it do not
    st.caption("These use every test image, whatever the sidebar's switch: they are the protocol's figures.")
for row in (figures[:3], figures[3:]):
    for col, h in zip(st.columns(len(row)), row):
        col.metric(h.label, h.text, delta=h.delta, delta_color="inverse", help=h.source)
proto, extra = evaluate.ORIGINAL_PROTOCOL, evaluate.HEADLINE_EXTRAPOLATION
st.caption(f"Original protocol: {proto['count']:,} sequences of {proto['length']} MNIST test digits, on which the "
           f"original CNN+LSTM project reported MAE {evaluate.ORIGINAL_MAE}. Extrapolation: "
           + " and ".join(f"{count:,} sequences of length {length}" for length, count in extra.items()) + ".")
if missing and not measured:
    # A callback flag rather than the button's return value: it survives the rerun.
    st.button(f"Measure the {len(missing)} missing figure(s) on this machine (up to a minute on a CPU)",
              key="measure", on_click=lambda: st.session_state.update(measure_requested=True))
    if st.session_state.pop("measure_requested", False):
        data.measured_headlines(s.checkpoint)
        st.rerun()

# ----------------------------------------------------------------------------- with the person's decisions
n_decided = len(data.decided("test"))
if n_decided:
    st.subheader(f"With your label decisions ({n_decided} test images)")
    st.caption("The same protocol with the labels you decided: a relabelled image counts as its new digit and an "
               "excluded one is used nowhere. These are figures a person vouched for; 'Set suspect images aside' "
               "is the model's own upper bound.")
    if data.headlines_measured(s.checkpoint, decided=True):
        as_given = data.measured_headlines(s.checkpoint) if data.headlines_measured(s.checkpoint) else {}
        as_given = {**as_given, **{h.key: h.value for h in figures if h.value is not None}}
        st.table(headline_cards.with_and_without(as_given, data.measured_headlines(s.checkpoint, decided=True),
                                                 n_decided).set_index("figure"))
    else:
        st.button(f"Measure the headline figures with your {n_decided} decisions (a few seconds)",
                  key="measure_decided", on_click=lambda: st.session_state.update(measure_decided_requested=True))
        if st.session_state.pop("measure_decided_requested", False):
            data.measured_headlines(s.checkpoint, decided=True)
            st.rerun()

# ----------------------------------------------------------------------------- vs the original
protocol_mae = figures[0].value
left, right = st.columns([3, 2])
with left:
    st.subheader("Against the original project")
    if protocol_mae is not None:
        st.altair_chart(charts.headline_bar(protocol_mae, evaluate.ORIGINAL_MAE), width="stretch")
        st.caption(f"Shorter is better: the original CNN+LSTM reported MAE {evaluate.ORIGINAL_MAE} on the same "
                   f"protocol; this checkpoint's error is {headline_cards.verdict(protocol_mae)}.")
    else:
        st.info(f"Measure the original-protocol MAE above to compare it with the original {evaluate.ORIGINAL_MAE}.")

# ----------------------------------------------------------------------------- this evaluation set
with right:
    st.subheader("On the sidebar's evaluation set")
    if s.aside:
        st.info(aside_label, icon=":material/label_off:")
    if s.decided:
        st.info(decided_label, icon=":material/gavel:")
    table = state.sidebar_evaluation(s)
    total = evaluate.summary(table)
    c1, c2, c3 = st.columns(3)
    c1.metric("Sequences", f"{total['n']:,}")
    c2.metric("MAE", f"{total['mae']:.3f}")
    c3.metric("Exact-match", f"{total['exact_acc']:.1%}")
    st.caption(f"{s.per_length} test sequences per length, lengths {links.format_lengths(s.lengths)}, seed "
               f"{s.seed}. Digit accuracy over these images: {total['digit_acc']:.2%}.")

stats = table_format.length_table(table, train)
st.dataframe(stats, hide_index=True, width="stretch", height=min(38 + 35 * len(stats), 640), key="by_length",
             column_config={
                 "mae": st.column_config.NumberColumn("MAE", format="%.3f"),
                 "rmse": st.column_config.NumberColumn("RMSE", format="%.3f"),
                 "exact_acc": st.column_config.ProgressColumn("exact-match", min_value=0, max_value=1,
                                                              format="percent"),
                 "digit_acc": st.column_config.NumberColumn("digit acc", format="percent")})
st.caption("One row per length of the evaluation set; rows outside the training range show how "
           "the head extrapolates. The Error analysis view breaks these down further."
           + (f" Without the {s.aside} most suspect test images." if s.aside else ""))

# ----------------------------------------------------------------------------- trust
st.subheader("Calibration (is the model's confidence honest?)")
if s.aside:
    st.info(aside_label, icon=":material/label_off:")
if s.decided:
    st.info(decided_label, icon=":material/gavel:")
digits = data.digit_calibration(s.checkpoint, s.aside, s.decided)
after = reliability.sum_calibration(table.rows)
before = (reliability.sum_calibration(data.uncalibrated_table(s.checkpoint, s.lengths, s.per_length, s.seed,
                                                              s.aside, s.decided).rows) if after["available"] else after)
for col, (label, value, raw) in zip(st.columns(3), trust_tables.trust_figures(digits, after, before)):
    col.metric(label, value, delta=f"uncalibrated {raw}" if raw != "—" else None, delta_color="off",
               delta_arrow="off", help="calibrated (this checkpoint) beside the same model with T = 1")
st.caption("Digit ECE over the test images; sum ECE (p_exact against exact-match) and exact-match on the 90% "
           "of sequences the model is surest of, over the sidebar's evaluation set. Lower ECE is better. "
           + ("" if after["available"] else state.no_distribution_note(predictor) + " ")
           + "The Calibration view has the full picture.")

# ----------------------------------------------------------------------------- training metadata
st.subheader("Training metadata")
facts = table_format.training_facts(meta)
for col, (k, v) in zip(st.columns(len(facts)), facts.items()):
    col.markdown(f"**{k}**  \n`{v if v is not None else '—'}`")
with st.expander("All metadata fields"):
    st.dataframe(table_format.metadata_rows(meta), hide_index=True, width="stretch")

# ----------------------------------------------------------------------------- lineage
st.subheader("Lineage")
lineage = promotion.lineage_facts(meta)
if lineage is None:
    st.caption(f"Lineage {promotion.NOT_RECORDED}.")
else:
    for col, (k, v) in zip(st.columns(len(lineage)), lineage.items()):
        col.markdown(f"**{k}**  \n{v}")
    st.caption("The checkpoint this one was trained from (by content hash), and the data it saw.")

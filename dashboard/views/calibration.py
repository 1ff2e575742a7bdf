"""Calibration: are the model's probabilities honest, and can it say when not to trust a sum?

Digits: reliability of the CNN's confidence on every test image, before and after temperature scaling.
Sums: reliability of p_exact (the model's probability that its rounded sum is exact) on the sidebar's
evaluation set, the 95% intervals' coverage, and the risk-coverage curve of selective prediction, whose
threshold can be sent to Error analysis as a filter.
"""

import streamlit as st

from core.evaluate import reliability
from dashboard import data, state
from dashboard.ui import trust_charts, trust_tables

s = state.settings()
predictor = state.require(s)
df = state.sidebar_evaluation(s).rows  # per-sequence columns (p_exact, exact, length)

st.title("Calibration")
aside = f", without the {s.aside} most suspect images" if s.aside else ""
st.caption(f"Temperatures: CNN T = {predictor.cnn_temperature:.3f}, head T = {predictor.head_temperature:.3f} "
           f"(fitted on validation data; T = 1 is the uncalibrated model). Sum figures use the sidebar's "
           f"evaluation set ({len(df):,} test sequences{aside}).")

# ----------------------------------------------------------------------------- digits
st.subheader("Digits: the CNN's confidence")
digits = data.digit_calibration(s.checkpoint, s.aside, s.decided)
left, right = st.columns([3, 2])
with left:
    eces = {side: digits[side]["ece"] for side in ("before", "after")}
    st.plotly_chart(trust_charts.reliability_figure({"before": digits["before_table"], "after": digits["after_table"]},
                                                    eces, "accuracy"), key="digit_reliability")
    st.caption(f"Each point is a confidence bin over {digits['images']:,} test images: its mean confidence "
               "against how often the reading was right (bigger points hold more images). On the dotted "
               "diagonal, a stated 90% is right 90% of the time.")
with right:
    for name, key, fmt in (("Digit ECE", "ece", "{:.2%}"), ("NLL", "nll", "{:.4f}"), ("Brier score", "brier", "{:.4f}")):
        before, after = digits["before"][key], digits["after"][key]
        st.metric(name, fmt.format(after), delta=f"{fmt.format(after - before)} vs uncalibrated {fmt.format(before)}",
                  delta_color="inverse")
    st.caption(f"Digit accuracy {digits['after']['accuracy']:.2%} (temperature scaling never changes a reading). "
               "ECE: the count-weighted gap between confidence and accuracy over 15 bins; lower is better.")

# ----------------------------------------------------------------------------- sums
st.subheader("Sums: P(exact) and the 95% interval")
if not trust_tables.has_distribution(df):
    st.info(state.no_distribution_note(predictor))
    st.stop()
raw = data.uncalibrated_table(s.checkpoint, s.lengths, s.per_length, s.seed, s.aside, s.decided).rows
after, before = reliability.sum_calibration(df), reliability.sum_calibration(raw)
left, right = st.columns([3, 2])
with left:
    tables = {"before": reliability.reliability(raw["p_exact"], raw["exact"]),
              "after": reliability.reliability(df["p_exact"], df["exact"])}
    st.plotly_chart(trust_charts.reliability_figure(tables, {"before": before["sum_ece"], "after": after["sum_ece"]},
                                                    "exact-match"), key="sum_reliability")
    st.caption("Each point is a bin of sequences by p_exact: the stated probability that the rounded sum is "
               "exact, against how often it was. 'before' is the same model with T = 1 and no interval margin.")
with right:
    st.metric("Sum ECE", f"{after['sum_ece']:.2%}", delta=f"uncalibrated {before['sum_ece']:.2%}",
              delta_color="off", delta_arrow="off")
    st.metric("Mean p_exact / exact-match", f"{after['mean_p_exact']:.1%} / {after['exact']:.1%}")
    st.dataframe(trust_tables.interval_table(after), hide_index=True, key="intervals", height=240, column_config={
        "interval coverage": st.column_config.NumberColumn("95% interval holds the sum", format="percent"),
        "mean width": st.column_config.NumberColumn("mean width", format="%.2f")})

# ----------------------------------------------------------------------------- selective prediction
st.subheader("Selective prediction: answer only when sure")
curve = reliability.risk_coverage(df)
threshold = st.slider("p_exact threshold", 0.0, 1.0, 0.9, step=0.01, key="cal_threshold",
                      help="Answer the sequences whose p_exact reaches the threshold; hand the rest to a person.")
at = trust_tables.selective(df, threshold)
left, right = st.columns([3, 2])
with left:
    st.plotly_chart(trust_charts.risk_coverage_figure(trust_tables.thin(curve), threshold), key="risk_coverage")
    st.caption("Sequences sorted surest first: answering more of them (coverage, right) lets more errors in "
               "(risk, up). The diamond marks the threshold. AURC, the mean risk over all coverages, is lower "
               "for a model whose doubt falls on its errors.")
with right:
    c1, c2 = st.columns(2)
    c1.metric("Coverage", f"{at['coverage']:.1%}", help="share of sequences with p_exact ≥ the threshold")
    c2.metric("Exact-match", "—" if at["coverage"] == 0 else f"{at['exact']:.2%}",
              help="exact-match of the answered sequences")
    c1.metric("AURC", f"{after['aurc']:.4f}", delta=f"uncalibrated {before['aurc']:.4f}", delta_color="off",
              delta_arrow="off")
    c2.metric("Exact-match at 90% coverage", f"{after['exact_at_90']:.2%}",
              delta=f"uncalibrated {before['exact_at_90']:.2%}", delta_color="off", delta_arrow="off")
    st.caption(f"{at['below']:,} sequences fall below p_exact {threshold:.2f}; overall exact-match "
               f"{after['exact']:.2%}.")
    if st.button(f"Show the {at['below']:,} sequences below {threshold:.2f} in Error analysis",
                 icon=":material/troubleshoot:", key="cal_send", disabled=at["below"] == 0):
        st.session_state[state.P_EXACT_REQUEST] = threshold
        st.switch_page("views/errors.py")

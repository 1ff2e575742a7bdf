"""Generator: build a sequence on demand (length, seed, sum and digit constraints) and see how the
selected checkpoint sums it. Sequences come from core.data.sequences on MNIST test images.
"""

import secrets
import time
from functools import partial

import numpy as np
import streamlit as st

from core.images import png_bytes, strip_image
from dashboard import data, links, state
from dashboard.ui import decision_format, digit_strip

s = state.settings()
predictor = state.require(s)

st.title("Generator")
st.caption("Draws MNIST test images for a random digit sequence under your constraints, then "
           "asks the selected checkpoint for its sum.")

ss = st.session_state
ss.setdefault("gen_seed", 0)


def new_seed() -> None:
    ss["gen_seed"] = secrets.randbelow(2**31)


# ----------------------------------------------------------------------------- inputs
c1, c2, c3 = st.columns([2, 2, 1], vertical_alignment="bottom")
length = c1.number_input("Length", min_value=1, max_value=links.GENERATOR_MAX_LENGTH, value=10, step=1,
                         key="gen_length")
seed = c2.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1, key="gen_seed")
c3.button("New random", icon=":material/casino:", on_click=new_seed, key="generator_random", width="stretch")

c1, c2, c3 = st.columns([2, 2, 2])
mode = c1.radio("Sum constraint", ["none", "target sum", "sum range"], horizontal=True, key="gen_mode")
target = sum_min = sum_max = None
if mode == "target sum":
    target = int(c2.number_input("Target sum", min_value=0, value=min(45, 9 * length), key="gen_target"))
elif mode == "sum range":
    sum_min = int(c2.number_input("Lowest sum", min_value=0, value=0, key="gen_sum_min"))
    sum_max = int(c3.number_input("Highest sum", min_value=0, value=min(45, 9 * length), key="gen_sum_max"))
digits = st.multiselect("Allowed digits", list(range(10)), default=list(range(10)), key="gen_digits",
                        help="Only these digits appear in the sequence.")

# ----------------------------------------------------------------------------- generate + predict
try:
    spec = links.generator_spec(length, seed, digits, target, sum_min, sum_max)
except ValueError as exc:
    st.error(str(exc))
    st.stop()
start = time.perf_counter()
try:
    row = data.generated_row(s.checkpoint, spec)
except ValueError as exc:  # impossible constraints: core explains why
    st.error(f"Cannot build this sequence: {exc}")
    st.stop()
elapsed = time.perf_counter() - start
images = data.sequence_images(row)
true_digits, pred_digits = np.asarray(row["true_digits"]), np.asarray(row["pred_digits"])

m1, m2, m3, m4 = st.columns(4)
m1.metric("Predicted sum", f"{row['pred_sum']:.2f}", help=f"rounds to {int(row['pred_rounded'])}")
m2.metric("True sum", int(row["true_sum"]))
m3.metric("Error", f"{row['error']:+.2f}", delta="exact" if row["exact"] else "wrong",
          delta_color="normal" if row["exact"] else "inverse", delta_arrow="off")
m4.metric("Misread digits", f"{int((true_digits != pred_digits).sum())} of {len(true_digits)}")

if row["p_exact"] == row["p_exact"]:  # NaN for a head without a distribution over the sum
    lo, hi = int(row["interval_lo"]), int(row["interval_hi"])
    p1, p2, _ = st.columns([1, 1, 2])
    p1.metric("P(exact)", f"{row['p_exact']:.1%}",
              help=f"the model's probability that the sum is exactly {int(row['pred_rounded'])}")
    p2.metric("95% interval", f"{lo}–{hi}", help="central 95% credible interval of the sum (inclusive)")
else:
    st.caption(state.no_distribution_note(predictor))

decided = data.decided("test")
st.html(digit_strip.digit_row_html(images, true_digits, pred_digits, row["digit_conf"], second=row["second_digits"],
                                   second_conf=row["second_conf"],
                                   badges=[decision_format.strip_badge(decided.get(int(i))) for i in row["indices"]]))
st.caption(f"The sequence: true digit, the CNN's reading, its probability and the runner-up (2nd) under each image (misread "
           f"ones framed in red); scroll sideways for long sequences. "
           f"{digit_strip.misread_summary(true_digits, pred_digits)} Generated and predicted in "
           f"{1000 * elapsed:.0f} ms.")

b1, b2, _ = st.columns([1, 1, 2])
with b1:
    st.page_link("views/inspector.py", label="Open in inspector", icon=":material/pageview:",
                 query_params=links.link_query(spec, s.checkpoint_name))
with b2:
    strip = partial(strip_image, images, true_digits != pred_digits)  # built only on click
    st.download_button("Download PNG", lambda: png_bytes(strip()),
                       file_name=f"digitsum_len{spec.length}_seed{spec.seed}.png", mime="image/png",
                       on_click="ignore", key="generator_png")

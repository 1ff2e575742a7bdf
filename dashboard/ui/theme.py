"""The dashboard's one colour scheme, shared by every chart (plotly and altair) and the HTML strips.

Mid-luminance colours chosen to stay readable on Streamlit's light and dark backgrounds; the
primary colour matches `.streamlit/config.toml`. Sequential data uses Viridis, which keeps its
contrast in both themes and for colour-blind readers.
"""

COLORS = {
    "pred": "#3B82F6",    # the model's prediction (blue, also the app's primary colour)
    "true": "#F59E0B",    # ground truth (amber)
    "bad": "#EF4444",     # errors, misread digits
    "good": "#10B981",    # exact / correct
    "muted": "#94A3B8",   # reference lines, the original project's figure
}
TRAIN_SHADE = "rgba(16, 185, 129, 0.14)"  # the training length range, behind the by-length lines
SEQUENTIAL = "Viridis"


"""One sequence drawn as HTML: each digit image with its true label, the CNN's reading and confidence."""

from __future__ import annotations

import base64
from html import escape

import numpy as np

from core.images import png_bytes
from dashboard.theme import COLORS


def misread_summary(true_digits, pred_digits, limit: int = 12) -> str:
    """'Misread at steps 37 (7 read as 1), 81 (4 read as 9).' — finds them in a long row."""
    wrong = [(i + 1, int(t), int(p)) for i, (t, p) in enumerate(zip(true_digits, pred_digits)) if int(t) != int(p)]
    if not wrong:
        return "Every digit was read correctly."
    shown = ", ".join(f"{step} ({t} read as {p})" for step, t, p in wrong[:limit])
    more = f" and {len(wrong) - limit} more" if len(wrong) > limit else ""
    return f"Misread at step{'s' if len(wrong) > 1 else ''} {shown}{more}."


def digit_row_html(images: np.ndarray, true_digits, pred_digits, confidence, size: int = 44) -> str:
    """A horizontally scrollable row: each digit image with true / predicted / confidence under it.

    Wrong digits get a red frame and red text. Text colour is inherited from the page so it reads
    in light and dark themes; only the highlight colour is fixed. One HTML element (rather than a
    Streamlit column per digit) keeps a 1000-digit sequence fast to render.
    """
    n = len(images)
    if not (len(true_digits) == len(pred_digits) == len(confidence) == n):
        raise ValueError("digit_row_html needs one true digit, prediction and confidence per image")
    cells, wrong = [], 0
    for img, t, p, c in zip(images, true_digits, pred_digits, confidence):
        bad = int(t) != int(p)
        wrong += bad
        frame = COLORS["bad"] if bad else "rgba(128,128,128,0.35)"
        text = f"color:{COLORS['bad']};font-weight:700;" if bad else ""
        uri = "data:image/png;base64," + base64.b64encode(png_bytes(img)).decode("ascii")
        cells.append(
            f'<div style="flex:0 0 auto;text-align:center;padding:2px;{text}">'
            f'<img src="{uri}" width="{size}" height="{size}" alt="digit {int(t)}" '
            f'style="image-rendering:pixelated;border:3px solid {frame};border-radius:4px;"/>'
            f'<div style="font-size:0.75rem;line-height:1.15;">true {int(t)}<br/>'
            f'pred {int(p)}<br/>{100 * float(c):.0f}%</div></div>')
    title = escape(f"{n} digits, {wrong} misread")
    return (f'<div class="digit-row" title="{title}" style="display:flex;gap:4px;overflow-x:auto;'
            f'padding-bottom:6px;font-family:monospace;">{"".join(cells)}</div>')

"""One sequence drawn as HTML: each digit image with its true label, the CNN's reading and confidence."""

from __future__ import annotations

import base64
from html import escape

import numpy as np

from core.images import png_bytes
from dashboard.ui.theme import COLORS


def misread_summary(true_digits, pred_digits, limit: int = 12) -> str:
    """'Misread at steps 37 (7 read as 1), 81 (4 read as 9).' — finds them in a long row."""
    wrong = [(i + 1, int(t), int(p)) for i, (t, p) in enumerate(zip(true_digits, pred_digits)) if int(t) != int(p)]
    if not wrong:
        return "Every digit was read correctly."
    shown = ", ".join(f"{step} ({t} read as {p})" for step, t, p in wrong[:limit])
    more = f" and {len(wrong) - limit} more" if len(wrong) > limit else ""
    return f"Misread at step{'s' if len(wrong) > 1 else ''} {shown}{more}."


def pct(p) -> str:
    """A probability in a few characters: '93%', '0.4%', '<0.1%'."""
    p = 100 * float(p)
    return f"{p:.0f}%" if p >= 9.5 else f"{p:.1f}%" if p >= 0.1 else "<0.1%"


def digit_row_html(images: np.ndarray, true_digits, pred_digits, confidence, size: int = 44, second=None,
                   second_conf=None, badges=None) -> str:
    """A horizontally scrollable row: each digit image with true / predicted / confidence under it,
    and with `second` / `second_conf` the CNN's runner-up reading and its probability (top-2), and with
    `badges` (one short text per image, '' for none) a person's decision about its label.

    Wrong digits get a red frame and red text. Text colour is inherited from the page so it reads
    in light and dark themes; only the highlight colour is fixed. One HTML element (rather than a
    Streamlit column per digit) keeps a 1000-digit sequence fast to render.
    """
    n = len(images)
    if not (len(true_digits) == len(pred_digits) == len(confidence) == n):
        raise ValueError("digit_row_html needs one true digit, prediction and confidence per image")
    if second is not None and not (second_conf is not None and len(second) == len(second_conf) == n):
        raise ValueError("digit_row_html needs one second reading and its probability per image")
    runner_up = list(zip(second, second_conf)) if second is not None else [None] * n
    badges = list(badges) if badges is not None else [""] * n
    if len(badges) != n:
        raise ValueError("digit_row_html needs one badge (or '') per image")
    cells, wrong = [], 0
    for img, t, p, c, alt, mark in zip(images, true_digits, pred_digits, confidence, runner_up, badges):
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
            f'pred {int(p)}<br/>{100 * float(c):.0f}%'
            + (f'<br/><span class="second" style="opacity:0.7;">2nd {int(alt[0])}<br/>{pct(alt[1])}</span>'
               if alt is not None else "")
            + (f'<br/><span class="decided" style="color:{COLORS["true"]};font-weight:700;">{escape(mark)}</span>'
               if mark else "") + '</div></div>')
    title = escape(f"{n} digits, {wrong} misread")
    return (f'<div class="digit-row" title="{title}" style="display:flex;gap:4px;overflow-x:auto;'
            f'padding-bottom:6px;font-family:monospace;">{"".join(cells)}</div>')

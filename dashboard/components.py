"""Shared, Streamlit-free helpers for the pages: parsing, filtering, links, tables, headline figures.

Pages stay thin: they read widgets, call these functions and core's public API, and render. Every
function here is a plain function of its arguments, unit-tested in tests/test_components.py.
"""

from __future__ import annotations

import base64
import math
from dataclasses import dataclass
from html import escape
from urllib.parse import urlencode

import numpy as np
import pandas as pd

from core.images import png_bytes
from core.sequences import parse_lengths
from dashboard.theme import COLORS

GENERATOR_MAX_LENGTH = 1000  # the generator page's limit (issue 4); core allows up to MAX_LENGTH


# --------------------------------------------------------------------------- evaluation-set lengths

def format_lengths(lengths) -> str:
    """[1, 2, 3, 5, 20] -> '1-3,5,20': the inverse of core.sequences.parse_lengths, for links."""
    values = sorted(set(int(v) for v in lengths))
    parts, i = [], 0
    while i < len(values):
        j = i
        while j + 1 < len(values) and values[j + 1] == values[j] + 1:
            j += 1
        parts.append(str(values[i]) if i == j else f"{values[i]}-{values[j]}")
        i = j + 1
    return ",".join(parts)


# --------------------------------------------------------------------------- tables

def training_range(metadata: dict | None) -> tuple[int, int] | None:
    """The checkpoint's training length range [lo, hi], or None when it is not recorded."""
    value = (metadata or {}).get("train_lengths")
    try:
        lo, hi = int(value[0]), int(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return lo, hi


def nice_bucket_width(max_sum: int, columns: int = 40) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... giving at most `columns` sum buckets."""
    width = 1
    while max_sum / width > columns:
        width = width * 5 // 2 if str(width)[0] == "2" else width * 2
    return width


TABLE_COLUMNS = ["seq_id", "length", "true_sum", "pred_sum", "error", "abs_error", "exact",
                 "n_wrong_digits"]


def with_links(df: pd.DataFrame, link_for) -> pd.DataFrame:
    """The table's display columns plus an `inspect` link column built by `link_for(seq_id)`."""
    out = df[TABLE_COLUMNS].copy()
    out["inspect"] = [link_for(int(i)) for i in out["seq_id"]]
    return out


def csv_bytes(df: pd.DataFrame) -> bytes:
    """The per-sequence table as CSV; list columns become space-separated strings."""
    out = df.copy()
    for col in out.columns:
        if len(out) and isinstance(out[col].iloc[0], (list, tuple, np.ndarray)):
            fmt = (lambda v: f"{v:.3f}") if col in ("digit_conf", "running") else str
            out[col] = [" ".join(fmt(x) for x in v) for v in out[col]]
    return out.to_csv(index=False).encode("utf-8")


# --------------------------------------------------------------------------- sequence links

@dataclass(frozen=True)
class SequenceSpec:
    """Which sequence the inspector shows; round-trips through the URL's query parameters.

    source "eval": row `index` (seq_id) of the test-split evaluation set (lengths, per_length, seed).
    source "gen":  the generator's sequence (length, seed, optional target/sum range/digits).
    """
    source: str = "eval"
    index: int = 0
    lengths: tuple[int, ...] = ()
    per_length: int = 0
    seed: int = 0
    length: int = 0
    target: int | None = None
    sum_min: int | None = None
    sum_max: int | None = None
    digits: tuple[int, ...] | None = None

    def to_query(self) -> dict[str, str]:
        if self.source == "eval":
            q = {"src": "eval", "lengths": format_lengths(self.lengths),
                 "per_length": str(self.per_length), "seed": str(self.seed), "index": str(self.index)}
        else:
            q = {"src": "gen", "length": str(self.length), "seed": str(self.seed)}
            if self.target is not None:
                q["target"] = str(self.target)
            if self.sum_min is not None and self.sum_max is not None:
                q["sum_min"], q["sum_max"] = str(self.sum_min), str(self.sum_max)
            if self.digits is not None:
                q["digits"] = ",".join(str(d) for d in self.digits)
        return q

    @classmethod
    def from_query(cls, params) -> SequenceSpec:
        """Parse query parameters (a mapping of str -> str). ValueError names the bad parameter."""
        def integer(name, default=None):
            raw = params.get(name)
            if raw is None or raw == "":
                if default is None:
                    raise ValueError(f"link is missing the {name!r} parameter")
                return default
            try:
                return int(str(raw))
            except ValueError:
                raise ValueError(f"link parameter {name!r} must be an integer, got {raw!r}") from None

        source = params.get("src", "eval")
        if source == "eval":
            spec = cls("eval", index=integer("index"), lengths=tuple(parse_lengths(
                params.get("lengths", ""))), per_length=integer("per_length"), seed=integer("seed"))
            if spec.per_length < 1 or spec.index < 0:
                raise ValueError("link parameters per_length must be >= 1 and index >= 0")
            return spec
        if source == "gen":
            digits = params.get("digits")
            spec = cls("gen", length=integer("length"), seed=integer("seed"),
                       target=integer("target", None) if params.get("target") else None,
                       sum_min=integer("sum_min") if params.get("sum_min") else None,
                       sum_max=integer("sum_max") if params.get("sum_max") else None,
                       digits=tuple(int(d) for d in digits.split(",") if d) if digits else None)
            if not 1 <= spec.length <= GENERATOR_MAX_LENGTH:
                raise ValueError(f"link parameter 'length' must lie in 1..{GENERATOR_MAX_LENGTH}")
            return spec
        raise ValueError(f"link parameter 'src' must be 'eval' or 'gen', got {source!r}")


def inspector_url(spec: SequenceSpec, checkpoint: str | None = None) -> str:
    """A relative URL that opens the inspector page on `spec` (and the given checkpoint)."""
    query = spec.to_query()
    if checkpoint:
        query["ckpt"] = checkpoint
    return "inspector?" + urlencode(query)


# --------------------------------------------------------------------------- headline figures

def _number(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def lookup(source: dict | None, *paths: str) -> float | None:
    """The first finite number found at one of the dotted `paths` in a nested dict."""
    for path in paths:
        node = source or {}
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        number = _number(node)
        if number is not None:
            return number
    return None


def metadata_rows(metadata: dict) -> pd.DataFrame:
    """Checkpoint metadata flattened to (field, value) rows for a readable table."""
    rows = []

    def walk(prefix, value):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else str(k), v)
        else:
            rows.append((prefix, value if isinstance(value, str) else repr(value)))

    walk("", metadata or {})
    return pd.DataFrame(rows, columns=["field", "value"])


# --------------------------------------------------------------------------- digit row (HTML)

def misread_summary(true_digits, pred_digits, limit: int = 12) -> str:
    """'Misread at steps 37 (7 read as 1), 81 (4 read as 9).' — finds them in a long row."""
    wrong = [(i + 1, int(t), int(p)) for i, (t, p) in enumerate(zip(true_digits, pred_digits))
             if int(t) != int(p)]
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


# --------------------------------------------------------------------------- headline figures

HEADLINES = {  # key -> (label, format, where a stored value may sit: checkpoint metadata paths)
    "protocol_mae": ("MAE, original protocol", "{:.3f}",
                     ("metrics.test_protocol_mae", "metrics.protocol_mae", "metrics.test_mae_10")),
    "protocol_exact": ("Exact-match, original protocol", "{:.2%}",
                       ("metrics.test_protocol_exact", "metrics.protocol_exact_acc",
                        "metrics.test_exact_10")),
    "digit_acc": ("CNN digit accuracy (test)", "{:.2%}",
                  ("metrics.test_digit_acc", "metrics.digit_acc")),
    "mae_100": ("MAE at length 100", "{:.3f}", ("metrics.test_mae_100",)),
    "exact_100": ("Exact-match at length 100", "{:.2%}", ("metrics.test_exact_100",)),
    "mae_1000": ("MAE at length 1000", "{:.2f}", ("metrics.test_mae_1000",)),
    "exact_1000": ("Exact-match at length 1000", "{:.2%}", ("metrics.test_exact_1000",)),
}


def stored_headlines(metadata: dict | None) -> dict[str, float]:
    """Headline figures recorded in the checkpoint metadata (absent keys are left out)."""
    found = {key: lookup(metadata, *paths) for key, (_, _, paths) in HEADLINES.items()}
    return {key: value for key, value in found.items() if value is not None}


def benchmark_headlines(report: dict | None, checkpoint, repo_root, created: str | None) -> dict:
    """Headline figures from reports/benchmark.json for this checkpoint file, when the benchmark
    ran after the checkpoint was made (an older report describes an older model)."""
    from pathlib import Path

    if not report or not created or str(report.get("created", "")) < str(created):
        return {}
    target = Path(checkpoint).resolve()
    for entry in report.get("heads") or []:
        path = Path(entry.get("checkpoint") or "")
        if (path if path.is_absolute() else Path(repo_root) / path).resolve() != target:
            continue
        rows = {int(r["length"]): r for r in entry.get("by_length") or [] if "length" in r}
        found = {
            "protocol_mae": lookup(entry, "original.mae"),
            "protocol_exact": lookup(entry, "original.exact_acc"),
            "digit_acc": lookup(entry, "digit_acc"),
            "mae_100": lookup(rows.get(100), "mae"), "exact_100": lookup(rows.get(100), "exact_acc"),
            "mae_1000": lookup(rows.get(1000), "mae"), "exact_1000": lookup(rows.get(1000), "exact_acc"),
        }
        return {key: value for key, value in found.items() if value is not None}
    return {}

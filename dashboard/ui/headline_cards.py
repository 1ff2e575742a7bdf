"""The Overview's headline figures: read from reports/benchmark.json for a checkpoint it measured, or
measured on demand through core.evaluate.headline_figures. Plain functions, no Streamlit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from core.evaluate import ORIGINAL_MAE

HEADLINES = {  # core.evaluate.headline_figures' key -> (label, format)
    "protocol_mae": ("MAE, original protocol", "{:.3f}"),
    "protocol_exact": ("Exact-match, original protocol", "{:.2%}"),
    "digit_acc": ("CNN digit accuracy (test)", "{:.2%}"),
    "mae_100": ("MAE at length 100", "{:.3f}"),
    "exact_100": ("Exact-match at length 100", "{:.2%}"),
    "mae_1000": ("MAE at length 1000", "{:.2f}"),
    "exact_1000": ("Exact-match at length 1000", "{:.2%}"),
}
FROM_BENCHMARK = "from reports/benchmark.json (python -m scripts.benchmark)"
MEASURED = "measured here on the test split"
MISSING = "not measured yet"


def lookup(source: dict | None, *paths: str) -> float | None:
    """The first finite number found at one of the dotted `paths` in a nested dict."""
    for path in paths:
        node = source or {}
        for key in path.split("."):
            node = node.get(key) if isinstance(node, dict) else None
        try:
            number = float(node)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            return number
    return None


def benchmark_headlines(report: dict | None, checkpoint, repo_root, created: str | None) -> dict[str, float]:
    """Headline figures from reports/benchmark.json for this checkpoint file, when the benchmark
    ran after the checkpoint was made (an older report describes an older model)."""
    if not report or not created or str(report.get("created", "")) < str(created):
        return {}
    target = Path(checkpoint).resolve()
    ensemble = (report.get("ensemble") or {}).get("result")  # issue 19's ensemble, benchmarked beside the heads
    for entry in (report.get("heads") or []) + ([ensemble] if ensemble else []):
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


@dataclass(frozen=True)
class Headline:
    key: str
    label: str
    value: float | None
    text: str  # the formatted value, or "—"
    source: str  # where the value came from (the metric's help)
    delta: str | None  # protocol MAE only: the difference to the original project


def headlines(from_benchmark: dict, measured: dict) -> list[Headline]:
    """Every headline figure, in display order; the benchmark's value wins over a measurement here
    (it used the full protocol on the recorded machine)."""
    out = []
    for key, (label, fmt) in HEADLINES.items():
        value = from_benchmark.get(key, measured.get(key))
        source = FROM_BENCHMARK if key in from_benchmark else MEASURED if value is not None else MISSING
        delta = (f"{value - ORIGINAL_MAE:+.3f} vs original {ORIGINAL_MAE}"
                 if key == "protocol_mae" and value is not None else None)
        out.append(Headline(key, label, value, "—" if value is None else fmt.format(value), source, delta))
    return out


def missing(from_benchmark: dict) -> list[str]:
    """The headline keys the benchmark report does not give for this checkpoint."""
    return [key for key in HEADLINES if key not in from_benchmark]


def verdict(protocol_mae: float) -> str:
    """'12.3× smaller' / '1.5× larger': this checkpoint's protocol MAE against the original project's."""
    ratio = ORIGINAL_MAE / max(protocol_mae, 1e-9)
    return f"{ratio:.1f}× smaller" if ratio >= 1 else f"{1 / ratio:.1f}× larger"


def with_and_without(as_given: dict, decided: dict, n_decisions: int) -> pd.DataFrame:
    """The headline figures side by side: with every label as given, and with a person's `n_decisions`
    label decisions applied (relabelled truth, excluded images left out)."""
    rows = []
    for key, (label, fmt) in HEADLINES.items():
        a, b = as_given.get(key), decided.get(key)
        rows.append({"figure": label, "labels as given": "—" if a is None else fmt.format(a),
                     f"with your {n_decisions} decisions": "—" if b is None else fmt.format(b)})
    return pd.DataFrame(rows)

"""Tables the views show, built from core.evaluate's per-sequence DataFrames and checkpoint metadata.
Plain functions of their arguments, no Streamlit (tests/test_components.py)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from core import evaluate

TABLE_COLUMNS = ["seq_id", "length", "true_sum", "pred_sum", "error", "abs_error", "exact", "n_wrong_digits"]


def training_range(metadata: dict | None) -> tuple[int, int] | None:
    """The checkpoint's training length range [lo, hi], or None when it is not recorded."""
    value = (metadata or {}).get("train_lengths")
    try:
        lo, hi = int(value[0]), int(value[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return lo, hi


def cnn_text(metadata: dict | None) -> str:
    """What reads the digits: "one CNN", or "an ensemble of 3 CNNs" whose calibrated probabilities are averaged."""
    members = ((metadata or {}).get("model_config") or {}).get("members") or 1
    return "one CNN" if members == 1 else f"an ensemble of {members} CNNs (their calibrated probabilities averaged)"


def nice_bucket_width(max_sum: int, columns: int = 40) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... giving at most `columns` sum buckets."""
    width = 1
    while max_sum / width > columns:
        width = width * 5 // 2 if str(width)[0] == "2" else width * 2
    return width


def with_links(df: pd.DataFrame, link_for) -> pd.DataFrame:
    """The table's display columns plus an `inspect` link column built by `link_for(seq_id)`."""
    out = df[TABLE_COLUMNS].copy()
    out["inspect"] = [link_for(int(i)) for i in out["seq_id"]]
    return out


def csv_bytes(table) -> bytes:
    """An evaluation table (core.evaluate.EvalTable) as CSV, one row per sequence; each per-digit column
    but the image indices becomes one cell of space-separated values. Built only when downloaded."""
    out = table.rows.copy()
    cuts = table.offsets[1:-1]
    for name, values in table.digits.items():
        if name != "indices":
            text = np.char.mod("%.3f" if values.dtype.kind == "f" else "%d", values)
            out[name] = [" ".join(part) for part in np.split(text, cuts)] if len(out) else []
    return out.to_csv(index=False).encode("utf-8")


def plain_csv(df: pd.DataFrame) -> bytes:
    """A table of plain columns as CSV (UTF-8, no index)."""
    return df.to_csv(index=False).encode("utf-8")


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


def training_facts(metadata: dict | None) -> dict[str, object]:
    """The few metadata fields the Overview shows at a glance (None when not recorded)."""
    meta = metadata or {}
    cfg, train = meta.get("train_config") or {}, training_range(meta)
    return {"head": meta.get("head"), "preset": meta.get("preset"),
            "training lengths": f"{train[0]}–{train[1]}" if train else None,
            "epochs (cnn/head/joint)": "/".join(str(cfg.get(k, "?")) for k in ("epochs_cnn", "epochs_head", "epochs_joint")),
            "seed": cfg.get("seed"), "data checksum": meta.get("data_checksum"), "code version": meta.get("code_version")}


def length_table(df: pd.DataFrame, train: tuple[int, int] | None) -> pd.DataFrame:
    """core.evaluate.by_length plus whether each length lies in the training range."""
    stats = evaluate.by_length(df)
    stats["in training range"] = [bool(train and train[0] <= v <= train[1]) for v in stats["length"]]
    return stats[["length", "n", "mae", "rmse", "exact_acc", "digit_acc", "in training range"]]


def most_frequent_confusion(cm: np.ndarray) -> tuple[int, int]:
    """(true, read) of the most frequent misreading in a 10x10 confusion matrix, or (d, d) for the most
    frequent digit when nothing was misread."""
    cm = np.asarray(cm)
    off = cm - np.diag(np.diag(cm) + 1)
    if off.max() > 0:
        t, p = divmod(int(off.argmax()), 10)
        return t, p
    d = int(np.diag(cm).argmax())
    return d, d


def step_table(row, members: np.ndarray | None = None) -> pd.DataFrame:
    """One evaluated sequence step by step: what the CNN read, what the head added, the running gap; for an
    ensemble, `members` (L, M) adds what each CNN member read ("7 7 1") and whether they disagree."""
    true_digits, pred_digits = np.asarray(row["true_digits"]), np.asarray(row["pred_digits"])
    running = np.asarray(row["running"], dtype=float)
    table = pd.DataFrame({
        "step": np.arange(1, len(true_digits) + 1), "true": true_digits, "read": pred_digits,
        "conf": np.asarray(row["digit_conf"], dtype=float),
        "added": np.diff(np.concatenate([[0.0], running])), "running": running,
        "gap": running - np.cumsum(true_digits)})
    if members is not None:
        table.insert(4, "members", [" ".join(str(int(d)) for d in readings) for readings in members])
        table.insert(5, "disagree", [len(set(readings.tolist())) > 1 for readings in members])
    return table


def compare_by_length(base: pd.DataFrame, new: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """Per length: MAE and exact-match of two models on the same evaluation set; Δ MAE = b - a."""
    left, right = evaluate.by_length(base), evaluate.by_length(new)
    out = left[["length", "n"]].copy()
    for col, label in (("mae", "MAE"), ("exact_acc", "exact")):
        out[f"{label} · {a}"], out[f"{label} · {b}"] = left[col].values, right[col].values
    out["Δ MAE"] = right["mae"].values - left["mae"].values
    return out


def disagreements(base: pd.DataFrame, new: pd.DataFrame, a: str, b: str) -> pd.DataFrame:
    """The sequences whose rounded sums differ between two models, and which one (if any) is right."""
    keys = ["seq_id", "length", "true_sum"]
    both = base[keys + ["pred_rounded"]].merge(new[keys + ["pred_rounded"]], on=keys, suffixes=(" A", " B"))
    both = both[both["pred_rounded A"] != both["pred_rounded B"]].copy()
    truth = both["true_sum"]
    both["right"] = np.select([both["pred_rounded A"] == truth, both["pred_rounded B"] == truth], [a, b], "neither")
    return both.rename(columns={"pred_rounded A": f"sum · {a}", "pred_rounded B": f"sum · {b}"})

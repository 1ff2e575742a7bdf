"""The metrics schema, in one place: what a training run appends to RUN_DIR/metrics.jsonl, and how
runs and the UI read it back. One JSON object per line with RECORD_KEYS (built by make_record, so the
writer and the readers cannot drift apart); the final 'done' line adds 'checkpoint'."""

from __future__ import annotations

import json
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
RECORD_KEYS = ("time", "step", "phase", "epoch", "epochs", "loss", "val_mae", "val_digit_acc", "elapsed", "eta",
               "progress")
PHASES = ("cnn", "head", "joint", "done")  # "done": the final line, the selected model's metrics


def make_record(extra: dict | None = None, **values) -> dict:
    """A record with exactly RECORD_KEYS (in order), plus `extra` keys such as 'checkpoint'."""
    missing, unknown = set(RECORD_KEYS) - set(values), set(values) - set(RECORD_KEYS)
    if missing or unknown:
        raise ValueError(f"a metrics record needs exactly {RECORD_KEYS}: missing {sorted(missing)}, "
                         f"unknown {sorted(unknown)}")
    if values["phase"] not in PHASES:
        raise ValueError(f"record phase must be one of {PHASES}, got {values['phase']!r}")
    return {**{k: values[k] for k in RECORD_KEYS}, **(extra or {})}


def append_record(run_dir: Path, record: dict) -> None:
    """Append one line (a crash mid-write leaves a partial last line, which read_metrics skips)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / METRICS_FILE, "a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()


def read_metrics(path: Path) -> list[dict]:
    """The records of a metrics.jsonl file (or of RUN_DIR/metrics.jsonl when given a folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # the trainer may be mid-write on the last line
        if isinstance(item, dict):
            out.append(item)
    return out


def summarize(lines: list[dict]) -> tuple[float, float | None, dict]:
    """(progress 0..1, eta seconds, best metrics) from records. Best = the line with the lowest
    val_mae; the final 'done' line (the selected model) wins when present."""
    if not lines:
        return 0.0, None, {}
    last = lines[-1]
    scored = [x for x in lines if isinstance(x.get("val_mae"), (int, float))]
    best = min(scored, key=lambda x: x["val_mae"]) if scored else {}
    if last.get("phase") == "done" and last.get("val_mae") is not None:
        best = last
    metrics = {k: best[k] for k in ("val_mae", "val_digit_acc", "phase", "epoch") if k in best}
    done = last.get("phase") == "done"
    progress = 1.0 if done else float(last.get("progress") or 0.0)
    return min(max(progress, 0.0), 1.0), (None if done else last.get("eta")), metrics

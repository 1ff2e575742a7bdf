"""A person's decisions about labels: keep an image's label, relabel it, or exclude it as ambiguous.

One JSON-lines log per split in core.paths.decisions_dir() ($DIGITSUM_DECISIONS_DIR, else decisions/,
gitignored): decisions/<split>.jsonl, one line per decision, {"index", "action", "label", "at"}. The
log only grows, so a decision is one appended line under an exclusive lock (fcntl.flock), flushed and
fsynced: two writers never interleave or lose a line, and readers, under a shared lock, never see half
of one. The latest line for an image is its standing decision; "clear" withdraws it.

Decisions change nothing in MNIST's files: apply_decisions returns a decided copy of a split's labels
and the images to leave out, which core.evaluate uses when asked (decisions=True).
"""

from __future__ import annotations

import fcntl
import json
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from core.data.mnist import TEST_HISTOGRAM
from core.paths import decisions_dir

DECISION_ACTIONS = ("keep", "relabel", "exclude", "clear")
DECISION_SPLITS = ("test", "mine")
COLUMNS = ["index", "action", "label", "at"]
SPLIT_SIZES = {"test": sum(TEST_HISTOGRAM)}  # "mine" grows with every save: no fixed bound


def _log_path(split: str) -> Path:
    if split not in DECISION_SPLITS:
        raise ValueError(f"unknown split {split!r} for label decisions: expected one of {', '.join(DECISION_SPLITS)}")
    return decisions_dir() / f"{split}.jsonl"


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def record_decision(split: str, index: int, action: str, label: int | None = None) -> dict:
    """Append one decision about image `index` of `split` ("test" or "mine") to its log; returns the
    line written. action: "keep", "relabel" (with `label` 0-9), "exclude" (used nowhere) or "clear"."""
    path = _log_path(split)
    size = SPLIT_SIZES.get(split)
    if not _is_int(index) or index < 0 or (size is not None and index >= size):
        bound = f"0..{size - 1}" if size is not None else "a non-negative integer"
        raise ValueError(f"index must be an image index of split {split!r} ({bound}), got {index!r}")
    if action not in DECISION_ACTIONS:
        raise ValueError(f"action must be one of {', '.join(DECISION_ACTIONS)}, got {action!r}")
    if action == "relabel" and not (_is_int(label) and 0 <= label <= 9):
        raise ValueError(f"a relabel needs label, a digit 0-9, got {label!r}")
    if action != "relabel" and label is not None:
        raise ValueError(f"only a relabel takes a label; {action!r} got label={label!r}")
    entry = {"index": int(index), "action": action, "label": None if label is None else int(label),
             "at": datetime.now(timezone.utc).isoformat(timespec="microseconds")}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab+") as log:
        fcntl.flock(log, fcntl.LOCK_EX)  # released when the file closes
        # A crash mid-append leaves a line without its newline: end it, or the next line would join it.
        if log.seek(0, os.SEEK_END) > 0:
            log.seek(-1, os.SEEK_END)
            if log.read(1) != b"\n":
                log.write(b"\n")
        log.write((json.dumps(entry) + "\n").encode())  # O_APPEND: always at the end
        log.flush()
        os.fsync(log.fileno())
    return entry


def _read_log(path: Path) -> list[dict]:
    """Every well-formed line of a log, in order; a garbled line is skipped with a warning."""
    if not path.is_file():
        return []
    with open(path, "rb") as log:
        fcntl.flock(log, fcntl.LOCK_SH)  # never half of a line being appended
        raw = log.read()
    entries = []
    for number, line in enumerate(raw.splitlines(), 1):
        try:
            entry = json.loads(line)
            ok = (isinstance(entry, dict) and _is_int(entry.get("index")) and entry["index"] >= 0
                  and entry.get("action") in DECISION_ACTIONS and isinstance(entry.get("at"), str)
                  and (entry.get("label") is None or _is_int(entry["label"]) and 0 <= entry["label"] <= 9)
                  and (entry["action"] == "relabel") == (entry.get("label") is not None))
        except ValueError:  # JSONDecodeError and bad UTF-8 alike
            ok = False
        if not ok:
            if line.strip():
                warnings.warn(f"skipped a garbled line ({number}) in {path}", stacklevel=3)
            continue
        entries.append(entry)
    return entries


def load_decisions(split: str) -> pd.DataFrame:
    """The standing decision per image of `split`, one row each, by index: columns index, action
    ("keep", "relabel" or "exclude"), label (the decided digit of a relabel, else <NA>) and at (UTC).
    The latest line wins; a cleared image has no row."""
    standing: dict[int, dict] = {}
    for entry in _read_log(_log_path(split)):  # file order is lock order: later lines are later decisions
        standing.pop(entry["index"], None)
        if entry["action"] != "clear":
            standing[entry["index"]] = entry
    rows = [standing[i] for i in sorted(standing)]
    return pd.DataFrame({"index": pd.array([r["index"] for r in rows], "int64"),
                         "action": pd.array([r["action"] for r in rows], object),
                         "label": pd.array([r.get("label") for r in rows], "Int64"),
                         "at": pd.to_datetime([r["at"] for r in rows], utc=True, format="ISO8601")},
                        columns=COLUMNS)


def apply_decisions(split: str, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(decided labels, excluded indices) of `split`, given its labels (core.data.split_arrays; taken,
    not loaded here, as core.collection reads "mine" through this module): a copy of the labels with
    every relabel applied, and the sorted int64 indices of the excluded images. `labels` is never
    modified."""
    decided = np.array(labels, copy=True)
    table = load_decisions(split)
    beyond = table["index"] >= len(decided)
    if beyond.any():  # "mine" can shrink when a save is deleted: its old decisions point nowhere
        warnings.warn(f"ignored {int(beyond.sum())} decision(s) about images beyond the {len(decided)} of split "
                      f"{split!r}", stacklevel=2)
        table = table[~beyond]
    relabel = table[table["action"] == "relabel"]
    decided[relabel["index"].to_numpy(np.int64)] = relabel["label"].to_numpy(np.int64)
    excluded = table.loc[table["action"] == "exclude", "index"].to_numpy(np.int64)
    return decided, excluded

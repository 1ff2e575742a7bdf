"""A person's label decisions as the dashboard reads them: the standing decision per image, re-read only
when its log changes (the cache key is the log file's version, so a new decision shows at once)."""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core.data import load_decisions
from core.paths import decisions_dir

LogVersion = tuple[int, int] | None


def log_version(split: str) -> LogVersion:
    """(mtime in ns, size) of the split's decision log, or None when nothing was decided yet."""
    try:
        info = os.stat(decisions_dir() / f"{split}.jsonl")
    except FileNotFoundError:
        return None
    return info.st_mtime_ns, info.st_size


@st.cache_data(show_spinner=False, max_entries=8)
def _decisions(split: str, folder: str, version: LogVersion) -> pd.DataFrame:
    return load_decisions(split)


def decisions(split: str = "test") -> pd.DataFrame:
    """The standing decision per image of `split`: index, action, label, at (core.data.load_decisions)."""
    return _decisions(split, str(decisions_dir()), log_version(split))


def decided(split: str = "test") -> dict[int, tuple[str, int | None]]:
    """{image index: (action, decided label or None)} for every standing decision of `split`."""
    table = decisions(split)
    return {int(i): (a, None if pd.isna(lab) else int(lab))
            for i, a, lab in zip(table["index"], table["action"], table["label"])}

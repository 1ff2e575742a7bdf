"""What the Slices view and the checkpoint comparison compute once and share between reruns and sessions:
st.cache_data keyed on each checkpoint's file version (file_key) and the evaluation-set spec."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import streamlit as st

from core.evaluate import compare_slices, digit_disagreements, find_error_slices
from dashboard.data import evaluation
from dashboard.data.checkpoints import FileKey, file_key, predictor
from dashboard.data.label_decisions import log_version

# --------------------------------------------------------------------------- slices

@st.cache_data(show_spinner="Finding the slices where the model fails…", max_entries=24)
def _error_slices(key: FileKey, lengths: tuple[int, ...], per_length: int, seed: int, aside: int,
                  tolerance: int, min_size: int | None, suspect_k: int, decided) -> pd.DataFrame:
    path = Path(key[0])
    table = evaluation.evaluation_table(path, lengths, per_length, seed, aside, decided is not False)
    suspects = evaluation.suspects(path)["index"].to_numpy()[:suspect_k]
    return find_error_slices(table, tolerance=tolerance, min_size=min_size, suspects=suspects)


def error_slices(s, tolerance: int = 0, min_size: int | None = None) -> pd.DataFrame:
    """core.evaluate.slices.find_error_slices on the sidebar's evaluation set (settings `s`), worst first, with the
    sidebar's k most suspect images as the suspects: slice, size, error_rate, error_coverage, seq_ids."""
    decided = log_version("test") if s.decided else False  # a new decision rebuilds the decided set's slices
    return _error_slices(file_key(s.checkpoint), tuple(s.lengths), int(s.per_length), int(s.seed), int(s.aside),
                         int(tolerance), None if min_size is None else int(min_size), int(s.suspect_k), decided)


# --------------------------------------------------------------------------- two checkpoints

@st.cache_data(show_spinner="Comparing the slices of both checkpoints…", max_entries=12)
def _compared_slices(key_a: FileKey, key_b: FileKey, lengths: tuple[int, ...], per_length: int,
                     seed: int) -> pd.DataFrame:
    table_a = evaluation.evaluation_table(Path(key_a[0]), lengths, per_length, seed)
    table_b = evaluation.evaluation_table(Path(key_b[0]), lengths, per_length, seed)
    return compare_slices(table_a, table_b)


def compared_slices(path_a: Path, path_b: Path, lengths, per_length: int, seed: int) -> pd.DataFrame:
    """core.evaluate.slices.compare_slices of two checkpoints on the same evaluation set, largest |difference| first."""
    return _compared_slices(file_key(path_a), file_key(path_b), tuple(lengths), int(per_length), int(seed))


@st.cache_data(show_spinner="Finding the digits one checkpoint reads right and the other wrong…", max_entries=12)
def _disagreements(key_a: FileKey, key_b: FileKey) -> pd.DataFrame:
    return digit_disagreements(predictor(Path(key_a[0])), predictor(Path(key_b[0])), split="test")


def disagreements(path_a: Path, path_b: Path) -> pd.DataFrame:
    """core.evaluate.slices.digit_disagreements on the test images: index, label, pred_a, pred_b, conf_a, conf_b."""
    return _disagreements(file_key(path_a), file_key(path_b))

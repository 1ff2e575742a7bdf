"""What the Slices and Digit map views and the checkpoint comparison compute once and share between reruns
and sessions, in dashboard.cache's style: st.cache_data keyed on each checkpoint's file version (file_key)
and the evaluation-set spec, so a view redraws from memory once it has been computed.

The digit map is different: its first computation takes up to a minute, so it never runs in a Streamlit
script thread. `start_digit_map` starts `python -m scripts.digit_map` (which fills core's disk cache) in a
subprocess, and the view polls `digit_map` until the file is there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from core.evaluate import digit_map as compute_digit_map
from core.evaluate.embeddings import MAP_NAME  # the name core caches the map's coordinates under
from core.paths import REPO_ROOT
from core.predict import cache as disk_cache
from core.evaluate import compare_slices, digit_disagreements, find_error_slices
from dashboard import cache
from dashboard.cache import FileKey, file_key

# --------------------------------------------------------------------------- slices

@st.cache_data(show_spinner="Finding the slices where the model fails…", max_entries=24)
def _error_slices(key: FileKey, lengths: tuple[int, ...], per_length: int, seed: int, aside: int,
                  tolerance: int, min_size: int | None, suspect_k: int) -> pd.DataFrame:
    path = Path(key[0])
    table = cache.evaluation(path, lengths, per_length, seed, aside)
    suspects = cache.suspects(path)["index"].to_numpy()[:suspect_k]
    return find_error_slices(table, tolerance=tolerance, min_size=min_size, suspects=suspects)


def error_slices(s, tolerance: int = 0, min_size: int | None = None) -> pd.DataFrame:
    """core.evaluate.slices.find_error_slices on the sidebar's evaluation set (settings `s`), worst first, with the
    sidebar's k most suspect images as the suspects: slice, size, error_rate, error_coverage, seq_ids."""
    return _error_slices(file_key(s.checkpoint), tuple(s.lengths), int(s.per_length), int(s.seed), int(s.aside),
                         int(tolerance), None if min_size is None else int(min_size), int(s.suspect_k))


# --------------------------------------------------------------------------- two checkpoints

@st.cache_data(show_spinner="Comparing the slices of both checkpoints…", max_entries=12)
def _compared_slices(key_a: FileKey, key_b: FileKey, lengths: tuple[int, ...], per_length: int,
                     seed: int) -> pd.DataFrame:
    table_a = cache.evaluation(Path(key_a[0]), lengths, per_length, seed)
    table_b = cache.evaluation(Path(key_b[0]), lengths, per_length, seed)
    return compare_slices(table_a, table_b)


def compared_slices(path_a: Path, path_b: Path, lengths, per_length: int, seed: int) -> pd.DataFrame:
    """core.evaluate.slices.compare_slices of two checkpoints on the same evaluation set, largest |difference| first."""
    return _compared_slices(file_key(path_a), file_key(path_b), tuple(lengths), int(per_length), int(seed))


@st.cache_data(show_spinner="Finding the digits one checkpoint reads right and the other wrong…", max_entries=12)
def _disagreements(key_a: FileKey, key_b: FileKey) -> pd.DataFrame:
    return digit_disagreements(cache.predictor(Path(key_a[0])), cache.predictor(Path(key_b[0])), split="test")


def disagreements(path_a: Path, path_b: Path) -> pd.DataFrame:
    """core.evaluate.slices.digit_disagreements on the test images: index, label, pred_a, pred_b, conf_a, conf_b."""
    return _disagreements(file_key(path_a), file_key(path_b))


# --------------------------------------------------------------------------- the digit map

@st.cache_data(show_spinner=False, max_entries=6)
def _digit_map(key: FileKey) -> pd.DataFrame:
    return compute_digit_map(cache.predictor(Path(key[0])), split="test")  # from core's disk cache: fast


def digit_map(path: Path) -> pd.DataFrame | None:
    """core.evaluate.embeddings.digit_map of the test images once its coordinates are on disk (then it takes
    milliseconds), else None: the map is never computed here, in a script thread. The disk is checked on
    every call (a few ms), so an evicted entry or a deleted cache folder never leads to a computation."""
    checkpoint_hash = cache.predictor(path).checkpoint_hash
    shape = (len(cache.test_split()[1]), 2)
    if checkpoint_hash is None or disk_cache.load_array(checkpoint_hash, MAP_NAME, "test", shape) is None:
        return None
    return _digit_map(file_key(path))


class _Jobs:
    """The map subprocesses this server started, one per checkpoint version (a lock: sessions share it)."""
    lock = threading.Lock()
    running: dict[FileKey, tuple[subprocess.Popen, Path]] = {}


def start_digit_map(path: Path, again: bool = False) -> None:
    """Start `python -m scripts.digit_map --checkpoint PATH` once per checkpoint version (`again`: after a
    failure), so reruns never start a second one."""
    key = file_key(path)
    with _Jobs.lock:
        found = _Jobs.running.get(key)
        if found is not None and (found[0].poll() is None or not again):
            return
        fd, log = tempfile.mkstemp(prefix="digitsum-digit-map-", suffix=".log")
        # In the server's process group: stopping the server stops it too (it only fills a cache).
        with os.fdopen(fd, "wb") as out:  # the child keeps its own handle
            job = subprocess.Popen([sys.executable, "-m", "scripts.digit_map", "--checkpoint", key[0]], cwd=REPO_ROOT,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _Jobs.running[key] = (job, Path(log))


def digit_map_job(path: Path) -> tuple[str, str]:
    """("ready" | "running" | "failed", a detail line) of the digit map for this checkpoint version."""
    if digit_map(path) is not None:
        return "ready", ""
    with _Jobs.lock:
        found = _Jobs.running.get(file_key(path))
    if found is None:
        return "failed", "it was not started."
    job, log = found
    if job.poll() is None:
        return "running", ""
    lines = log.read_text(errors="replace").strip().splitlines() if log.exists() else []
    return "failed", lines[-1] if lines else f"the subprocess exited with status {job.returncode}."

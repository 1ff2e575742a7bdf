"""The digit map, computed in the background: its first computation takes up to a minute, so it never
runs in a Streamlit script thread. `start_digit_map` starts `python -m scripts.digit_map` (which fills
core's disk cache) in a subprocess, with its log under the cache folder, and the view polls
`digit_map_job` until the map is on disk. Finished jobs are reaped on every poll (no <defunct> child
stays under the server) and their logs deleted once the map is there.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import streamlit as st

from core.evaluate import digit_map as compute_digit_map
from core.evaluate.embeddings import MAP_NAME  # the name core caches the map's coordinates under
from core.paths import REPO_ROOT, cache_dir
from core.predict import cache as disk_cache
from dashboard.data.checkpoints import FileKey, file_key, predictor
from dashboard.data.evaluation import test_split


@st.cache_data(show_spinner=False, max_entries=6)
def _digit_map(key: FileKey) -> pd.DataFrame:
    return compute_digit_map(predictor(Path(key[0])), split="test")  # from core's disk cache: fast


def digit_map(path: Path) -> pd.DataFrame | None:
    """core.evaluate.digit_map of the test images once its coordinates are on disk (then it takes
    milliseconds), else None: the map is never computed here, in a script thread. The disk is checked on
    every call (a few ms), so an evicted entry or a deleted cache folder never leads to a computation."""
    checkpoint_hash = predictor(path).checkpoint_hash
    shape = (len(test_split()[1]), 2)
    if checkpoint_hash is None or disk_cache.load_array(checkpoint_hash, MAP_NAME, "test", shape) is None:
        return None
    return _digit_map(file_key(path))


class _Jobs:
    """The map subprocesses this server started, one per checkpoint version (a lock: sessions share it).
    A finished job stays listed (reaped, without its process) so a failure can be reported."""
    lock = threading.Lock()
    running: dict[FileKey, tuple[subprocess.Popen, Path]] = {}


def log_path(key: FileKey) -> Path:
    """Where the job for this checkpoint version writes its output: the cache folder, not /tmp."""
    folder = cache_dir() / "jobs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"digit-map-{Path(key[0]).stem}-{key[1]}-{key[2]}.log"


def start_digit_map(path: Path, again: bool = False) -> None:
    """Start `python -m scripts.digit_map --checkpoint PATH` once per checkpoint version (`again`: after a
    failure), so reruns never start a second one."""
    key = file_key(path)
    with _Jobs.lock:
        found = _Jobs.running.get(key)
        if found is not None and (found[0].poll() is None or not again):
            return
        log = log_path(key)
        # In the server's process group: stopping the server stops it too (it only fills a cache).
        with open(log, "wb") as out:  # the child keeps its own handle
            job = subprocess.Popen([sys.executable, "-m", "scripts.digit_map", "--checkpoint", key[0]], cwd=REPO_ROOT,
                                   stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _Jobs.running[key] = (job, log)


def reap_jobs() -> int:
    """Wait for every finished job (poll() collects its exit status, so no zombie is left) and forget the
    ones that succeeded, deleting their logs. Returns how many jobs still run."""
    with _Jobs.lock:
        for key, (job, log) in list(_Jobs.running.items()):
            if job.poll() == 0:
                log.unlink(missing_ok=True)
                del _Jobs.running[key]
        return sum(job.poll() is None for job, _ in _Jobs.running.values())


def digit_map_job(path: Path) -> tuple[str, str]:
    """("ready" | "running" | "failed", a detail line) of the digit map for this checkpoint version."""
    reap_jobs()
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

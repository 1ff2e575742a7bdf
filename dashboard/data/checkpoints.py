"""The checkpoints the dashboard can show, and their predictors, loaded once and shared by sessions.

- Checkpoints: the active default (core.promotion) first, wherever it lives, then every *.pt in the
  checkpoint folder ($DIGITSUM_CHECKPOINT_DIR, default checkpoints/), then the finished training runs
  from core.runs.
- Predictors: st.cache_resource keyed on the checkpoint's file version (file_key: path, mtime in ns,
  inode, size), so a checkpoint replaced at the same path — even within the same mtime second — loads
  anew. One instance per version, shared by every session and never mutated.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from core import load_predictor, paths, promotion, runs
from core.paths import REPO_ROOT

FileKey = tuple[str, int, int, int]


def file_key(path) -> FileKey:
    """(path, st_mtime_ns, st_ino, st_size): changes whenever the file at `path` is rewritten or
    replaced (an atomic replace gets a new inode even when the mtime is copied over)."""
    st_ = os.stat(path)
    return str(Path(path).resolve()), st_.st_mtime_ns, st_.st_ino, st_.st_size


def checkpoint_dir() -> Path:
    return paths.checkpoint_dir()


def display_name(path: Path) -> str:
    """Path relative to the repo when inside it (short, and stable in links), else its folder and
    file name (a run's folder or a test's temp folder, say)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return f"{path.parent.name}/{path.name}"


def list_checkpoints() -> dict[str, Path]:
    """{display name: path}: the active default first (so a new session's selector starts on it), then
    the checkpoint folder's *.pt (default.pt first), then finished runs.

    The folders' listing is cached for a few seconds (the sidebar and every view ask on each rerun); the
    folders are part of the key so tests pointing the env vars elsewhere see their own files at once.
    The active default is read on every call: a promotion shows at once.
    """
    found, problem = _list_checkpoints(str(checkpoint_dir()), str(paths.runs_dir()))
    if problem:  # a broken run registry (say, a corrupt database) must not take the dashboard down
        st.sidebar.warning(f"Training runs unavailable: {problem}")
    active = promotion.active_default().path
    if not active.is_file():  # no shipped default.pt in this folder: nothing to put first
        return found
    return {display_name(active): active.resolve(), **found}


@st.cache_data(ttl=3, show_spinner=False)
def _list_checkpoints(directory: str, runs_dir: str) -> tuple[dict[str, Path], str | None]:
    found = sorted(Path(directory).glob("*.pt"), key=lambda p: (p.name != "default.pt", p.name))
    problem = None
    try:
        found += [Path(item["path"]) for item in runs.list_checkpoints()]
    except Exception as exc:  # noqa: BLE001 - reported in the sidebar instead
        problem = str(exc)
    return {display_name(p): p.resolve() for p in found}, problem


def resolve_checkpoint(name: str | None) -> Path | None:
    """A checkpoint named in a URL or the selector -> an existing path among the known ones."""
    return list_checkpoints().get(name) if name else None


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=6)
def _predictor(key: FileKey):
    return load_predictor(key[0], device="auto")


def predictor(path: Path):
    """The predictor for `path`, reloaded only when the file changes (see file_key)."""
    return _predictor(file_key(path))


@st.cache_resource(show_spinner=False, max_entries=6)
def _uncalibrated(key: FileKey):
    return _predictor(key).uncalibrated()


def uncalibrated(path: Path):
    """The predictor's uncalibrated twin (T = 1, no interval margin)."""
    return _uncalibrated(file_key(path))


@st.cache_data(ttl=300, show_spinner=False)
def gpus() -> list[str]:
    """The GPUs training runs may use (nvidia-smi's names), looked up every few minutes, not per rerun."""
    return runs.detect_gpus()

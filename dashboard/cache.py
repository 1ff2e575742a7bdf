"""Session state and cached loaders shared by every page.

- The sidebar (dashboard/app.py) writes the shared controls into st.session_state under the keys
  below; pages read them through `settings()`.
- Predictors load through st.cache_resource keyed on (path, mtime): one instance per checkpoint
  version, shared by every session and never mutated. Evaluation tables go through st.cache_data,
  keyed on the checkpoint version and the evaluation-set spec.
- Checkpoints: every *.pt in the checkpoint directory (env DIGITSUM_CHECKPOINT_DIR, default
  checkpoints/), plus finished training runs from core.runs.list_checkpoints() when that exists.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

import core.evaluate as evaluate
from core.data import load_mnist, split_arrays
from core.predict import load_predictor
from core.sequences import generate_sequences, parse_lengths
from dashboard.components import SequenceSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCHMARK_JSON = REPO_ROOT / "reports" / "benchmark.json"

# Session-state keys of the sidebar's shared controls, and their defaults.
CKPT, LENGTHS, PER_LENGTH, SEED = "ckpt", "eval_lengths", "eval_per_length", "eval_seed"
DEFAULTS = {LENGTHS: "1-10,20,50,100", PER_LENGTH: 100, SEED: 0}
# Bounds that keep one evaluation within tens of seconds on a 2-core CPU.
MAX_SEQUENCES, MAX_DIGITS = 100_000, 2_000_000


# --------------------------------------------------------------------------- checkpoints

def checkpoint_dir() -> Path:
    return Path(os.environ.get("DIGITSUM_CHECKPOINT_DIR") or REPO_ROOT / "checkpoints")


def display_name(path: Path) -> str:
    """Path relative to the repo when inside it (short, and stable in links), else its folder and
    file name (a test's temp folder, say)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(REPO_ROOT))
    except ValueError:
        return f"{path.parent.name}/{path.name}"


def list_checkpoints() -> dict[str, Path]:
    """{display name: path}: checkpoints/*.pt (default.pt first), then finished runs.

    Cached for a few seconds (the sidebar and every page ask on each rerun); the directories are
    part of the key so tests pointing the env vars elsewhere see their own files at once.
    """
    found, problem = _list_checkpoints(str(checkpoint_dir()), os.environ.get("DIGITSUM_RUNS_DIR", ""))
    if problem:  # a broken run registry must not take the dashboard down
        st.sidebar.warning(f"Training runs unavailable: {problem}")
    return found


@st.cache_data(ttl=3, show_spinner=False)
def _list_checkpoints(directory: str, runs_dir: str) -> tuple[dict[str, Path], str | None]:
    found = sorted(Path(directory).glob("*.pt"), key=lambda p: (p.name != "default.pt", p.name))
    problem = None
    try:
        import core.runs as runs
    except ImportError:  # the run registry (issue 5) is optional
        runs = None
    if runs is not None and hasattr(runs, "list_checkpoints"):
        try:
            for item in runs.list_checkpoints():
                # Accept plain paths, (label, path) pairs or dicts with a "path" key.
                if isinstance(item, dict):
                    item = item.get("path") or item.get("checkpoint")
                elif isinstance(item, (tuple, list)):
                    item = item[-1]
                if item and Path(item).is_file():
                    found.append(Path(item))
        except Exception as exc:  # noqa: BLE001 - reported in the sidebar instead
            problem = str(exc)
    return {display_name(p): p.resolve() for p in found}, problem


def resolve_checkpoint(name: str | None) -> Path | None:
    """A checkpoint named in a URL or the selector -> an existing path among the known ones."""
    return list_checkpoints().get(name) if name else None


@st.cache_resource(show_spinner="Loading checkpoint…", max_entries=6)
def _predictor(path: str, mtime: float):
    return load_predictor(path, device="auto")


def predictor(path: Path):
    """The predictor for `path`, reloaded only when the file changes (mtime in the cache key)."""
    return _predictor(str(path), os.path.getmtime(path))


# --------------------------------------------------------------------------- data

@st.cache_resource(show_spinner="Loading MNIST…")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the test split: every figure on the dashboard uses test images."""
    return split_arrays(load_mnist(), "test")


@st.cache_data(show_spinner="Evaluating the checkpoint…", max_entries=12)
def _evaluation(path: str, mtime: float, lengths: tuple[int, ...], per_length: int,
                seed: int) -> pd.DataFrame:
    return evaluate.evaluation_set(_predictor(path, mtime), list(lengths), per_length, seed)


def evaluation(path: Path, lengths, per_length: int, seed: int) -> pd.DataFrame:
    """The per-sequence evaluation table (core.evaluate's columns) for an evaluation set."""
    return _evaluation(str(path), os.path.getmtime(path), tuple(lengths), int(per_length), int(seed))


def sidebar_evaluation(s: Settings) -> pd.DataFrame:
    """The sidebar's evaluation table, or the page stops with the reason (never a traceback)."""
    try:
        return evaluation(s.checkpoint, s.lengths, s.per_length, s.seed)
    except Exception as exc:  # noqa: BLE001 - e.g. a checkpoint replaced by a broken file
        st.error(f"Cannot evaluate {s.checkpoint_name}: {exc}")
        st.stop()


@st.cache_data(show_spinner=False)
def _benchmark(mtime: float) -> dict | None:
    try:
        return json.loads(BENCHMARK_JSON.read_text())
    except (OSError, ValueError):
        return None


def benchmark() -> dict | None:
    """reports/benchmark.json (written by scripts/benchmark), or None when absent/unreadable."""
    return _benchmark(BENCHMARK_JSON.stat().st_mtime) if BENCHMARK_JSON.exists() else None


# --------------------------------------------------------------------------- shared settings

@dataclass(frozen=True)
class Settings:
    checkpoint: Path | None
    checkpoint_name: str | None
    lengths: list[int]
    per_length: int
    seed: int
    problem: str | None  # a message for the page when the settings cannot be used


def settings() -> Settings:
    """The sidebar's current choices; `problem` explains why a page cannot render yet."""
    ss = st.session_state
    name = ss.get(CKPT)
    path = resolve_checkpoint(name)
    problem = None
    try:
        lengths = parse_lengths(ss.get(LENGTHS, DEFAULTS[LENGTHS]))
    except ValueError as exc:
        lengths, problem = parse_lengths(DEFAULTS[LENGTHS]), str(exc)
    per_length = int(ss.get(PER_LENGTH, DEFAULTS[PER_LENGTH]))
    digits = per_length * sum(lengths)
    if problem is None and (per_length * len(lengths) > MAX_SEQUENCES or digits > MAX_DIGITS):
        problem = (f"The evaluation set is too large ({per_length * len(lengths):,} sequences, "
                   f"{digits:,} digits; the dashboard allows {MAX_SEQUENCES:,} and {MAX_DIGITS:,}): "
                   "use fewer lengths or fewer sequences per length.")
    if path is None:
        problem = (f"No checkpoint found in {display_name(checkpoint_dir())}/. Train one with "
                   "`python -m scripts.train --preset default`.")
    return Settings(path, name if path else None, lengths, per_length, int(ss.get(SEED, DEFAULTS[SEED])),
                    problem)


def require(s: Settings):
    """Stop the page with a clear message when there is no usable checkpoint or set; else return
    the loaded predictor."""
    if s.problem:
        st.error(s.problem)
        st.stop()
    try:
        return predictor(s.checkpoint)
    except Exception as exc:  # CheckpointError and friends: the message names the file and problem
        st.error(f"Cannot load {s.checkpoint_name}: {exc}")
        st.stop()


# --------------------------------------------------------------------------- one sequence

def generator_sequences(spec: SequenceSpec):
    """The generator's Sequences (one sequence) for a spec; ValueError when impossible."""
    sum_range = (spec.sum_min, spec.sum_max) if spec.sum_min is not None else None
    return generate_sequences("test", 1, spec.length, seed=spec.seed, target_sum=spec.target,
                              sum_range=sum_range, allowed_digits=spec.digits,
                              labels=test_split()[1])


@st.cache_data(show_spinner=False, max_entries=64)
def _generated(path: str, mtime: float, query: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    spec = SequenceSpec.from_query(dict(query))
    return evaluate.evaluate_sequences(_predictor(path, mtime), generator_sequences(spec),
                                       test_split()[0])


def generated_row(path: Path, spec: SequenceSpec) -> pd.Series:
    """The generator's sequence evaluated (core.evaluate's columns); ValueError if impossible."""
    query = tuple(sorted(spec.to_query().items()))  # a plain, hashable cache key
    return _generated(str(path), os.path.getmtime(path), query).iloc[0]


# --------------------------------------------------------------------------- headline figures

@st.cache_data(show_spinner="Measuring the headline figures…", max_entries=6)
def _headlines(path: str, mtime: float) -> dict[str, float]:
    return evaluate.headline_figures(_predictor(path, mtime))


_MEASURED: set[tuple[str, float]] = set()  # checkpoint versions measured by this server process


def measured_headlines(path: Path) -> dict[str, float]:
    """Original protocol (20,000 length-10 test sequences), CNN test accuracy and extrapolation
    at lengths 100 and 1000, measured here (cached per checkpoint version, shared by sessions)."""
    key = (str(path), os.path.getmtime(path))
    out = _headlines(*key)
    _MEASURED.add(key)
    return out


def headlines_measured(path: Path) -> bool:
    """Whether measured_headlines ran before for this checkpoint version (so it returns at once)."""
    return (str(path), os.path.getmtime(path)) in _MEASURED

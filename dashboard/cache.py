"""Everything the dashboard loads or computes once and shares between reruns and sessions.

- Predictors: st.cache_resource keyed on the checkpoint's file version (file_key: path, mtime in ns,
  inode, size), so a checkpoint replaced at the same path — even within the same mtime second — loads
  anew. One instance per version, shared by every session and never mutated.
- Evaluation tables, generated sequences and measured headline figures: st.cache_data, keyed on the
  same file version and the evaluation-set spec.
- Trust figures: the CNN's logits on every test image (one pass per checkpoint version), shared by the
  digit calibration figures and the suspect-label ranking; the uncalibrated twin of each predictor.
- Checkpoints: every *.pt in the checkpoint folder ($DIGITSUM_CHECKPOINT_DIR, default checkpoints/),
  then the finished training runs from core.runs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import evaluate, load_predictor, paths, runs
from core.data import load_mnist, split_arrays
from core.data.sequences import generate_sequences
from core.evaluate import reliability
from core.evaluate import suspect_labels
from core.paths import REPO_ROOT
from dashboard.links import SequenceSpec

BENCHMARK_JSON = REPO_ROOT / "reports" / "benchmark.json"

FileKey = tuple[str, int, int, int]


def file_key(path) -> FileKey:
    """(path, st_mtime_ns, st_ino, st_size): changes whenever the file at `path` is rewritten or
    replaced (an atomic replace gets a new inode even when the mtime is copied over)."""
    st_ = os.stat(path)
    return str(Path(path).resolve()), st_.st_mtime_ns, st_.st_ino, st_.st_size


# --------------------------------------------------------------------------- checkpoints

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
    """{display name: path}: the checkpoint folder's *.pt (default.pt first), then finished runs.

    Cached for a few seconds (the sidebar and every view ask on each rerun); the folders are part of
    the key so tests pointing the env vars elsewhere see their own files at once.
    """
    found, problem = _list_checkpoints(str(checkpoint_dir()), str(paths.runs_dir()))
    if problem:  # a broken run registry (say, a corrupt database) must not take the dashboard down
        st.sidebar.warning(f"Training runs unavailable: {problem}")
    return found


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


# --------------------------------------------------------------------------- data

@st.cache_resource(show_spinner="Loading MNIST…")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the test split: every figure on the dashboard uses test images."""
    return split_arrays(load_mnist(), "test")


def _set_aside(key: FileKey, aside: int) -> np.ndarray | None:
    return _suspects(key)["index"].to_numpy()[:aside] if aside > 0 else None


@st.cache_data(show_spinner="Evaluating the checkpoint…", max_entries=12)
def _evaluation(key: FileKey, lengths: tuple[int, ...], per_length: int, seed: int, aside: int = 0,
                raw: bool = False) -> pd.DataFrame:
    model = _uncalibrated(key) if raw else _predictor(key)
    return evaluate.evaluation_set(model, list(lengths), per_length, seed, exclude=_set_aside(key, aside))


def evaluation(path: Path, lengths, per_length: int, seed: int, aside: int = 0) -> pd.DataFrame:
    """The per-sequence evaluation table (core.evaluate's columns) for an evaluation set; `aside` > 0
    builds it without the `aside` most suspect test images (see suspects)."""
    return _evaluation(file_key(path), tuple(lengths), int(per_length), int(seed), int(aside))


def uncalibrated_evaluation(path: Path, lengths, per_length: int, seed: int, aside: int = 0) -> pd.DataFrame:
    """The same evaluation set through predictor.uncalibrated() (T = 1, no interval margin)."""
    return _evaluation(file_key(path), tuple(lengths), int(per_length), int(seed), int(aside), raw=True)


@st.cache_data(show_spinner=False)
def _benchmark(key: FileKey) -> dict | None:
    try:
        return json.loads(Path(key[0]).read_text())
    except (OSError, ValueError):
        return None


def benchmark() -> dict | None:
    """reports/benchmark.json (written by scripts.benchmark), or None when absent/unreadable."""
    return _benchmark(file_key(BENCHMARK_JSON)) if BENCHMARK_JSON.exists() else None


# --------------------------------------------------------------------------- one sequence

def generator_sequences(spec: SequenceSpec):
    """The generator's Sequences (one sequence) for a spec; ValueError when impossible."""
    sum_range = (spec.sum_min, spec.sum_max) if spec.sum_min is not None else None
    return generate_sequences("test", 1, spec.length, seed=spec.seed, target_sum=spec.target, sum_range=sum_range,
                              allowed_digits=spec.digits, labels=test_split()[1])


@st.cache_data(show_spinner=False, max_entries=64)
def _generated(key: FileKey, query: tuple[tuple[str, str], ...]) -> pd.DataFrame:
    spec = SequenceSpec.from_query(dict(query))
    return evaluate.evaluate_sequences(_predictor(key), generator_sequences(spec), test_split()[0])


def generated_row(path: Path, spec: SequenceSpec) -> pd.Series:
    """The generator's sequence evaluated (core.evaluate's columns); ValueError if impossible."""
    query = tuple(sorted(spec.to_query().items()))  # a plain, hashable cache key
    return _generated(file_key(path), query).iloc[0]


def sequence_images(row) -> np.ndarray:
    """The test images of an evaluated sequence (its `indices` column)."""
    return test_split()[0][np.asarray(row["indices"], dtype=np.int64)]


@st.cache_data(show_spinner=False, max_entries=64)
def _sum_distribution(key: FileKey, indices: tuple[int, ...]) -> tuple[int, np.ndarray] | None:
    predictor = _predictor(key)  # the test split's cached logits: no CNN pass for this sequence
    prediction = predictor.run_indexed(test_split()[0], np.array([indices]), np.array([len(indices)]), split="test")
    if not prediction.has_distribution:  # a regression head: no distribution over the sum
        return None
    [dist] = predictor.sum_distribution(prediction=prediction)
    return dist.start, dist.probs


def sum_distribution(path: Path, row) -> tuple[int, np.ndarray] | None:
    """(start, probs) of P(sum) for an evaluated sequence, or None for a head without a distribution."""
    return _sum_distribution(file_key(path), tuple(int(i) for i in row["indices"]))


# --------------------------------------------------------------------------- trust

@st.cache_resource(show_spinner=False, max_entries=6)
def _uncalibrated(key: FileKey):
    return _predictor(key).uncalibrated()


@st.cache_data(show_spinner="Ranking suspect labels…", max_entries=6)
def _suspects(key: FileKey) -> pd.DataFrame:
    return suspect_labels(_predictor(key))  # the CNN pass comes from core's disk cache


def suspects(path: Path) -> pd.DataFrame:
    """Every test image, most suspect label first: index, given, suggested, score, flagged."""
    return _suspects(file_key(path))


@st.cache_data(show_spinner=False, max_entries=12)
def _digit_calibration(key: FileKey, aside: int) -> dict:
    exclude = _set_aside(key, aside) if aside > 0 else None
    return reliability.digit_calibration(_predictor(key), exclude=exclude, tables=True)


def digit_calibration(path: Path, aside: int = 0) -> dict:
    """core.evaluate.reliability.digit_calibration's figures on the test images (without the `aside` most
    suspect ones), plus each side's reliability table: keys before, after, before_table, after_table, images."""
    return _digit_calibration(file_key(path), int(aside))


# --------------------------------------------------------------------------- headline figures

@st.cache_data(show_spinner="Measuring the headline figures…", max_entries=6)
def _headlines(key: FileKey) -> dict[str, float]:
    return evaluate.headline_figures(_predictor(key))


_MEASURED: set[FileKey] = set()  # checkpoint versions measured by this server process


def measured_headlines(path: Path) -> dict[str, float]:
    """core.evaluate.headline_figures for this checkpoint, measured here (cached per checkpoint
    version, shared by sessions)."""
    key = file_key(path)
    out = _headlines(key)
    _MEASURED.add(key)
    return out


def headlines_measured(path: Path) -> bool:
    """Whether measured_headlines ran before for this checkpoint version (so it returns at once)."""
    return file_key(path) in _MEASURED

"""The evaluation sets and the figures measured on them, computed once and shared by reruns and sessions.

- Evaluation tables: core.evaluate's columnar EvalTable (per-digit data as flat arrays plus offsets),
  kept with st.cache_resource, keyed on the checkpoint's file version and the set's spec: one copy per
  set, never copied per rerun. Views treat it as read-only.
- Generated sequences, P(sum) of one sequence, suspect labels and digit calibration: st.cache_data.
- Headline figures: measured on request and kept in one bounded store that also says whether a
  checkpoint version has been measured (so an evicted entry never looks measured).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st

from core import evaluate
from core.data import generate_sequences, load_mnist, split_arrays
from core.evaluate import reliability, suspect_labels
from core.paths import REPO_ROOT
from dashboard.data.checkpoints import FileKey, _predictor, _uncalibrated, file_key
from dashboard.data.label_decisions import LogVersion, log_version
from dashboard.links import SequenceSpec

BENCHMARK_JSON = REPO_ROOT / "reports" / "benchmark.json"


@st.cache_resource(show_spinner="Loading MNIST…")
def test_split() -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of the test split: every figure on the dashboard uses test images."""
    return split_arrays(load_mnist(), "test")


# --------------------------------------------------------------------------- evaluation sets

def _set_aside(key: FileKey, aside: int) -> np.ndarray | None:
    return _suspects(key)["index"].to_numpy()[:aside] if aside > 0 else None


@st.cache_resource(show_spinner="Evaluating the checkpoint…", max_entries=12)
def _evaluation(key: FileKey, lengths: tuple[int, ...], per_length: int, seed: int, aside: int = 0,
                raw: bool = False, decided: LogVersion | bool = False) -> evaluate.EvalTable:
    model = _uncalibrated(key) if raw else _predictor(key)
    return evaluate.evaluation_table(model, list(lengths), per_length, seed, exclude=_set_aside(key, aside),
                                     decisions=decided is not False)


def _decided_key(decided: bool) -> LogVersion | bool:
    """False, or the decision log's version: a new decision rebuilds the decided set, never the other."""
    return log_version("test") if decided else False


def evaluation_table(path: Path, lengths, per_length: int, seed: int, aside: int = 0,
                     decided: bool = False) -> evaluate.EvalTable:
    """The evaluation set's columnar table (core.evaluate.EvalTable, shared: read-only); `aside` > 0
    builds it without the `aside` most suspect test images (see suspects); `decided` applies the
    person's label decisions (relabelled truth, excluded images left out)."""
    return _evaluation(file_key(path), tuple(lengths), int(per_length), int(seed), int(aside), False,
                       _decided_key(decided))


def uncalibrated_table(path: Path, lengths, per_length: int, seed: int, aside: int = 0,
                       decided: bool = False) -> evaluate.EvalTable:
    """The same evaluation set through predictor.uncalibrated() (T = 1, no interval margin)."""
    return _evaluation(file_key(path), tuple(lengths), int(per_length), int(seed), int(aside), True,
                       _decided_key(decided))


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
def _generated(key: FileKey, query: tuple[tuple[str, str], ...]) -> pd.Series:
    spec = SequenceSpec.from_query(dict(query))
    return evaluate.sequence_table(_predictor(key), generator_sequences(spec), test_split()[0]).row(0)


def generated_row(path: Path, spec: SequenceSpec) -> pd.Series:
    """The generator's sequence evaluated (core.evaluate's columns); ValueError if impossible."""
    query = tuple(sorted(spec.to_query().items()))  # a plain, hashable cache key
    return _generated(file_key(path), query)


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


@st.cache_data(show_spinner=False, max_entries=64)
def _member_readings(key: FileKey, indices: tuple[int, ...]) -> np.ndarray | None:
    predictor = _predictor(key)
    if len(predictor.model.cnn.members) == 1:
        return None
    return evaluate.member_readings(predictor, test_split()[0][np.array(indices)])[0]


def member_readings(path: Path, row) -> np.ndarray | None:
    """Each CNN member's reading (L, M) of an evaluated sequence's digits; None for a single CNN."""
    return _member_readings(file_key(path), tuple(int(i) for i in row["indices"]))


# --------------------------------------------------------------------------- trust

@st.cache_data(show_spinner="Ranking suspect labels…", max_entries=6)
def _suspects(key: FileKey) -> pd.DataFrame:
    return suspect_labels(_predictor(key))  # the CNN pass comes from core's disk cache


def suspects(path: Path) -> pd.DataFrame:
    """Every test image, most suspect label first: index, given, suggested, score, flagged."""
    return _suspects(file_key(path))


@st.cache_data(show_spinner=False, max_entries=12)
def _digit_calibration(key: FileKey, aside: int, decided: LogVersion | bool = False) -> dict:
    exclude = _set_aside(key, aside) if aside > 0 else None
    return reliability.digit_calibration(_predictor(key), exclude=exclude, tables=True, decisions=decided is not False)


def digit_calibration(path: Path, aside: int = 0, decided: bool = False) -> dict:
    """core.evaluate.reliability.digit_calibration's figures on the test images (without the `aside` most
    suspect ones), plus each side's reliability table: keys before, after, before_table, after_table, images."""
    return _digit_calibration(file_key(path), int(aside), _decided_key(decided))


# --------------------------------------------------------------------------- headline figures

class _Headlines:
    """Measured headline figures per checkpoint version (and decision-log version, when decided): the last
    few, shared by sessions. Membership is the marker of "measured", so an evicted checkpoint reads as not
    measured and is measured only on a click."""
    lock = threading.Lock()
    measured: OrderedDict[tuple, dict[str, float]] = OrderedDict()
    keep = 6


def _headline_key(path: Path, decided: bool) -> tuple:
    return file_key(path), _decided_key(decided)


def measured_headlines(path: Path, decided: bool = False) -> dict[str, float]:
    """core.evaluate.headline_figures for this checkpoint version, with or without the person's label
    decisions (measured here once; a few seconds from the disk cache)."""
    key = _headline_key(path, decided)
    with _Headlines.lock:
        if key in _Headlines.measured:
            _Headlines.measured.move_to_end(key)
            return _Headlines.measured[key]
    figures = evaluate.headline_figures(_predictor(key[0]), decisions=decided)
    with _Headlines.lock:
        _Headlines.measured[key] = figures
        while len(_Headlines.measured) > _Headlines.keep:
            _Headlines.measured.popitem(last=False)
    return figures


def headlines_measured(path: Path, decided: bool = False) -> bool:
    """Whether these headline figures are held (so measured_headlines returns at once)."""
    with _Headlines.lock:
        return _headline_key(path, decided) in _Headlines.measured

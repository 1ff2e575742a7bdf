"""How a model reads the user's own collection, computed once per model version and collection version:
its accuracy and confusion on the collection's held-out part (core.collection), and its digit accuracy
on MNIST test, so a personal model and its parent can stand side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st

from core import evaluate
from core.collection import PATTERN, load_collection, training_digits
from core.paths import collection_dir
from dashboard.data.label_decisions import log_version
from dashboard.data.checkpoints import FileKey, _predictor, file_key


def collection_version() -> tuple:
    """The saves' names and sizes: any save, deletion or rewrite changes it."""
    folder = collection_dir()
    return tuple((p.name, p.stat().st_size) for p in sorted(folder.glob(PATTERN))) if folder.is_dir() else ()


@st.cache_data(show_spinner=False, max_entries=4)
def _collection(version: tuple, decided) -> dict:
    images, labels = load_collection("all")
    return {"images": images, "labels": labels, "held_out": len(load_collection("holdout")[1]),
            "train": len(training_digits()[1])}


def collection() -> dict:
    """The whole collection ("images", "labels") and the sizes of its parts ("held_out"; "train": what a
    personal model learns from, after the label decisions about "mine"), read once per version."""
    return _collection(collection_version(), log_version("mine"))


@st.cache_data(show_spinner="Reading your held-out digits…", max_entries=16)
def _holdout_scores(key: FileKey, version: tuple) -> dict:
    images, labels = load_collection("holdout")
    if not len(labels):
        return {"n": 0, "accuracy": float("nan"), "confusion": np.zeros((10, 10), np.int64)}
    read = _predictor(key).predict_digits(images[:, None])[:, 0].argmax(axis=1)
    return {"n": int(len(labels)), "accuracy": float((read == labels).mean()),
            "confusion": np.bincount(labels.astype(np.int64) * 10 + read, minlength=100).reshape(10, 10)}


def holdout_scores(path: Path) -> dict:
    """{"n", "accuracy", "confusion" (10x10, rows true)} of the model at `path` on the collection's held-out part."""
    return _holdout_scores(file_key(path), collection_version())


@st.cache_data(show_spinner="Reading the MNIST test digits…", max_entries=16)
def _test_accuracy(key: FileKey) -> float:
    return evaluate.digit_accuracy(_predictor(key))


def test_accuracy(path: Path) -> float:
    """The model's digit accuracy on MNIST test (its cached logits after the first time)."""
    return _test_accuracy(file_key(path))

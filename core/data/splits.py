"""The splits, in one place. Training sequences come from train, model selection and calibration use
val, and every reported figure uses test:
    train = MNIST train[:55000], val = MNIST train[55000:], test = MNIST test.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")
TRAIN_SIZE = 55_000


def split_arrays(mnist, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split, as views: train = train[:55000], val = train[55000:], test."""
    if split == "train":
        return mnist.x_train[:TRAIN_SIZE], mnist.y_train[:TRAIN_SIZE]
    if split == "val":
        return mnist.x_train[TRAIN_SIZE:], mnist.y_train[TRAIN_SIZE:]
    if split == "test":
        return mnist.x_test, mnist.y_test
    raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")



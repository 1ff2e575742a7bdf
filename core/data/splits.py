"""The splits, in one place. Training sequences come from train, model selection and calibration use
val, and every reported figure uses test:
    train = MNIST train[:55000], val = MNIST train[55000:], test = MNIST test.
One extra split is not MNIST: "mine", the digits a user wrote and labelled (core.collection), read from
disk on each call; it is empty until something is saved.
"""

from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")
COLLECTION_SPLIT = "mine"
TRAIN_SIZE = 55_000


def split_arrays(mnist, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split: views of MNIST for train = train[:55000], val = train[55000:] and
    test; for "mine", the collection's uint8 arrays as saved now (empty when nothing is)."""
    if split == "train":
        return mnist.x_train[:TRAIN_SIZE], mnist.y_train[:TRAIN_SIZE]
    if split == "val":
        return mnist.x_train[TRAIN_SIZE:], mnist.y_train[TRAIN_SIZE:]
    if split == "test":
        return mnist.x_test, mnist.y_test
    if split == COLLECTION_SPLIT:
        from core.collection import load_collection

        return load_collection()
    raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS + (COLLECTION_SPLIT,))}")



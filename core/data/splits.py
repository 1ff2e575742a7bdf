"""The splits, in one place. Training sequences come from train, model selection and calibration use
val, and every reported figure uses test:
    train = MNIST train[:55000], val = MNIST train[55000:], test = MNIST test.
Val has two disjoint parts, so that no image both chooses the model and calibrates it:
    val_select = MNIST train[55000:57500]: epoch and model selection (SELECTION_SPLIT),
    val_calib  = MNIST train[57500:60000]: the temperatures and the interval margins (CALIBRATION_SPLIT).
"val" stays the whole of both, for callers that want all 5,000 images.
One extra split is not MNIST: "mine", the digits a user wrote and labelled (core.collection), read from
disk on each call; it is empty until something is saved.
"""

from __future__ import annotations

import numpy as np

TRAIN_SIZE = 55_000
VAL_SELECT_SIZE = 2_500  # val_select = the first 2,500 val images; val_calib = the rest (2,500)
SELECTION_SPLIT, CALIBRATION_SPLIT = "val_select", "val_calib"
# A part of a split: name -> (the whole split, its rows in that split). core.predict.cache serves a
# part by slicing the whole split's cached arrays.
PARTS: dict[str, tuple[str, slice]] = {SELECTION_SPLIT: ("val", slice(0, VAL_SELECT_SIZE)),
                                       CALIBRATION_SPLIT: ("val", slice(VAL_SELECT_SIZE, None))}
SPLITS = ("train", "val", "test", *PARTS)
COLLECTION_SPLIT = "mine"


def split_arrays(mnist, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) of one split: views of MNIST for train = train[:55000], val = train[55000:],
    its parts val_select = train[55000:57500] and val_calib = train[57500:], and test; for "mine", the
    collection's uint8 arrays as saved now (empty when nothing is)."""
    if split == "train":
        return mnist.x_train[:TRAIN_SIZE], mnist.y_train[:TRAIN_SIZE]
    if split == "val":
        return mnist.x_train[TRAIN_SIZE:], mnist.y_train[TRAIN_SIZE:]
    if split in PARTS:
        whole, rows = PARTS[split]
        images, labels = split_arrays(mnist, whole)
        return images[rows], labels[rows]
    if split == "test":
        return mnist.x_test, mnist.y_test
    if split == COLLECTION_SPLIT:
        from core.collection import load_collection

        return load_collection()
    raise ValueError(f"unknown split {split!r}: expected one of {', '.join(SPLITS + (COLLECTION_SPLIT,))}")

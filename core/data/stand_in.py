"""A stand-in for a writer whom the shipped model reads poorly, for the tests and the benchmark of the
`personal` training preset: MNIST val_select digits through one fixed, strong change of style. Never
train a shipped model on it.

The style: every digit leans far to the left (a horizontal shear of SLANT, about 40 degrees) with
strokes about 2 px thicker (a grey dilation), then goes through MNIST's own preprocessing (its box
scaled to 20 px, centred by mass), as a photographed digit does. The shipped checkpoints/default.pt
reads about 96% of these digits (95.9% of all 2,500 val_select images), against 99.6% of the same
images unchanged. The digits a personal model learns from are val_select images, never val_calib ones
(training refits the temperature on val_calib) and never test ones; the digits it is measured on are
MNIST test images in the same hand.

    images = stand_in_writer(mnist_images)          # uint8 (N, 28, 28) -> the same digits in the hand
    write_stand_in_collection(30, 30)               # 30 train saves of 30 val_select digits
    images, labels = stand_in_digits("test", 900)   # 900 other digits by the same writer, to measure on
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from core.data.splits import SELECTION_SPLIT

SLANT = 0.85  # horizontal shear: the top of a digit moves left by 0.85 px per px of height (40 degrees)
BOX = 20  # MNIST's size normalisation: the longer side of the digit's box, in pixels
SEED = 2024  # which images of a split stand_in_digits draws, in which order


def stand_in_writer(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) MNIST-style digits -> the same digits in the stand-in writer's hand (uint8,
    deterministic: no randomness at all)."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images must be uint8 (N, 28, 28), got {images.dtype} {images.shape}")
    # On a 56 x 56 canvas, so no stroke leaves the frame: output pixel (n, r, c) reads input pixel
    # (n, r, c + SLANT * (27.5 - r)), the rows above the centre moving left.
    canvas = np.zeros((len(images), 56, 56), np.float32)
    canvas[:, 14:42, 14:42] = images
    sheared = ndimage.affine_transform(canvas, np.array([[1.0, 0, 0], [0, 1, 0], [0, -SLANT, 1]]),
                                       offset=(0, 0, SLANT * 27.5), order=1)
    thick = ndimage.grey_dilation(sheared, footprint=ndimage.generate_binary_structure(2, 1)[None])
    out = np.empty(images.shape, np.uint8)
    for i, image in enumerate(np.clip(thick, 0, 255).round().astype(np.uint8)):
        out[i] = _normalise(image)
    return out


def _normalise(image: np.ndarray) -> np.ndarray:
    """MNIST's preprocessing, as a photographed digit gets it (core.handwriting): the ink's box scaled
    to BOX pixels on its longer side, centred by its centre of mass in 28 x 28."""
    rows, cols = np.flatnonzero(image.max(1)), np.flatnonzero(image.max(0))
    ink = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] if len(rows) else image[:1, :1]
    scale = BOX / max(ink.shape)
    size = (max(1, round(ink.shape[1] * scale)), max(1, round(ink.shape[0] * scale)))
    fitted = np.asarray(Image.fromarray(ink).resize(size, Image.BILINEAR))
    cy, cx = ndimage.center_of_mass(fitted.astype(np.float32)) if fitted.any() else (0.0, 0.0)
    top = min(max(round(14 - cy), 0), 28 - fitted.shape[0])
    left = min(max(round(14 - cx), 0), 28 - fitted.shape[1])
    out = np.zeros((28, 28), np.uint8)
    out[top : top + fitted.shape[0], left : left + fitted.shape[1]] = fitted
    return out


def stand_in_digits(split: str, count: int, skip: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """`count` digits of an MNIST split in the stand-in's hand, with their labels: a seeded order of the
    split's images, from position `skip` on (so calls with disjoint ranges share no image)."""
    from core.data import load_mnist, split_arrays

    images, labels = split_arrays(load_mnist(), split)
    if skip < 0 or count < 1 or skip + count > len(images):
        raise ValueError(f"{split} has {len(images)} images: positions {skip}..{skip + count - 1} do not fit")
    rows = np.random.default_rng(SEED).permutation(len(images))[skip : skip + count]
    return stand_in_writer(images[rows]), labels[rows]


def write_stand_in_collection(train_saves: int, per_save: int) -> int:
    """Save val_select digits in the stand-in's hand into an empty collection (core.collection),
    `per_save` a save, until its train part holds `train_saves` saves. Returns the digits saved (the
    held-out part's included)."""
    from core.collection import PATTERN, load_collection, save_digits
    from core.paths import collection_dir

    if any(collection_dir().glob(PATTERN)):
        raise ValueError(f"{collection_dir()} already holds saves: point DIGITSUM_COLLECTION_DIR at an empty folder")
    saved = 0
    while len(load_collection("train")[1]) < train_saves * per_save:
        save_digits(*stand_in_digits(SELECTION_SPLIT, per_save, skip=saved), source="stand-in")
        saved += per_save
    return saved

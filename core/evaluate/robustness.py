"""Robustness to other writers, measured on MNIST test images only.

    corruption_accuracy(p)      # digit accuracy on corrupted test images, per corruption, plus clean and mean
    row_reading(p, n_rows=1000) # rows of test digits photographed on paper, read back with read_digits

The corruptions are made in code, in the manner of MNIST-C (Mu & Gilmer, 2019): one fixed, moderate
severity each, random in direction per image, seeded. MNIST-C's generated set uses shear 0.4, scale 0.7
and translate 3 px; thickening and thinning follow Morpho-MNIST's idea (a stroke about 2 px thicker,
or about 1 px thinner).
"""

from __future__ import annotations

import time

import numpy as np
from PIL import Image
from scipy import ndimage

from core.handwriting import HandwritingError, read_digits

CENTRE = 13.5  # the centre of a 28x28 image in pixel coordinates


def _affine(images: np.ndarray, matrices: np.ndarray) -> np.ndarray:
    """Apply one 2x2 matrix per image about the centre (output pixel -> input pixel), bilinear."""
    out = np.empty_like(images)
    for i, (image, matrix) in enumerate(zip(images, matrices)):
        offset = CENTRE - matrix @ np.array([CENTRE, CENTRE])
        out[i] = np.clip(ndimage.affine_transform(image.astype(np.float32), matrix, offset, order=1), 0, 255).round()
    return out


def thicken(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes grown by 1 px on every side: grey dilation with a 3x3 cross (about 2 px thicker)."""
    return ndimage.grey_dilation(images, footprint=ndimage.generate_binary_structure(2, 1)[None])


def thin(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Strokes eroded by half a pixel on every side (a 3x3 cross at twice the resolution; about 1 px thinner)."""
    big = np.repeat(np.repeat(images.astype(np.float32), 2, axis=1), 2, axis=2)
    big = ndimage.uniform_filter(big, (1, 2, 2))  # twice the resolution, smoothly
    big = ndimage.grey_erosion(big, footprint=ndimage.generate_binary_structure(2, 1)[None])
    return np.clip(big.reshape(len(images), 28, 2, 28, 2).mean(axis=(2, 4)), 0, 255).round().astype(np.uint8)


def shear(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Horizontal shear by tan(0.4 rad), to the left or right at random (MNIST-C's severity)."""
    signs = rng.choice([-1.0, 1.0], size=len(images))
    matrices = np.array([[[1.0, 0.0], [s * np.tan(0.4), 1.0]] for s in signs])
    return _affine(images, matrices)


def scale(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shrunk to 0.7 of its size about the centre (MNIST-C's severity)."""
    return _affine(images, np.repeat(np.eye(2)[None] / 0.7, len(images), axis=0))


def translate(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Moved 3 px along each axis, each direction at random (MNIST-C's severity); edges fill with black."""
    out = np.zeros_like(images)
    for i, (dy, dx) in enumerate(rng.choice([-3, 3], size=(len(images), 2))):
        out[i] = ndimage.shift(images[i], (dy, dx), order=0, mode="constant")
    return out


def blur(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur with sigma 1 px (MNIST-C's gaussian_blur at its mildest)."""
    return np.clip(ndimage.gaussian_filter(images.astype(np.float32), (0, 1, 1)), 0, 255).round().astype(np.uint8)


def pixel_noise(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian pixel noise with sigma 0.18 of the range, clipped (MNIST-C's gaussian_noise, severity 3)."""
    noisy = images.astype(np.float32) + rng.normal(0.0, 0.18 * 255, size=images.shape)
    return np.clip(noisy, 0, 255).round().astype(np.uint8)


CORRUPTIONS = {"thicken": thicken, "thin": thin, "shear": shear, "scale": scale, "translate": translate,
               "blur": blur, "noise": pixel_noise}


def _test_split(limit: int | None) -> tuple[np.ndarray, np.ndarray]:
    from core.data import load_mnist, split_arrays

    images, labels = split_arrays(load_mnist(), "test")
    return (images, labels) if limit is None else (images[:limit], labels[:limit])


def corruption_accuracy(predictor, seed: int = 0, limit: int | None = None) -> dict[str, float]:
    """Digit accuracy (argmax of the CNN) on MNIST test images: "clean", each corruption, and "mean"
    (over the corruptions). `limit` keeps the first N test images; each corruption has its own stream."""
    images, labels = _test_split(limit)
    if limit is None and getattr(predictor, "checkpoint_hash", None):
        clean = predictor.split_logits("test")  # from the disk cache
    else:
        clean = predictor.cnn_logits(images).numpy()
    result = {"clean": float((clean.argmax(axis=1) == labels).mean())}
    for k, (name, corrupt) in enumerate(CORRUPTIONS.items()):
        corrupted = corrupt(images, np.random.default_rng([seed, k]))
        result[name] = float((predictor.cnn_logits(corrupted).numpy().argmax(axis=1) == labels).mean())
    result["mean"] = float(np.mean([result[name] for name in CORRUPTIONS]))
    return result


# --------------------------------------------------------------------------- rows on paper

def make_row(digits: np.ndarray, rng: np.random.Generator, *, touching: bool = False, noise: bool = True,
             gradient: bool = True) -> np.ndarray:
    """A photo-like uint8 (H, W) row of MNIST-style digits (L, 28, 28): scaled to 28-64 px, dark ink
    on light paper, with random gaps (a tenth to half a digit between the strokes) and vertical jitter,
    a paper brightness gradient and Gaussian noise. touching: the digits come in pairs (0-1, 2-3, ...) whose
    ink overlaps by 0-2 columns (at 28 px), all centred on one line, so most pairs touch."""
    digits = np.asarray(digits)
    if digits.dtype != np.uint8 or digits.ndim != 3 or digits.shape[1:] != (28, 28) or len(digits) == 0:
        raise ValueError(f"digits must be a non-empty uint8 array (L, 28, 28); got {digits.dtype} {digits.shape}")
    # One writer, one size: the row's size is random in 28-64 px and each digit varies by up to 15% from it.
    sizes = np.clip(np.rint(rng.uniform(28, 64) * rng.uniform(0.85, 1.15, size=len(digits))), 28, 64).astype(int)
    scaled = [np.asarray(Image.fromarray(d).resize((s, s), Image.Resampling.BILINEAR), np.float32) / 255
              for d, s in zip(digits, sizes)]
    inked = [np.flatnonzero(im.max(axis=0) > 0.1) for im in scaled]
    height = int(sizes.max()) + 24
    xs, right = [], 0  # each frame's left column; `right`: the last inked column so far
    for i, size in enumerate(sizes):
        first, last = (inked[i][0], inked[i][-1]) if len(inked[i]) else (0, size - 1)
        x = 0
        if i:
            joined = touching and i % 2 == 1  # digits 0-1, 2-3, ... touch
            overlap = rng.uniform(0, 2) * size / 28 if joined else -rng.uniform(0.1, 0.5) * size
            x = right - first - int(round(overlap)) + 1
        xs.append(x)
        right = x + last
    xs = np.array(xs) + 12 - min(xs)  # a margin of paper on the left
    width = int(max(xs + sizes)) + 12
    ink = np.zeros((height, width), np.float32)
    for im, x, size in zip(scaled, xs, sizes):
        y = (height - size) // 2 + (0 if touching else int(rng.integers(-6, 7)))  # touching: level, so ink meets
        np.maximum(ink[y:y + size, x:x + size], im, out=ink[y:y + size, x:x + size])
    paper = np.full((height, width), rng.uniform(180, 240), np.float32)
    if gradient:  # light falling off across the sheet, and a softer vertical shade
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        paper += rng.uniform(-60, 60) * (xx / width - 0.5) + rng.uniform(-25, 25) * (yy / height - 0.5)
    row = paper - (paper - rng.uniform(10, 70)) * ink
    if noise:
        row += rng.normal(0.0, rng.uniform(3, 12), size=row.shape)
    return np.clip(row, 0, 255).round().astype(np.uint8)


def row_reading(predictor, n_rows: int = 1000, length: int = 5, seed: int = 0, touching: bool = False) -> dict:
    """Rows of `length` random MNIST test digits made by make_row, read back with read_digits.

    count_accuracy: share of rows where exactly `length` digits were found; sum_exact: share where the
    predicted sum of the digits read rounds to the true sum (a wrong count is a wrong sum); digit_accuracy:
    the CNN's argmax on the digits read, over the rows with the right count."""
    images, labels = _test_split(None)
    rng = np.random.default_rng([seed, length, int(touching)])
    picks = rng.integers(0, len(images), size=(n_rows, length))
    start = time.perf_counter()
    read, ok = [], np.zeros(n_rows, bool)
    for i, pick in enumerate(picks):
        try:
            digits = read_digits(make_row(images[pick], rng, touching=touching))
        except HandwritingError:
            continue
        if len(digits) == length:
            ok[i] = True
            read.append(digits)
    reading_seconds = time.perf_counter() - start
    exact, digit_accuracy = np.zeros(n_rows, bool), float("nan")
    if read:
        out = predictor.run(np.stack(read))  # one CNN pass serves the sums and the digit readings
        exact[ok] = np.rint(out.sums) == labels[picks[ok]].sum(axis=1)
        guessed = np.concatenate(out.digit_probs).argmax(axis=1)  # a temperature keeps every argmax
        digit_accuracy = float((guessed == labels[picks[ok]].ravel()).mean())
    return {"n_rows": n_rows, "length": length, "touching": touching, "count_accuracy": float(ok.mean()),
            "sum_exact": float(exact.mean()), "digit_accuracy": digit_accuracy,
            "reading_seconds": round(reading_seconds, 2)}

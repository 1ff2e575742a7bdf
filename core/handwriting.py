"""Images in the wild -> MNIST-style digits: read one row of handwriting, left to right.

    from core.handwriting import load_image, locate_digits, read_digits
    image = load_image(png_bytes)     # uint8 (H, W) or (H, W, 3); ValueError for bad files
    digits = read_digits(image)       # uint8 (L, 28, 28), white on black, ready for Predictor.predict
    reading = locate_digits(image)    # the same digits plus each one's box, for drawing
    digits = read_digits(image, predictor)               # touching digits cut where the CNN reads best
    reading = locate_digits(image, cnn_scorer(predictor))  # the same, with boxes

The steps, as MNIST made its digits:
  1. grey, and ink made bright: light paper (ink darker than the paper) is inverted;
  2. the paper removed: a coarse low-percentile background (blocks, interpolated) is subtracted, so a
     brightness gradient or a shadow goes away; the paper's noise level is measured on what is left;
  3. ink found by an Otsu threshold (above the noise, with hysteresis), specks (tiny in area and height)
     dropped;
  4. one group of pixels per digit (core.segmentation): connected components, merged when their columns
     overlap (broken strokes, a 5's cap), fragments under a third of the row's height joined or dropped,
     split along a seam when they hold touching digits: by shape alone, or, given a scorer (a CNN), at
     the candidate cut whose two halves the CNN reads most confidently (when that beats one digit);
  5. each digit's ink scaled so its longer side is 20 px (aspect kept) and placed in 28x28 so that its
     centre of mass sits at the centre, as in MNIST.

A scorer maps uint8 (N, 28, 28) MNIST-style digits to class probabilities (N, 10); cnn_scorer(predictor)
makes one from a loaded core.predict.Predictor. Core needs no model: without one the cut is by shape.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from core.segmentation import SMALL, segment, typical_area, typical_height

MAX_PIXELS = 20_000_000  # larger images are refused (decompression bombs, phone panoramas)
MAX_DIGITS = 200
WORK_PIXELS = 4_000_000  # bigger images are read at this size; boxes are mapped back
FORMATS = ("PNG", "JPEG", "WEBP", "BMP")
EXPECTED = "a uint8 array (H, W) grey, (H, W, 3) RGB or (H, W, 4) RGBA"
EMPTY = "no digits found: the image is empty (expected dark ink on light paper, or light on dark)"
SPECK = 0.03  # components under this share of a typical digit's area, and short (SMALL), are specks of noise
RIM = 2  # working pixels of faint edge kept around a digit's thresholded strokes

Scorer = Callable[[np.ndarray], np.ndarray]  # uint8 (N, 28, 28) digits -> class probabilities (N, 10)


class HandwritingError(ValueError):
    """Input that cannot be read as a row of digits; the message says what was expected."""


@dataclass
class Reading:
    digits: np.ndarray  # uint8 (L, 28, 28): MNIST-style, white digit on black, left to right
    boxes: np.ndarray  # int64 (L, 4): (x0, y0, x1, y1) in input pixels, x1 and y1 exclusive
    inverted: bool  # the input was dark ink on light paper


# --------------------------------------------------------------------------- files

def load_image(data) -> np.ndarray:
    """Decode PNG/JPEG/WebP/BMP bytes, or a file path, to uint8 (H, W) grey or (H, W, 3) RGB. EXIF
    orientation is applied and transparency composited on white. The size is checked on the header,
    before any pixel is decoded; Pillow's decompression-bomb guard stays on."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        source = io.BytesIO(bytes(data))
    elif isinstance(data, (str, os.PathLike)):
        if not os.path.isfile(data):
            raise HandwritingError(f"image file not found: {os.fspath(data)}")
        source = data
    else:
        raise HandwritingError(f"expected image bytes or a file path; got {type(data).__name__}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source, formats=FORMATS) as im:
                _check_size(im.width, im.height)
                im = ImageOps.exif_transpose(im)
                return _to_array(im)
    except UnidentifiedImageError as error:
        raise HandwritingError(f"not an image: expected PNG, JPEG, WebP or BMP data ({_one_line(error)})") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise HandwritingError(f"the image is too large ({_one_line(error)}); at most "
                               f"{MAX_PIXELS // 1_000_000} MP") from None
    except (OSError, SyntaxError, ValueError) as error:
        if isinstance(error, HandwritingError):
            raise
        raise HandwritingError(f"could not decode the image: {_one_line(error)}") from None


def _to_array(im: Image.Image) -> np.ndarray:
    if im.mode.startswith("I;16"):  # 16-bit grey: keep the top 8 bits
        return (np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8)
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        im = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return np.asarray(im.convert("L") if im.mode in ("L", "1", "I", "F") else im.convert("RGB"), dtype=np.uint8)


def _check_size(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise HandwritingError(f"the image has {width * height / 1e6:.1f} MP ({width} x {height}); "
                               f"at most {MAX_PIXELS // 1_000_000} MP")


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


# --------------------------------------------------------------------------- the reader

def read_digits(image, predictor=None) -> np.ndarray:
    """uint8 (L, 28, 28) MNIST-style digits of a row of handwriting, left to right. With a predictor
    (core.load_predictor), touching digits are cut where its CNN reads them best."""
    return locate_digits(image, None if predictor is None else cnn_scorer(predictor)).digits


def cnn_scorer(predictor) -> Scorer:
    """A scorer from a loaded predictor (core.load_predictor): its CNN's calibrated digit probabilities."""
    from core.predict.threads import one_thread  # torch loads only when a model is used

    def scorer(digits: np.ndarray) -> np.ndarray:
        # One thread: a group's candidates are a batch of a dozen or so images, where OpenMP's hand-offs
        # cost more than the work (a row read 10x faster on a busy 2-core CPU; same probabilities).
        with one_thread(predictor.device):
            return predictor.predict_digits(digits[:, None])[:, 0]
    return scorer


def locate_digits(image, scorer: Scorer | None = None) -> Reading:
    """The digits of a row of handwriting, with their boxes (see the module docstring). scorer: uint8
    (N, 28, 28) -> probabilities (N, 10), e.g. cnn_scorer(predictor); None cuts touching digits by shape."""
    grey, scale = _grey(image)
    ink, inverted, noise = _ink(grey)
    mask, low = _mask(ink, noise)
    labels, count = ndimage.label(mask, structure=np.ones((3, 3)))
    if count > 10 * MAX_DIGITS:  # before the pairwise merge, which grows with the square
        raise HandwritingError(f"found {count} separate marks; at most {MAX_DIGITS} digits per image")
    pieces = segment(labels, None if scorer is None else _judge(ink, labels, low, noise, scorer))
    if not pieces:
        raise HandwritingError(EMPTY)
    if len(pieces) > MAX_DIGITS:
        raise HandwritingError(f"found {len(pieces)} digits; at most {MAX_DIGITS} per image")
    pieces.sort(key=lambda piece: piece[1][0] + piece[1][2])  # left to right by the box's centre
    owns = [np.isin(labels[y0:y1, x0:x1], ids) for ids, (x0, y0, x1, y1) in pieces]
    fits = [_fit_box(ink, own, box, low) for own, (_, box) in zip(owns, pieces)]
    digits = np.stack([_normalise(ink, labels, own, box, fit, noise) for own, (_, box), fit in zip(owns, pieces, fits)])
    height, width = image.shape[:2]
    boxes = np.array(fits, dtype=np.float64) / scale
    boxes = np.column_stack([np.floor(boxes[:, :2]), np.ceil(boxes[:, 2:])]).astype(np.int64)
    boxes = np.minimum(np.maximum(boxes, 0), [width, height, width, height])
    return Reading(digits=digits, boxes=boxes, inverted=inverted)


def read_boxes(image, boxes) -> Reading:
    """The digits inside given boxes, (x0, y0, x1, y1) in input pixels (x1, y1 exclusive), in their order:
    e.g. locate_digits' boxes after a person merged, split or deleted some. Each box's ink is normalised
    as locate_digits does; ink outside the boxes is left out. One-line HandwritingError for no box, a
    box outside the image or one without ink."""
    grey, scale = _grey(image)
    ink, inverted, noise = _ink(grey)
    mask, low = _mask(ink, noise)
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    height, width = image.shape[:2]
    if not len(boxes):
        raise HandwritingError("no box to read: keep at least one")
    if len(boxes) > MAX_DIGITS:
        raise HandwritingError(f"{len(boxes)} boxes; at most {MAX_DIGITS} digits per image")
    digits = []
    for number, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
            raise HandwritingError(f"box {number} ({x0}, {y0}, {x1}, {y1}) lies outside the {width}x{height} image")
        box = (int(x0 * scale), int(y0 * scale), max(int(np.ceil(x1 * scale)), int(x0 * scale) + 1),
               max(int(np.ceil(y1 * scale)), int(y0 * scale) + 1))
        own = mask[box[1]:box[3], box[0]:box[2]]
        if not own.any():
            raise HandwritingError(f"box {number} holds no ink: delete it or merge it with a neighbour")
        digits.append(_normalise(ink, labels, own, box, _fit_box(ink, own, box, low), noise))
    return Reading(digits=np.stack(digits), boxes=boxes, inverted=inverted)


def _grey(image) -> tuple[np.ndarray, float]:
    """Validated input -> (float32 grey at the working size, working size / input size)."""
    if not isinstance(image, np.ndarray):
        raise HandwritingError(f"image must be {EXPECTED}; got {type(image).__name__}")
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (3, 4))):
        raise HandwritingError(f"image must be {EXPECTED}; got {image.dtype} {image.shape}")
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        raise HandwritingError(f"image must have at least one pixel; got shape {image.shape}")
    _check_size(width, height)
    scale = min(1.0, float(np.sqrt(WORK_PIXELS / (height * width))))
    if scale < 1.0:  # shrink first: a 20 MP photo in float32 would take 240 MB
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(Image.fromarray(np.ascontiguousarray(image)).resize(size, Image.Resampling.BOX))
    pixels = image.astype(np.float32)
    if image.ndim == 3:
        if image.shape[2] == 4:  # RGBA (e.g. a drawing canvas): composite on white
            alpha = pixels[..., 3:] / 255.0
            pixels = pixels[..., :3] * alpha + 255.0 * (1.0 - alpha)
        pixels = pixels[..., :3] @ np.array([0.299, 0.587, 0.114], np.float32)  # Pillow's "L" weights
    return pixels, scale


def _ink(grey: np.ndarray) -> tuple[np.ndarray, bool, float]:
    """(ink brightness above the paper, float32 >= 0; whether the input was inverted; the paper's noise
    sigma, from the median step between neighbouring pixels, which ink edges hardly move).

    Polarity: the ink is the minority, so it sits in the longer tail of the histogram: dark ink on light
    paper when the median is further from the darkest pixels than from the brightest."""
    low, median, high = np.percentile(grey, [0.5, 50, 99.5])
    inverted = bool(median - low > high - median)
    if inverted:
        grey = 255.0 - grey
    steps = np.abs(np.diff(grey, axis=1)) if grey.shape[1] > 1 else np.abs(np.diff(grey, axis=0))
    noise = float(np.median(steps)) / (0.6745 * np.sqrt(2)) + 1e-3 if steps.size else 1e-3
    return np.maximum(grey - _background(grey), 0.0).astype(np.float32), inverted, noise


def _background(grey: np.ndarray) -> np.ndarray:
    """The paper's brightness: the 25th percentile of each block (ink covers well under 3/4 of a block
    as large as half the shorter side), interpolated bilinearly between block centres."""
    height, width = grey.shape
    block = max(4, min(height, width) // 2)
    rows, cols = -(-height // block), -(-width // block)
    padded = np.pad(grey, ((0, rows * block - height), (0, cols * block - width)), mode="edge")
    tiles = padded.reshape(rows, block, cols, block).transpose(0, 2, 1, 3).reshape(rows, cols, -1)
    grid = np.percentile(tiles, 25, axis=2).astype(np.float32)
    grid = ndimage.median_filter(grid, size=3, mode="nearest")  # a block full of ink takes its neighbours'
    full = Image.fromarray(grid).resize((cols * block, rows * block), Image.Resampling.BILINEAR)
    return np.asarray(full)[:height, :width]


def _mask(ink: np.ndarray, noise: float) -> tuple[np.ndarray, float]:
    """(the ink pixels, the lower threshold): an Otsu threshold of the lightly smoothed ink (at least 4
    noise sigmas) with hysteresis down to 40% of it; specks far smaller than a typical digit are dropped."""
    smooth = ndimage.gaussian_filter(ink, 0.7)
    peak = float(np.percentile(smooth, 99.9))
    if peak < max(6 * noise, 20.0):
        raise HandwritingError(EMPTY)
    high = min(max(_otsu(smooth), 4 * noise), 0.5 * peak)
    # Hysteresis: faint stretches of a stroke stay when they touch solid ink.
    low = max(0.4 * high, 2.5 * noise)
    labels, count = ndimage.label(smooth > low, structure=np.ones((3, 3)))
    solid = np.zeros(count + 1, bool)
    solid[labels[smooth > high]] = True
    areas = np.bincount(labels.ravel(), minlength=count + 1)
    solid[0] = False
    if not solid.any():
        raise HandwritingError(EMPTY)
    # A speck is tiny in area and short: a digit a third of its neighbours' height has a ninth of their
    # ink, a thin 1 that size less still, so area alone would drop it.
    heights = np.zeros(count + 1, np.int64)
    heights[1:] = [s[0].stop - s[0].start for s in ndimage.find_objects(labels)]
    tiny = areas < SPECK * typical_area(areas[solid])
    short = heights < SMALL * typical_height(heights[solid], areas[solid])
    return (solid & ~(tiny & short))[labels], low


def _otsu(values: np.ndarray) -> float:
    hist, edges = np.histogram(values, bins=256, range=(0.0, float(values.max()) + 1e-6))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    mean = np.cumsum(hist * centres)
    total, grand = weight[-1], mean[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (grand * weight - total * mean) ** 2 / (weight * (total - weight))
    return float(centres[np.nanargmax(between[:-1])])


# --------------------------------------------------------------------------- normalisation

def _judge(ink: np.ndarray, labels: np.ndarray, low: float, noise: float, scorer: Scorer):
    """core.segmentation's judge: each candidate piece normalised as the reader would make it, read by
    the scorer in one batch; its top class probability."""
    def judge(box, masks):
        digits = np.stack([_normalise(ink, labels, own, box, _fit_box(ink, own, box, low), noise) for own in masks])
        return np.asarray(scorer(digits), dtype=np.float64).max(axis=1)
    return judge


def _fit_box(ink: np.ndarray, own: np.ndarray, box, low: float) -> tuple[int, int, int, int]:
    """The box MNIST would fit to 20 px: the digit's ink (own: its pixels in box) above the lower
    threshold before smoothing (the mask, made on the smoothed ink, reaches about a pixel further)."""
    x0, y0, x1, y1 = box
    core = own & (ink[y0:y1, x0:x1] > low)
    rows, cols = np.flatnonzero(core.any(axis=1)), np.flatnonzero(core.any(axis=0))
    if len(rows) == 0:
        return box
    return x0 + int(cols[0]), y0 + int(rows[0]), x0 + int(cols[-1]) + 1, y0 + int(rows[-1]) + 1


def _normalise(ink: np.ndarray, labels: np.ndarray, own: np.ndarray, box, fit, noise: float) -> np.ndarray:
    """One digit's ink (own: its pixels in box; other ink is left out) -> uint8 (28, 28): its fit box's
    longer side scaled to 20 px, aspect kept, the anti-aliased rim around it kept, centred by its centre
    of mass, as MNIST did."""
    x0, y0, x1, y1 = fit
    factor = 20.0 / max(y1 - y0, x1 - x0)
    pad = max(RIM, int(np.ceil(3 / factor)))  # at least 3 px on each side of the 20 px box
    top, left = max(0, y0 - pad), max(0, x0 - pad)
    bottom, right = min(ink.shape[0], y1 + pad), min(ink.shape[1], x1 + pad)
    mine = np.zeros((bottom - top, right - left), bool)  # own, seen through the window (box may reach beyond)
    bx0, by0, bx1, by1 = box
    ya, yb, xa, xb = max(top, by0), min(bottom, by1), max(left, bx0), min(right, bx1)
    mine[ya - top:yb - top, xa - left:xb - left] = own[ya - by0:yb - by0, xa - bx0:xb - bx0]
    window = labels[top:bottom, left:right]
    near = ndimage.binary_dilation(mine, iterations=RIM) & ~((window > 0) & ~mine)
    values = np.where(near, ink[top:bottom, left:right], 0.0)
    values[values < 3 * noise] = 0.0
    level = float(np.percentile(values[mine], 90)) if mine.any() else 1.0
    values = np.clip(values / max(level, 1e-6), 0.0, 1.0).astype(np.float32)
    size = (max(1, round(values.shape[1] * factor)), max(1, round(values.shape[0] * factor)))
    small = np.clip(np.asarray(Image.fromarray(values).resize(size, Image.Resampling.BILINEAR)), 0, 1)
    # The rim is kept within 4 px of the 20 px box on each side: a digit under 10 px has a RIM of more
    # than that once scaled, and fitting it into 28 px would squash the digit along its longer side.
    fy, fx = small.shape[0] / values.shape[0], small.shape[1] / values.shape[1]
    r0, c0 = max(0, int((y0 - top) * fy) - 4), max(0, int((x0 - left) * fx) - 4)
    r1, c1 = min(r0 + 28, int(np.ceil((y1 - top) * fy)) + 4), min(c0 + 28, int(np.ceil((x1 - left) * fx)) + 4)
    small = small[r0:r1, c0:c1]
    rows, cols = np.flatnonzero(small.max(axis=1) > 0), np.flatnonzero(small.max(axis=0) > 0)
    if len(rows):  # drop the blank margin, so that the digit can move to its centre of mass
        small = small[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    out = np.zeros((28, 28), np.float32)
    cy, cx = ndimage.center_of_mass(small) if small.sum() > 0 else ((small.shape[0] - 1) / 2, (small.shape[1] - 1) / 2)
    row = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    col = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out[row:row + small.shape[0], col:col + small.shape[1]] = small
    return np.round(out * 255).astype(np.uint8)

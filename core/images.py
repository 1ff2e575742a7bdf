"""Digit images as pictures: a strip of digits, and PNG bytes (Pillow) for downloads and the UI.

Images are MNIST-style: uint8, white digit on black, shape (28, 28).
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image

WRONG_RGB = (239, 68, 68)  # the frame of a misread digit (the dashboard's "bad" red)
RIGHT_RGB = (71, 85, 105)  # a neutral slate frame: visible on light and dark backgrounds


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) grayscale or (H, W, 3) RGB array as PNG bytes."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"png_bytes expects uint8 pixels, got {arr.dtype}")
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"png_bytes expects shape (H, W) or (H, W, 3), got {arr.shape}")
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError("png_bytes expects a non-empty image")
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr)).save(buffer, format="PNG")
    return buffer.getvalue()


def strip_image(images: np.ndarray, wrong: Sequence[bool] | None = None,
                per_row: int = 50, pad: int = 2) -> np.ndarray:
    """Tile (L, 28, 28) digits into an RGB strip, wrapping after `per_row` digits.

    Each digit gets a `pad`-pixel frame: red when `wrong[i]` is true, slate otherwise. Long
    sequences wrap so the PNG stays a readable shape (1000 digits -> 20 rows of 50).
    """
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8 or len(images) == 0:
        raise ValueError(f"strip_image expects non-empty uint8 (L, H, W), got {images.dtype} "
                         f"{images.shape}")
    if per_row < 1:
        raise ValueError("per_row must be at least 1")
    count, h, w = images.shape
    wrong = np.zeros(count, bool) if wrong is None else np.asarray(wrong, bool)
    if wrong.shape != (count,):
        raise ValueError(f"wrong must have one flag per image ({count}), got {wrong.shape}")
    cols = min(per_row, count)
    rows = -(-count // cols)
    cell_h, cell_w = h + 2 * pad, w + 2 * pad
    out = np.zeros((rows * cell_h, cols * cell_w, 3), np.uint8)
    for i in range(count):
        r, c = divmod(i, cols)
        y, x = r * cell_h, c * cell_w
        out[y:y + cell_h, x:x + cell_w] = WRONG_RGB if wrong[i] else RIGHT_RGB
        out[y + pad:y + pad + h, x + pad:x + pad + w] = images[i][:, :, None]
    return out

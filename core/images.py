"""Digit images as pictures: a strip of digits and a dependency-free PNG encoder.

Pure numpy + zlib (no torchvision, no PIL), shared by `scripts/generate` and the dashboard.
Images are MNIST-style: uint8, white digit on black, shape (28, 28).
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence

import numpy as np

WRONG_RGB = (239, 68, 68)  # the frame of a misread digit (the dashboard's "bad" red)
RIGHT_RGB = (71, 85, 105)  # a neutral slate frame: visible on light and dark backgrounds


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) grayscale or (H, W, 3) RGB array as PNG bytes.

    A minimal writer (signature, IHDR, one IDAT, IEND) is enough for these small images and keeps
    the dashboard free of an imaging dependency.
    """
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"png_bytes expects uint8 pixels, got {arr.dtype}")
    if arr.ndim == 2:
        color_type, channels = 0, 1
    elif arr.ndim == 3 and arr.shape[2] == 3:
        color_type, channels = 2, 3
    else:
        raise ValueError(f"png_bytes expects shape (H, W) or (H, W, 3), got {arr.shape}")
    height, width = arr.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("png_bytes expects a non-empty image")
    rows = np.ascontiguousarray(arr).reshape(height, width * channels)
    # Every scanline starts with filter byte 0 ("None").
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(tag + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


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

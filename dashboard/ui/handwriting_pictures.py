"""The pictures and words of the "Write your own" view (dashboard/views/write_your_own.py): the image with a
numbered box per digit, each digit's 28×28 crop enlarged, its top readings, and the collection's folder.

Plain functions of arrays (Pillow, no Streamlit), tested in tests/test_pages_handwriting.py.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, ImageColor, ImageDraw, ImageFont

from core.paths import REPO_ROOT
from dashboard.ui.digit_strip import pct as pct  # the inspector's '93%', '0.4%', '<0.1%'
from dashboard.ui.theme import COLORS

BOX_RGB = ImageColor.getrgb(COLORS["pred"])  # the model's colour: these are the model's digits
MAX_WIDTH = 1400  # a phone photo is shrunk to this width before the boxes are drawn (and sent)


def boxed_image(image: np.ndarray, boxes: np.ndarray, max_width: int = MAX_WIDTH) -> np.ndarray:
    """An RGB copy of `image` with each box (x0, y0, x1, y1) outlined and numbered 1, 2, … in order.

    A wide image is shrunk to `max_width` first, so the outline and number stay visible on a phone photo
    and the page does not carry megapixels. The numbers match the rows under the picture.
    """
    picture = Image.fromarray(np.asarray(image, np.uint8)).convert("RGB")
    scale = min(1.0, max_width / picture.width)
    if scale < 1:
        picture = picture.resize((max(1, round(picture.width * scale)), max(1, round(picture.height * scale))),
                                 Image.Resampling.LANCZOS)
    boxes = np.round(np.asarray(boxes, np.float64).reshape(-1, 4) * scale).astype(int)
    heights = boxes[:, 3] - boxes[:, 1] if len(boxes) else np.array([picture.height // 4])
    size = int(np.clip(0.3 * np.median(heights), 11, 40))  # the number's height, from the digits' own size
    font = ImageFont.load_default(size=size)
    line = max(2, size // 6)
    draw = ImageDraw.Draw(picture)
    for number, (x0, y0, x1, y1) in enumerate(boxes, start=1):
        draw.rectangle((x0 - line, y0 - line, x1 + line, y1 + line), outline=BOX_RGB, width=line)
        text = str(number)
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        w, h = right - left + 2 * line, bottom - top + 2 * line
        tx, ty = x0 - line, y0 - line - h  # the tag sits above the box's corner,
        if ty < 0:  # or left of it, or inside it when the digit touches the image's edges
            tx, ty = (x0 - 2 * line - w, y0 - line) if x0 - 2 * line - w >= 0 else (x0 - line, y0 - line)
        draw.rectangle((tx, ty, tx + w, ty + h), fill=BOX_RGB)
        draw.text((tx + line, ty + line - top), text, fill=(255, 255, 255), font=font)
    return np.asarray(picture)


def enlarge(digit: np.ndarray, scale: int = 3) -> np.ndarray:
    """A 28×28 crop scaled up with nearest-neighbour, so its pixels stay the pixels the model saw."""
    digit = np.asarray(digit, np.uint8)
    return np.asarray(Image.fromarray(digit).resize((digit.shape[1] * scale, digit.shape[0] * scale),
                                                    Image.Resampling.NEAREST))


def top_readings(probs: np.ndarray, k: int = 2) -> list[list[tuple[int, float]]]:
    """Per digit, the model's k most likely readings as (digit, probability), most likely first."""
    probs = np.asarray(probs, np.float64)
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [[(int(d), float(row[d])) for d in top] for row, top in zip(probs, order)]


def readings_text(readings: list[tuple[int, float]]) -> str:
    """'**7** 98%' and under it '2nd 1 · 1.2%' (Markdown): the first reading bold, then the runner-up,
    in the inspector's compact percentages."""
    (first, p1), *rest = readings
    return f"**{first}** {pct(p1)}" + "".join(f"  \n2nd {d} · {pct(p)}" for d, p in rest)


def image_key(digits: np.ndarray) -> str:
    """A short fingerprint of the located digits: the label widgets of a new drawing start afresh."""
    return hashlib.blake2b(np.ascontiguousarray(digits).tobytes(), digest_size=6).hexdigest()


def folder_name(path: Path) -> str:
    """A folder inside the checkout relative to it (collection/), else its full path; with a slash."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else path) + "/"

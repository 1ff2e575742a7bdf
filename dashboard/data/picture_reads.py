"""Digits read from a drawing or an uploaded photo, once per image: a label change reruns the Write your
own view, not the image work (a 12 MP photo takes a second or two). The cache key is the image's id (an
upload's file_id, a canvas drawing's short digest), never the bytes themselves, so a 20 MB upload is not
hashed again on every rerun."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from core.handwriting import Reading
from dashboard.ui import handwriting_pictures


@st.cache_data(max_entries=8, show_spinner=False)
def read_picture(image_id: str, _data: bytes) -> tuple[np.ndarray, Reading]:
    """(the picture with its numbered boxes, the Reading) of the image `image_id`; core's one-line
    ValueError for anything that is not an image or holds no usable digits."""
    image, reading = handwriting_pictures.read_image(_data)
    return handwriting_pictures.boxed_image(image, reading.boxes), reading


def drawing_id(data: bytes) -> str:
    """A canvas drawing changes with every stroke and has no id of its own: a short digest (a canvas is
    under a megabyte)."""
    return "canvas-" + hashlib.blake2b(data, digest_size=8).hexdigest()

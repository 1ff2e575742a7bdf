"""Digits read from a drawing or an uploaded photo, once per image and model: a label change reruns the
Write your own view, not the image work (a 12 MP photo takes a second or two). The cache key is the
image's id (an upload's file_id, a canvas drawing's short digest), never the bytes themselves, so a 20 MB
upload is not hashed again on every rerun. A person's edits of the boxes (merge, split, delete) are read
again from the same image, once per set of boxes."""

from __future__ import annotations

import hashlib

import numpy as np
import streamlit as st

from core.handwriting import Reading, cnn_scorer, load_image, locate_digits, read_boxes
from dashboard.data.checkpoints import FileKey, _predictor
from dashboard.ui import handwriting_pictures


@st.cache_data(max_entries=8, show_spinner=False)
def read_picture(image_id: str, _data: bytes, model: FileKey) -> tuple[np.ndarray, Reading]:
    """(the image, the digits located in it) of the image `image_id`; touching digits are cut where the
    model's CNN reads them best. core's one-line ValueError for anything that is not an image or holds no
    usable digits."""
    image = load_image(_data)
    return image, locate_digits(image, cnn_scorer(_predictor(model)))


@st.cache_data(max_entries=16, show_spinner=False)
def reread(image_id: str, boxes: tuple, _image: np.ndarray) -> Reading:
    """The digits inside a person's boxes of the image `image_id` (core.handwriting.read_boxes)."""
    return read_boxes(_image, np.array(boxes, np.int64).reshape(-1, 4))


@st.cache_data(max_entries=16, show_spinner=False)
def boxed_picture(image_id: str, boxes: tuple, _image: np.ndarray) -> np.ndarray:
    """The image with a numbered box per digit, shrunk for the browser."""
    return handwriting_pictures.boxed_image(_image, np.array(boxes, np.int64).reshape(-1, 4))


def drawing_id(data: bytes) -> str:
    """A canvas drawing changes with every stroke and has no id of its own: a short digest (a canvas is
    under a megabyte)."""
    return "canvas-" + hashlib.blake2b(data, digest_size=8).hexdigest()

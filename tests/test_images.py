"""core.images: digit strips and PNG bytes (Pillow) that decode back to the same pixels."""

import io

import numpy as np
import pytest
from PIL import Image

from core.images import RIGHT_RGB, WRONG_RGB, png_bytes, strip_image


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_png_round_trips_grey_and_rgb_pixels():
    rng = np.random.default_rng(0)
    for shape in ((28, 28), (5, 7, 3)):
        image = rng.integers(0, 256, size=shape, dtype=np.uint8)
        data = png_bytes(image)
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        np.testing.assert_array_equal(decode(data), image)


def test_strip_frames_wrong_digits_in_red_and_wraps_long_rows():
    digits = np.full((3, 28, 28), 255, np.uint8)
    strip = decode(png_bytes(strip_image(digits, [False, True, False])))
    assert strip.shape == (32, 3 * 32, 3)
    assert tuple(strip[0, 32]) == WRONG_RGB and tuple(strip[0, 0]) == RIGHT_RGB and tuple(strip[5, 5]) == (255,) * 3
    assert strip_image(np.zeros((120, 28, 28), np.uint8), per_row=50).shape == (3 * 32, 50 * 32, 3)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros((0, 4), np.uint8)])
def test_png_bytes_refuses_what_is_not_an_image(bad):
    with pytest.raises(ValueError, match="png_bytes expects"):
        png_bytes(bad)

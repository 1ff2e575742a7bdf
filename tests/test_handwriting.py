"""core.handwriting: rows of MNIST test digits, photographed on paper by core.evaluate.robustness.make_row
or drawn white on black, read back with read_digits; every bad input gets one clear line.

A digit read back is matched to the digits placed in its row by image correlation: each must be most
like the digit placed at its own position. Each row holds distinct digits, so the match is unambiguous.
"""

import io

import numpy as np
import pytest
from PIL import Image, ImageFile
from scipy import ndimage

from core import load_predictor
from core.data import load_mnist, split_arrays
from core.evaluate.robustness import make_row
from core.handwriting import (
    EMPTY,
    MAX_DIGITS,
    HandwritingError,
    Reading,
    cnn_scorer,
    load_image,
    locate_digits,
    read_digits,
)


@pytest.fixture(scope="module")
def test_digits():
    return split_arrays(load_mnist(), "test")


@pytest.fixture(scope="module")
def shipped(checkpoint_dir):
    return load_predictor(checkpoint_dir / "default.pt", device="cpu")


def distinct_rows(test_digits, count: int, length: int, seed: int) -> list[np.ndarray]:
    """`count` rows of `length` test digits with distinct labels: arrays of image indices."""
    images, labels = test_digits
    rng = np.random.default_rng(seed)
    by_label = [np.flatnonzero(labels == d) for d in range(10)]
    return [np.array([rng.choice(by_label[d]) for d in rng.choice(10, size=length, replace=False)])
            for _ in range(count)]


def correlation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson correlation of every image in a (n, 28, 28) with every image in b (m, 28, 28), both blurred
    a little first, so a stroke a pixel thicker or further still matches."""
    a = ndimage.gaussian_filter(a.astype(np.float64), (0, 1, 1)).reshape(len(a), -1)
    b = ndimage.gaussian_filter(b.astype(np.float64), (0, 1, 1)).reshape(len(b), -1)
    a = (a - a.mean(1, keepdims=True)) / (a.std(1, keepdims=True) + 1e-9)
    b = (b - b.mean(1, keepdims=True)) / (b.std(1, keepdims=True) + 1e-9)
    return a @ b.T / a.shape[1]


def in_order(read: np.ndarray, placed: np.ndarray) -> bool:
    """Exactly the placed digits, in order: each read digit is most like the one placed at its position."""
    if len(read) != len(placed):
        return False
    match = correlation(read, placed)
    return bool((match.argmax(axis=1) == np.arange(len(placed))).all() and (np.diag(match) > 0.6).all())


@pytest.mark.parametrize("noise, gradient", [(False, False), (True, False), (False, True), (True, True)])
def test_rows_of_test_digits_read_back_in_order(test_digits, noise, gradient):
    images = test_digits[0]
    rng = np.random.default_rng(7)
    rows = distinct_rows(test_digits, 30, 5, seed=int(noise) * 2 + int(gradient))
    right = [in_order(read_digits(make_row(images[r], rng, noise=noise, gradient=gradient)), images[r]) for r in rows]
    assert sum(right) >= 28, f"{30 - sum(right)} of 30 rows misread"  # the benchmark measures ~99% on 1000 rows


def test_a_reading_has_boxes_left_to_right_in_input_pixels(test_digits):
    images = test_digits[0]
    row = make_row(images[distinct_rows(test_digits, 1, 6, seed=3)[0]], np.random.default_rng(3), noise=False,
                   gradient=False)
    paper = int(np.median(row))
    reading = locate_digits(row)
    assert isinstance(reading, Reading) and reading.inverted
    assert reading.digits.dtype == np.uint8 and reading.digits.shape == (6, 28, 28)
    assert reading.boxes.dtype == np.int64 and reading.boxes.shape == (6, 4)
    x0, y0, x1, y1 = reading.boxes.T
    assert (x0 >= 0).all() and (y0 >= 0).all() and (x1 <= row.shape[1]).all() and (y1 <= row.shape[0]).all()
    assert (x0 < x1).all() and (y0 < y1).all() and (np.diff(x0) > 0).all()
    inside = np.zeros(row.shape, bool)
    for a, b, c, d in reading.boxes:
        inside[b:d, a:c] = True
        edges = [row[b:d, a], row[b:d, c - 1], row[b, a:c], row[d - 1, a:c]]
        assert all(edge.min() < paper - 10 for edge in edges)  # tight: ink on every edge
    assert (row[~inside] > paper - 60).all()  # and no dark ink outside the boxes


def test_an_mnist_digit_reads_back_as_itself(test_digits):
    """read_digits follows MNIST's own normalisation: an MNIST image comes back (nearly) unchanged."""
    images = test_digits[0][:50]
    read = [read_digits(image) for image in images]
    single = [i for i, digits in enumerate(read) if len(digits) == 1]
    assert len(single) >= 48
    match = correlation(np.concatenate([read[i] for i in single]), images[single])
    assert np.median(np.diag(match)) > 0.9


def blobs(picture: np.ndarray) -> int:
    """How many blobs of ink (of at least 100 pixels) a photographed row holds."""
    labels, count = ndimage.label(ndimage.median_filter(picture, 3) < np.median(picture) - 30, np.ones((3, 3)))
    return int((np.bincount(labels.ravel())[1:] >= 100).sum())


def test_touching_pairs_are_cut_apart(test_digits):
    images = test_digits[0]
    rng = np.random.default_rng(11)
    rows = distinct_rows(test_digits, 40, 2, seed=11)
    pictures = [make_row(images[r], rng, touching=True) for r in rows]
    joined = [blobs(p) == 1 for p in pictures]
    assert sum(joined) >= 16  # many pairs really touch: one blob of ink
    right = [in_order(read_digits(p), images[r]) for p, r, j in zip(pictures, rows, joined) if j]
    assert sum(right) >= 0.5 * len(right), f"{sum(right)} of {len(right)} touching pairs read"


def test_two_digits_joined_by_a_stroke_are_cut_at_the_stroke(test_digits):
    """A short stroke joins two digits into one blob. The cut is by shape alone, so a pair narrower than
    SPLIT_RATIO times its height (a 1 beside most digits) stays whole, and a short digit beside a tall
    one is not cut off (a wide 4 has a short piece too): about 60% of such pairs come apart right."""
    images = test_digits[0]
    cut = []
    for r in distinct_rows(test_digits, 20, 2, seed=5):
        first, second = (np.flatnonzero(images[k].max(axis=0) > 128) for k in r)
        x = 2 + first[-1] + 4 - second[0]  # white on black, 3 columns of black between the two digits' ink
        canvas = np.zeros((40, x + 32), np.uint8)
        canvas[6:34, 2:30] = images[r[0]]
        canvas[6:34, x:x + 28] = np.maximum(canvas[6:34, x:x + 28], images[r[1]])
        split = 2 + first[-1] + 2
        ends = [(y, np.flatnonzero(canvas[y, :split] > 128), np.flatnonzero(canvas[y, split:] > 128) + split)
                for y in range(12, 28)]
        y, left, right = min((e for e in ends if len(e[1]) and len(e[2])), key=lambda e: e[2][0] - e[1][-1])
        apart = ndimage.label(canvas > 128, structure=np.ones((3, 3)))[1]
        canvas[y:y + 2, left[-1]:right[0] + 1] = 255  # the shortest stroke that joins them
        assert ndimage.label(canvas > 128, structure=np.ones((3, 3)))[1] == apart - 1
        cut.append(in_order(read_digits(canvas), images[r]))
    assert sum(cut) >= 10, f"{sum(cut)} of 20 joined pairs cut apart"  # 12 today: see the docstring


def ink_height(image: np.ndarray) -> int:
    rows = np.flatnonzero(image.max(axis=1) > 64)
    return int(rows[-1] - rows[0] + 1)


def row_with_a_small_digit(images: np.ndarray, small: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Dark ink on noisy paper: MNIST digits drawn `size` px tall, a quarter of that apart, the one at
    index `small` drawn so that its ink is a third as tall as the others' (median), on the line or
    centred on it."""
    others = np.median([ink_height(image) for i, image in enumerate(images) if i != small]) * size / 28
    sizes = [size if i != small else round(others / 3 * 28 / ink_height(image)) for i, image in enumerate(images)]
    ink = np.zeros((size + 20, sum(sizes) + size // 4 * (len(images) + 1)), np.float32)
    x = size // 4
    for image, s in zip(images, sizes):
        y = 10 + (size - s) // 2 if rng.random() < 0.5 else 10 + size - s - size // 10
        ink[y:y + s, x:x + s] = np.asarray(Image.fromarray(image).resize((s, s), Image.Resampling.BILINEAR)) / 255
        x += s + size // 4
    return np.clip(220 - 180 * ink + rng.normal(0, 6, ink.shape), 0, 255).astype(np.uint8)


def test_a_digit_a_third_of_its_neighbours_height_is_kept(test_digits):
    """Marks were dropped by their ink, so a digit a third the height of its neighbours (a ninth of their
    ink) was lost: 1 of these 30 rows was read whole. Now every digit is kept, in order, in all 30."""
    images = test_digits[0]
    rng = np.random.default_rng(13)
    right = []
    for r in distinct_rows(test_digits, 30, 5, seed=13):
        small = int(rng.integers(0, 5))
        row = row_with_a_small_digit(images[r], small, int(rng.integers(45, 90)), rng)
        reading = locate_digits(row)
        heights = reading.boxes[:, 3] - reading.boxes[:, 1]
        right.append(in_order(reading.digits, images[r]) and heights.argmin() == small)
    assert sum(right) >= 28, f"{30 - sum(right)} of 30 rows with a small digit misread"


def test_specks_of_dust_are_still_dropped(test_digits):
    """A speck is tiny in both directions: dots of dust between and around the digits are not read."""
    images = test_digits[0]
    rng = np.random.default_rng(17)
    for r in distinct_rows(test_digits, 10, 4, seed=17):
        row = make_row(images[r], rng, gradient=False)
        paper = int(np.median(row))
        for _ in range(6):  # 2x2 dots, as dark as the ink, in the gaps and margins
            y, x = int(rng.integers(2, row.shape[0] - 4)), int(rng.integers(2, row.shape[1] - 4))
            if (row[y - 2:y + 4, x - 2:x + 4] > paper - 40).all():
                row[y:y + 2, x:x + 2] = 30
        assert len(read_digits(row)) == 4


def test_a_tiny_digit_keeps_its_aspect_ratio():
    """Under 10 px, the faint rim kept around a digit grew past the 28 px frame once scaled and was
    clipped on one axis: a 6 x 4 px ring came out 16 x 13 instead of 20 x 13."""
    for height, width in [(6, 4), (8, 5), (8, 8), (5, 9), (20, 12)]:
        canvas = np.zeros((height + 20, width + 20), np.uint8)
        canvas[10:10 + height, 10:10 + width] = 255
        canvas[11:9 + height, 11:9 + width] = 0  # a ring, one pixel thick
        digit = read_digits(canvas)[0]
        rows, cols = np.flatnonzero(digit.max(axis=1) > 128), np.flatnonzero(digit.max(axis=0) > 128)
        shape = np.array([rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1])
        expected = 20 * np.array([height, width]) / max(height, width)
        assert np.abs(shape - expected).max() <= 1.5, (height, width, shape)


def touching_rows(test_digits, count: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """`count` rows of two MNIST test digits pasted so that their ink overlaps (make_row's touching pairs,
    kept only when the two make one blob of ink): (picture, image indices)."""
    images = test_digits[0]
    rng = np.random.default_rng(seed)
    rows = []
    while len(rows) < count:
        pick = rng.integers(0, len(images), size=2)
        picture = make_row(images[pick], rng, touching=True)
        if blobs(picture) == 1:
            rows.append((picture, pick))
    return rows


def test_the_cnn_cuts_touching_digits_better_than_shape_alone(test_digits, shipped):
    """Candidate cuts read by the shipped CNN: the count is right on far more touching pairs than with
    the cut by shape alone (which cannot cut a pair narrower than SPLIT_RATIO times its height). Measured
    on these 100 rows: 91 with the CNN, 51 by shape, and the CNN names both digits right on 87 (on four
    more sets of 100: 92-95 with the CNN, 54-59 by shape). The misses are mostly a 1 pressed into its
    neighbour, as narrow as one digit."""
    images, labels = test_digits
    rows = touching_rows(test_digits, 100, seed=21)
    scorer = cnn_scorer(shipped)
    by_shape = [len(read_digits(picture)) == 2 for picture, _ in rows]
    readings = [locate_digits(picture, scorer).digits for picture, _ in rows]
    by_cnn = [len(digits) == 2 for digits in readings]
    named = [(scorer(d).argmax(axis=1) == labels[pick]).all() for d, (_, pick), ok in zip(readings, rows, by_cnn) if ok]
    assert sum(by_cnn) >= 88 and sum(by_cnn) >= sum(by_shape) + 30, (sum(by_cnn), sum(by_shape))
    assert sum(named) >= 84, f"{sum(named)} of 100 touching pairs read as the right digits"


def test_the_cnn_leaves_single_digits_and_spaced_rows_whole(test_digits, shipped):
    """The CNN reads half a 0 as a confident 1, so shape weighs in: single digits stay whole (99 of these
    100 measured) and spaced rows read in order (20 of 20)."""
    images = test_digits[0]
    rng = np.random.default_rng(23)
    rows = distinct_rows(test_digits, 20, 5, seed=23)
    right = [in_order(read_digits(make_row(images[r], rng), shipped), images[r]) for r in rows]
    assert sum(right) >= 19, f"{20 - sum(right)} of 20 rows misread with the CNN"
    alone = [len(read_digits(image, shipped)) for image in images[:100]]
    assert alone.count(1) >= 98


def test_read_digits_with_a_predictor_is_locate_digits_with_its_scorer(test_digits, shipped):
    picture, _ = touching_rows(test_digits, 1, seed=29)[0]
    np.testing.assert_array_equal(read_digits(picture, shipped), locate_digits(picture, cnn_scorer(shipped)).digits)
    probs = cnn_scorer(shipped)(test_digits[0][:3])
    assert probs.shape == (3, 10) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)


def test_canvas_white_on_black_and_rgb_input(test_digits):
    images = test_digits[0]
    for r in distinct_rows(test_digits, 5, 4, seed=9):
        canvas = np.zeros((200, 800), np.uint8)
        for i, k in enumerate(r):
            canvas[10:190, 200 * i + 10:200 * i + 190] = np.asarray(Image.fromarray(images[k]).resize((180, 180)))
        reading = locate_digits(canvas)
        assert not reading.inverted and in_order(reading.digits, images[r])
        assert (reading.boxes[:, 0] // 200 == np.arange(4)).all()  # each box in the cell its digit was drawn in
        rgb = np.stack([canvas] * 3, axis=-1)
        np.testing.assert_array_equal(read_digits(rgb), reading.digits)
        rgba = np.concatenate([rgb, np.full((200, 800, 1), 255, np.uint8)], axis=-1)
        np.testing.assert_array_equal(read_digits(rgba), reading.digits)


def test_load_image_decodes_png_jpeg_and_paths(tmp_path, test_digits):
    row = make_row(test_digits[0][:3], np.random.default_rng(0))
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(row).save(buffer, format=fmt, quality=95)
        loaded = load_image(buffer.getvalue())
        assert loaded.dtype == np.uint8 and loaded.shape == row.shape
        assert np.abs(loaded.astype(int) - row).mean() < 3
        assert len(read_digits(loaded)) == 3
    path = tmp_path / "row.png"
    Image.fromarray(row).convert("RGB").save(path)
    assert load_image(path).shape == row.shape + (3,) and load_image(str(path)).shape == row.shape + (3,)


def test_load_image_applies_exif_orientation_and_composites_alpha_on_white():
    picture = Image.new("RGB", (30, 10), (255, 255, 255))
    exif = picture.getexif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    buffer = io.BytesIO()
    picture.save(buffer, format="JPEG", exif=exif.tobytes())
    assert load_image(buffer.getvalue()).shape == (30, 10, 3)
    clear = np.zeros((10, 10, 4), np.uint8)
    clear[4:6, :, 3] = 255  # a black bar on a transparent sheet
    buffer = io.BytesIO()
    Image.fromarray(clear).save(buffer, format="PNG")
    loaded = load_image(buffer.getvalue())
    assert loaded.shape == (10, 10, 3) and loaded[0].min() == 255 and loaded[5].max() == 0


def one_line_error(call, *args, match: str) -> str:
    with pytest.raises(ValueError, match=match) as caught:
        call(*args)
    assert isinstance(caught.value, HandwritingError) and "\n" not in str(caught.value)
    return str(caught.value)


@pytest.mark.parametrize("bad, match", [
    ([[0, 255]], r"image must be a uint8 array .*; got list"),
    (np.zeros((10, 10)), r"image must be a uint8 array .*; got float64 \(10, 10\)"),
    (np.zeros(10, np.uint8), r"got uint8 \(10,\)"),
    (np.zeros((10, 10, 2), np.uint8), r"got uint8 \(10, 10, 2\)"),
    (np.zeros((0, 10), np.uint8), r"at least one pixel; got shape \(0, 10\)"),
])
def test_arrays_that_are_not_images_are_refused(bad, match):
    one_line_error(read_digits, bad, match=match)


@pytest.mark.parametrize("blank", [np.full((80, 200), 255, np.uint8), np.zeros((80, 200, 3), np.uint8),
                                   np.random.default_rng(0).normal(200, 4, (80, 200)).clip(0, 255).astype(np.uint8)])
def test_an_empty_image_says_so(blank):
    assert one_line_error(read_digits, blank, match="no digits found") == EMPTY


def test_more_than_200_digits_are_refused(test_digits):
    images = test_digits[0][:231]
    canvas = np.zeros((28, 231 * 30), np.uint8)
    for i, image in enumerate(images):
        canvas[:, 30 * i:30 * i + 28] = image
    one_line_error(read_digits, canvas, match=f"found 231 digits; at most {MAX_DIGITS} per image")


def test_images_over_20_megapixels_are_refused_before_decoding(monkeypatch):
    huge = np.broadcast_to(np.uint8(255), (5000, 4001))  # 20.0 MP without the memory
    one_line_error(read_digits, huge, match=r"20\.0 MP \(4001 x 5000\); at most 20 MP")
    buffer = io.BytesIO()
    Image.new("1", (4001, 5000), 1).save(buffer, format="PNG")
    assert Image.MAX_IMAGE_PIXELS is not None  # Pillow's decompression-bomb guard stays on

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)
    one_line_error(load_image, buffer.getvalue(), match=r"at most 20 MP")


def test_pillows_decompression_bomb_guard_is_on(monkeypatch):
    buffer = io.BytesIO()
    Image.new("L", (60, 50), 255).save(buffer, format="PNG")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow warns above this, and refuses above twice it
    one_line_error(load_image, buffer.getvalue(), match="the image is too large")


@pytest.mark.parametrize("data, match", [
    (b"not an image at all", "not an image: expected PNG, JPEG"),
    (b"%PDF-1.4 a document", "not an image"),
    (42, "expected image bytes or a file path; got int"),
    ("/no/such/file.png", "image file not found"),
])
def test_bytes_and_paths_that_are_not_images_are_refused(data, match):
    one_line_error(load_image, data, match=match)


def test_a_truncated_png_is_refused_with_one_line():
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)).save(buffer, format="PNG")
    one_line_error(load_image, buffer.getvalue()[:200], match="could not decode the image")


def test_read_boxes_follows_a_persons_merge_split_and_delete():
    from core.handwriting import read_boxes

    digits = split_arrays(load_mnist(), "test")[0][:3]
    row = np.zeros((40, 40 * 3), np.uint8)
    for i, d in enumerate(digits):
        row[6:34, 40 * i + 6:40 * i + 34] = d
    reading = locate_digits(row)
    assert len(reading.digits) == 3
    again = read_boxes(row, reading.boxes)
    differ = again.digits != reading.digits  # the same boxes read the same digits (but a rim pixel or two)
    assert differ.mean() < 0.005
    merged = np.array([[*reading.boxes[0][:2], *reading.boxes[1][2:]], reading.boxes[2]])
    assert read_boxes(row, merged).digits.shape == (2, 28, 28)  # two digits read as one, and the third
    assert read_boxes(row, reading.boxes[1:]).digits.shape == (2, 28, 28)  # the first deleted
    x0, y0, x1, y1 = reading.boxes[0]
    split = np.array([[x0, y0, (x0 + x1) // 2, y1], [(x0 + x1) // 2, y0, x1, y1]])
    assert read_boxes(row, split).digits.shape == (2, 28, 28)
    for bad, message in (([], "no box"), ([[0, 0, 500, 10]], "outside"), ([[36, 0, 40, 3]], "no ink")):
        with pytest.raises(HandwritingError, match=message):
            read_boxes(row, bad)

"""core.evaluate.robustness: MNIST-C-style corruptions, photographed rows of test digits, and the two
measurements the benchmark reports, on small subsets with the shipped model."""

import numpy as np
import pytest
from scipy import ndimage

from core import load_predictor
from core.data import load_mnist, split_arrays
from core.evaluate.robustness import CORRUPTIONS, corruption_accuracy, make_row, row_reading
from core.handwriting import HandwritingError


@pytest.fixture(scope="module")
def images():
    return split_arrays(load_mnist(), "test")[0][:64]


@pytest.fixture(scope="module")
def shipped(checkpoint_dir):
    return load_predictor(checkpoint_dir / "default.pt", device="cpu")


def test_the_issue_names_every_corruption():
    assert {"thicken", "thin", "shear", "scale", "translate", "blur", "noise"} <= set(CORRUPTIONS)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_each_corruption_changes_images_keeps_their_form_and_is_seeded(images, name):
    corrupt = CORRUPTIONS[name]
    out = corrupt(images, np.random.default_rng(1))
    assert out.dtype == np.uint8 and out.shape == images.shape
    assert all(not np.array_equal(a, b) for a, b in zip(out, images))  # every image changes
    np.testing.assert_array_equal(corrupt(images, np.random.default_rng(1)), out)
    assert np.array_equal(images, split_arrays(load_mnist(), "test")[0][:64])  # the input is untouched


def test_corruptions_do_what_their_names_say(images):
    rng = np.random.default_rng(0)
    ink = images.astype(float).sum()
    assert CORRUPTIONS["thicken"](images, rng).astype(float).sum() > 1.3 * ink
    assert CORRUPTIONS["thin"](images, rng).astype(float).sum() < 0.9 * ink
    inked = (images > 64).sum()
    assert (CORRUPTIONS["scale"](images, rng) > 64).sum() < 0.7 * inked  # 0.7 of the size: about half the area
    assert CORRUPTIONS["blur"](images, rng).max(axis=(1, 2)).mean() < images.max(axis=(1, 2)).mean() - 30
    moved = CORRUPTIONS["translate"](images, rng)
    shift = np.array([np.subtract(ndimage.center_of_mass(b.astype(float)), ndimage.center_of_mass(a.astype(float)))
                      for a, b in zip(images, moved)])
    assert (np.abs(np.abs(shift) - 3) < 0.1).mean() > 0.8  # 3 px each way (ink pushed off the edge moves less)
    noisy = CORRUPTIONS["noise"](images, rng).astype(float) - images
    assert 25 < noisy[images == 0].std() < 45  # 0.18 of the range, clipped at black
    sheared = [CORRUPTIONS["shear"](images[:1], np.random.default_rng(s))[0] for s in range(8)]
    assert len({s.tobytes() for s in sheared}) == 2  # left or right, at one fixed angle


def test_corruption_accuracy_on_a_small_subset(shipped):
    result = corruption_accuracy(shipped, seed=0, limit=300)
    assert set(result) == set(CORRUPTIONS) | {"clean", "mean"}
    assert result["clean"] >= 0.95
    shares = np.array([result[n] for n in ("clean", *CORRUPTIONS)]) * 300
    np.testing.assert_allclose(shares, np.round(shares), atol=1e-9)  # each a share of the 300 images
    assert result["mean"] == pytest.approx(np.mean([result[n] for n in CORRUPTIONS]))
    assert result["mean"] > 0.7 and min(result[n] for n in CORRUPTIONS) < result["clean"]
    assert corruption_accuracy(shipped, seed=0, limit=300) == result  # seeded


def test_make_row_is_a_seeded_photo_of_dark_ink_on_paper(images):
    row = make_row(images[:5], np.random.default_rng(3))
    assert row.dtype == np.uint8 and row.ndim == 2 and 28 <= row.shape[0] <= 64 + 24
    np.testing.assert_array_equal(make_row(images[:5], np.random.default_rng(3)), row)
    assert np.median(row) > 120 and row.min() < np.median(row) - 80  # light paper, dark ink
    assert make_row(images[:10], np.random.default_rng(3)).shape[1] > row.shape[1]
    plain = make_row(images[:5], np.random.default_rng(3), noise=False, gradient=False)
    border = np.concatenate([plain[0], plain[-1], plain[:, 0], plain[:, -1]])
    assert border.min() == border.max()  # no noise, no gradient: an even sheet
    shaded = make_row(images[:5], np.random.default_rng(3), noise=False)
    assert shaded[0].max() > shaded[0].min()  # a gradient across the sheet
    with pytest.raises(ValueError, match=r"digits must be a non-empty uint8 array \(L, 28, 28\)"):
        make_row(images[:3].astype(np.float32), np.random.default_rng(0))


def test_row_reading_on_a_few_rows(shipped):
    result = row_reading(shipped, n_rows=30, length=5, seed=0)
    assert result["n_rows"] == 30 and result["length"] == 5
    assert result["count_accuracy"] >= 0.9
    assert result["sum_exact"] >= 0.8 and result["sum_exact"] <= result["count_accuracy"]
    assert result["digit_accuracy"] >= 0.95


def test_count_accuracy_is_the_share_of_rows_read_in_full(shipped, monkeypatch):
    """On touching rows, count_accuracy is exactly the share of rows where the reader found both digits;
    a planted misreading (one digit dropped from one row) lowers it by exactly one row."""
    from core.evaluate import robustness

    real, counts = robustness.read_digits, []

    def recording(row):
        try:
            digits = real(row)
        except HandwritingError:
            counts.append(0)
            raise
        counts.append(len(digits))
        return digits

    monkeypatch.setattr(robustness, "read_digits", recording)
    touching = row_reading(shipped, n_rows=10, length=2, seed=0, touching=True)
    assert touching["touching"] and len(counts) == 10
    assert touching["count_accuracy"] == np.mean(np.array(counts) == 2)
    misread = []

    def misread_once(row):  # the first row read in full loses a digit
        digits = real(row)
        if len(digits) == 2 and not misread:
            misread.append(row)
            return digits[:1]
        return digits

    monkeypatch.setattr(robustness, "read_digits", misread_once)
    planted = row_reading(shipped, n_rows=10, length=2, seed=0, touching=True)
    assert misread and planted["count_accuracy"] == pytest.approx(touching["count_accuracy"] - 0.1)

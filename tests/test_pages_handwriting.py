"""The "Write your own" view through AppTest (tests/test_pages.py's router pattern), and its picture helpers.

The upload path gets a PNG made here: a few MNIST test digits, inverted to dark ink and pasted on white
paper at three times their size, the way a photo of handwriting looks. The shipped model must find them,
read them and sum them right; a corrected label is saved to a private collection folder
($DIGITSUM_COLLECTION_DIR) and comes back from core.collection with the correction.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core.data import load_mnist, split_arrays
from core.paths import REPO_ROOT
from dashboard.ui import handwriting_pictures
from tests.test_pages import by_label, open_page

VIEW = "views/write_your_own.py"
WANTED = (3, 5, 8)  # digits whose sum (16) a misreading would change


@pytest.fixture
def env(checkpoint_dir, registry, monkeypatch, tmp_path):
    """The shipped model in the dashboard's checkpoint folder; an empty private collection folder."""
    monkeypatch.setenv("DIGITSUM_CHECKPOINT_DIR", str(checkpoint_dir))
    monkeypatch.setenv("DIGITSUM_COLLECTION_DIR", str(tmp_path / "collection"))
    return checkpoint_dir


@pytest.fixture(scope="module")
def clear_digits(checkpoint_dir) -> tuple[np.ndarray, list[int]]:
    """The first test image of each WANTED digit that the shipped model reads right with ≥ 99.9%."""
    from core import load_predictor

    images, labels = split_arrays(load_mnist(), "test")
    images, labels = images[:300], labels[:300]
    probs = load_predictor(checkpoint_dir / "default.pt", device="cpu").predict_digits(images[None])[0]
    chosen = [next(i for i in range(len(labels)) if labels[i] == d and probs[i, d] >= 0.999) for d in WANTED]
    return images[chosen], [int(labels[i]) for i in chosen]


def paper_png(digits: np.ndarray, scale: int = 3, gap: int = 40) -> bytes:
    """Dark digits on light paper: each MNIST digit inverted, enlarged and pasted side by side."""
    size = 28 * scale
    paper = np.full((size + 2 * gap, gap + len(digits) * (size + gap)), 245, np.uint8)  # off-white
    for i, digit in enumerate(digits):
        ink = np.asarray(Image.fromarray(255 - digit).resize((size, size), Image.Resampling.BILINEAR))
        x = gap + i * (size + gap)
        paper[gap:gap + size, x:x + size] = np.minimum(paper[gap:gap + size, x:x + size], ink)
    buffer = io.BytesIO()
    Image.fromarray(paper).convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()


def upload(at, name: str, data: bytes, mime: str = "image/png"):
    by_label(at.radio, "Source").set_value("Upload a photo").run()
    assert not at.exception, [e.value for e in at.exception]
    by_label(at.file_uploader, "A photo of handwritten digits (PNG or JPEG)").set_value((name, data, mime)).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def label_boxes(at) -> list:
    return [s for s in at.selectbox if s.label.startswith("Label of digit ")]


# ----------------------------------------------------------------------------- the view

def sum_metrics(at) -> list:
    """The metrics of the reading (the collection tab has metrics of its own)."""
    return [m for m in at.metric if m.label in ("Predicted sum", "Sum of your labels", "P(exact)", "95% interval")]


def test_the_canvas_starts_empty_with_a_hint(env):
    at = open_page(VIEW)
    assert [t.value for t in at.title] == ["Write your own"]
    assert by_label(at.radio, "Source").value == "Draw"
    assert [i.value for i in at.info] == ["Draw a few digits above."]
    assert not at.error and not sum_metrics(at)
    assert by_label(at.metric, "Digits saved").value == "0"  # the collection tab, drawn whatever the canvas holds
    assert by_label(at.button, "Train a personal model from dashboard_checkpoints0/default.pt").disabled


def test_an_uploaded_photo_is_read_and_summed(env, clear_digits):
    digits, truth = clear_digits
    at = upload(open_page(VIEW), "digits.png", paper_png(digits))
    assert not at.error
    [picture, *crops] = at.image  # the photo with its boxes, then one crop per digit
    assert f"{len(truth)} digits found" in picture.captions[0]
    assert "inverted" in picture.captions[0]  # dark on light: core flipped it to MNIST's polarity
    assert [c.captions[0] for c in crops] == [f"#{i + 1}" for i in range(len(truth))]
    assert [s.value for s in label_boxes(at)] == truth  # each label starts at the model's first reading
    assert any(m.value.startswith(f"**{truth[0]}** ") and "\n2nd " in m.value for m in at.markdown)
    predicted = float(by_label(at.metric, "Predicted sum").value)
    assert round(predicted) == sum(truth) == int(by_label(at.metric, "Sum of your labels").value)
    assert by_label(at.metric, "P(exact)").value.endswith("%")
    lo, hi = (int(v) for v in by_label(at.metric, "95% interval").value.split("–"))
    assert lo <= sum(truth) <= hi
    assert by_label(at.metric, "Digits saved").value == "0"


def test_a_corrected_label_is_saved_to_the_collection(env, clear_digits):
    from core.collection import load_collection
    from core.handwriting import load_image, locate_digits

    digits, truth = clear_digits
    png = paper_png(digits)
    at = upload(open_page(VIEW), "digits.png", png)
    wrong = (truth[1] + 1) % 10  # say the user knows better for digit 2
    label_boxes(at)[1].set_value(wrong).run()
    assert int(by_label(at.metric, "Sum of your labels").value) == sum(truth) - truth[1] + wrong
    assert any("1 corrected" in c.value for c in at.caption)
    assert by_label(at.button, "Save corrected digits to my collection").disabled  # labels not confirmed yet
    by_label(at.checkbox, "I have checked every label").check().run()
    by_label(at.button, "Save corrected digits to my collection").click().run()
    assert not at.exception
    [done] = at.success
    assert done.value.startswith(f"Saved {len(truth)} digits to ") and "collection" in done.value
    assert by_label(at.metric, "Digits saved").value == str(len(truth))
    assert by_label(at.button, "Save corrected digits to my collection").disabled  # never the same twice

    images, labels = load_collection()
    assert list(labels) == [truth[0], wrong, truth[2]]
    np.testing.assert_array_equal(images, locate_digits(load_image(png)).digits)  # the crops the model saw


def test_a_file_that_is_not_an_image_gets_one_line(env):
    at = upload(open_page(VIEW), "photo.png", b"these bytes are not a picture")
    [error] = at.error
    assert error.value.startswith("Cannot read digits from this image: ") and "\n" not in error.value
    assert not sum_metrics(at) and not label_boxes(at)


def test_a_blank_photo_gets_one_line(env):
    blank = io.BytesIO()
    Image.new("RGB", (300, 120), (250, 250, 250)).save(blank, format="JPEG")
    at = upload(open_page(VIEW), "blank.jpg", blank.getvalue(), "image/jpeg")
    [error] = at.error
    assert error.value.startswith("Cannot read digits from this image: ") and "\n" not in error.value
    assert not sum_metrics(at)


# ----------------------------------------------------------------------------- the picture helpers

def test_boxed_image_numbers_each_box_in_the_model_colour():
    image = np.zeros((100, 200), np.uint8)
    boxes = np.array([[20, 30, 60, 90], [120, 30, 160, 90]])
    out = handwriting_pictures.boxed_image(image, boxes)
    assert out.shape == (100, 200, 3) and out.dtype == np.uint8
    assert tuple(out[60, 18]) == handwriting_pictures.BOX_RGB and tuple(out[60, 162]) == handwriting_pictures.BOX_RGB  # left and right outlines
    assert tuple(out[60, 90]) == (0, 0, 0)  # between the boxes: untouched
    assert (out[:30, 20:60] == handwriting_pictures.BOX_RGB).all(axis=2).any()  # the number's tag above the first box
    high = handwriting_pictures.boxed_image(image, np.array([[80, 2, 120, 98]]))  # no room above: the tag goes left of the box
    assert (high[:, :76] == handwriting_pictures.BOX_RGB).all(axis=2).any() and not (high[:, 130:] == handwriting_pictures.BOX_RGB).all(axis=2).any()


def test_boxed_image_shrinks_a_wide_photo_and_its_boxes():
    image = np.full((500, 2000, 3), 255, np.uint8)
    out = handwriting_pictures.boxed_image(image, np.array([[1000, 200, 1200, 400]]), max_width=500)
    assert out.shape == (125, 500, 3)
    assert tuple(out[75, 248]) == handwriting_pictures.BOX_RGB  # the outline moved with the image: x0 1000 -> 250


def test_enlarge_keeps_the_pixels_and_top_readings_sort_them():
    digit = np.arange(28 * 28, dtype=np.uint8).reshape(28, 28)
    np.testing.assert_array_equal(handwriting_pictures.enlarge(digit, 3), np.kron(digit, np.ones((3, 3), np.uint8)))
    probs = np.array([[0.1, 0.7, 0.2] + [0] * 7, [0] * 9 + [1.0]])
    assert handwriting_pictures.top_readings(probs) == [[(1, 0.7), (2, 0.2)], [(9, 1.0), (0, 0.0)]]
    assert handwriting_pictures.readings_text([(1, 0.7), (2, 0.004)]) == "**1** 70%  \n2nd 2 · 0.4%"
    assert handwriting_pictures.image_key(digit) == handwriting_pictures.image_key(digit.copy()) != handwriting_pictures.image_key(digit[::-1])
    assert handwriting_pictures.folder_name(REPO_ROOT / "collection") == "collection/"
    assert handwriting_pictures.folder_name(Path("/srv/digits")) == "/srv/digits/"


def test_an_image_is_read_once_per_id_and_its_bytes_are_not_the_key(clear_digits, checkpoint_dir):
    from dashboard import data

    digits, _ = clear_digits
    model = data.file_key(checkpoint_dir / "default.pt")
    first = data.read_picture("upload-test-id", paper_png(digits), model)
    again = data.read_picture("upload-test-id", b"other bytes: never read, the id decides", model)
    assert again is first or (np.array_equal(again[0], first[0]) and again[1].digits.shape == first[1].digits.shape)
    assert data.drawing_id(b"abc") == data.drawing_id(b"abc") != data.drawing_id(b"abd")


def test_uploads_are_capped_at_20_mb_and_the_duplication_warning_is_off():
    import tomllib

    from core.paths import REPO_ROOT

    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == 20
    assert config["global"]["disableWidgetStateDuplicationWarning"] is True


def test_boxes_can_be_merged_split_and_deleted_before_saving(env, clear_digits):
    digits, truth = clear_digits
    at = upload(open_page(VIEW), "digits.png", paper_png(digits))
    assert len(label_boxes(at)) == len(truth)
    by_label(at.selectbox, "Box").set_value(1).run()
    by_label(at.button, "Merge with the next").click().run()
    assert not at.exception and len(label_boxes(at)) == len(truth) - 1  # two digits read as one
    assert f"{len(truth) - 1} digits found" in at.image[0].captions[0]
    by_label(at.button, "Split in two").click().run()
    assert not at.exception and len(label_boxes(at)) == len(truth)
    by_label(at.button, "Delete").click().run()
    assert not at.exception and len(label_boxes(at)) == len(truth) - 1
    by_label(at.button, "Start over").click().run()
    assert [s.value for s in label_boxes(at)] == truth  # the boxes that were found, read as before


def test_the_box_edits_themselves():
    from dashboard.views.box_editor import edited

    boxes = [(0, 0, 10, 10), (12, 0, 20, 10), (30, 0, 40, 10)]
    assert edited(boxes, "merge", 0) == [(0, 0, 20, 10), (30, 0, 40, 10)]
    assert edited(boxes, "merge", 2) == boxes  # nothing after the last
    assert edited(boxes, "split", 0) == [(0, 0, 5, 10), (5, 0, 10, 10), (12, 0, 20, 10), (30, 0, 40, 10)]
    assert edited(boxes, "delete", 1) == [(0, 0, 10, 10), (30, 0, 40, 10)]
    assert edited(boxes[:1], "delete", 0) == boxes[:1]  # one box always stays


def test_the_personal_model_button_launches_a_personal_run_from_the_selected_model(env, no_spawn):
    from core import runs
    from core.collection import load_collection, save_digits
    from core.data import load_mnist, split_arrays

    images, labels = split_arrays(load_mnist(), "val_select")
    for start in range(0, 60, 6):  # ten saves: about two held out, the rest (over 20 digits) to train on
        save_digits(images[start:start + 6], labels[start:start + 6].astype(np.int64), source="test")
    at = open_page(VIEW)
    assert by_label(at.metric, "Digits saved").value == "60"
    assert by_label(at.metric, "Held out").value == str(len(load_collection("holdout")[1]))
    button = by_label(at.button, "Train a personal model from dashboard_checkpoints0/default.pt")
    assert not button.disabled
    by_label(at.toggle, "Quick check").set_value(True).run()
    by_label(at.button, "Train a personal model from dashboard_checkpoints0/default.pt").click().run()
    assert not at.exception and "is training a personal model" in at.success[0].value
    [run] = runs.list_runs()
    assert run.preset == "personal" and run.status == "queued"
    assert run.overrides["init_from"] == str(env / "default.pt") and run.overrides["train_subset"] == 2000
    assert no_spawn  # handed to a supervisor (recorded here instead of started)

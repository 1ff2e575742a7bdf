"""core.collection: the local collection of hand-labelled digits, saved atomically one file per save,
and read back as the extra split "mine"."""

import numpy as np
import pytest

from core import collection
from core.collection import load_collection, save_digits
from core.data import load_mnist, split_arrays
from core.paths import REPO_ROOT, collection_dir


@pytest.fixture
def folder(tmp_path, monkeypatch):
    path = tmp_path / "collection"
    monkeypatch.setenv("DIGITSUM_COLLECTION_DIR", str(path))
    return path


def digits(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(count, 28, 28), dtype=np.uint8)


def test_the_folder_follows_the_environment(folder, monkeypatch):
    assert collection_dir() == folder
    monkeypatch.delenv("DIGITSUM_COLLECTION_DIR")
    assert collection_dir() == REPO_ROOT / "collection"


def test_an_empty_collection_is_two_empty_arrays(folder):
    images, labels = load_collection()
    assert images.shape == (0, 28, 28) and images.dtype == np.uint8
    assert labels.shape == (0,) and labels.dtype == np.uint8
    assert not folder.exists()  # reading never creates the folder


def test_saves_round_trip_in_order(folder):
    first = save_digits(digits(3, 1), np.array([1, 2, 3]), source="canvas")
    second = save_digits(digits(2, 2), [9, 0], source="photo")
    assert first.parent == folder and second.parent == folder and first != second
    assert sorted(p.name for p in folder.iterdir()) == sorted([first.name, second.name])  # nothing else
    images, labels = load_collection()
    np.testing.assert_array_equal(images, np.concatenate([digits(3, 1), digits(2, 2)]))
    np.testing.assert_array_equal(labels, [1, 2, 3, 9, 0])
    assert labels.dtype == np.uint8


def test_a_failed_save_leaves_nothing_behind(folder, monkeypatch):
    save_digits(digits(2), [4, 5])
    before = sorted(folder.iterdir())

    def broken(handle, **arrays):
        handle.write(b"half a file")
        raise OSError("disk full")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(collection.np, "savez", broken)
        save_digits(digits(3), [1, 2, 3])
    assert sorted(folder.iterdir()) == before  # no partial file, no temp file
    np.testing.assert_array_equal(load_collection()[1], [4, 5])


@pytest.mark.parametrize("images, labels, source, match", [
    (digits(2).astype(np.float32), [1, 2], "canvas", r"digits must be a non-empty uint8 array \(L, 28, 28\)"),
    (np.zeros((2, 20, 20), np.uint8), [1, 2], "canvas", r"got uint8 \(2, 20, 20\)"),
    (np.zeros((0, 28, 28), np.uint8), [], "canvas", "non-empty"),
    (digits(2), [1], "canvas", "labels must be 2 integers, one per digit"),
    (digits(2), [1.0, 2.0], "canvas", "labels must be 2 integers"),
    (digits(2), [1, 10], "canvas", "labels must be digits 0-9"),
    (digits(2), [1, 2], "", "source must be a short one-line name"),
    (digits(2), [1, 2], "two\nlines", "source must be"),
])
def test_bad_input_is_refused_and_nothing_is_written(folder, images, labels, source, match):
    with pytest.raises(ValueError, match=match) as caught:
        save_digits(images, np.asarray(labels), source=source)
    assert "\n" not in str(caught.value)
    assert not folder.exists() or not any(folder.iterdir())


def test_a_damaged_file_is_skipped_with_a_warning_that_names_it(folder):
    save_digits(digits(2), [3, 4])
    (folder / "digits-00000000T000000000000Z-dead.npz").write_bytes(b"not an npz")
    with pytest.warns(UserWarning, match="skipped digits-00000000T000000000000Z-dead.npz"):
        images, labels = load_collection()
    np.testing.assert_array_equal(labels, [3, 4])
    assert images.shape == (2, 28, 28)


def test_the_collection_is_the_split_mine(folder):
    mnist = load_mnist()
    assert len(split_arrays(mnist, "mine")[0]) == 0
    save_digits(digits(4), [0, 1, 2, 3])
    images, labels = split_arrays(mnist, "mine")
    np.testing.assert_array_equal(images, digits(4))
    np.testing.assert_array_equal(labels, [0, 1, 2, 3])
    assert len(split_arrays(mnist, "test")[0]) == 10000 and len(split_arrays(mnist, "val")[0]) == 5000
    with pytest.raises(ValueError, match="expected one of train, val, test, val_select, val_calib, mine"):
        split_arrays(mnist, "yours")


def test_the_mine_split_is_never_served_stale_from_the_logits_cache(folder, checkpoint_dir):
    """The disk cache keys MNIST splits on the data checksum; the collection changes with every save, so
    its logits are computed afresh, even when a new collection has as many digits as the old one."""
    import shutil

    from core import load_predictor

    predictor = load_predictor(checkpoint_dir / "default.pt", device="cpu")
    test_images = split_arrays(load_mnist(), "test")[0]
    save_digits(test_images[:3], [7, 2, 1])
    first = predictor.split_logits("mine")
    shutil.rmtree(folder)
    save_digits(test_images[3:6], [0, 4, 1])  # as many digits, other images
    second = predictor.split_logits("mine")
    np.testing.assert_allclose(second, predictor.cnn_logits(test_images[3:6]).numpy(), atol=1e-5)
    assert not np.allclose(first, second)


def test_training_reads_the_train_part_with_the_standing_label_decisions(folder, tmp_path, monkeypatch):
    from core.collection import holdout_names, training_digits
    from core.data.decisions import record_decision

    monkeypatch.setenv("DIGITSUM_DECISIONS_DIR", str(tmp_path / "decisions"))
    saved = [save_digits(np.full((3, 28, 28), i + 1, np.uint8), [i % 10] * 3) for i in range(8)]
    names = sorted(path.name for path in saved)
    held = holdout_names(names)
    train_rows = [3 * i + j for i, name in enumerate(names) if name not in held for j in range(3)]
    held_rows = [3 * i for i, name in enumerate(names) if name in held]
    images, labels = load_collection()
    record_decision("mine", train_rows[0], "exclude")
    record_decision("mine", train_rows[1], "relabel", label=(int(labels[train_rows[1]]) + 5) % 10)
    record_decision("mine", train_rows[2], "keep")
    record_decision("mine", held_rows[0], "exclude")  # about a held-out digit: training never reads it anyway
    found_images, found_labels, decisions = training_digits()
    np.testing.assert_array_equal(found_images, images[train_rows[1:]])
    np.testing.assert_array_equal(found_labels[0], (labels[train_rows[1]] + 5) % 10)
    np.testing.assert_array_equal(found_labels[1:], labels[train_rows[2:]])
    assert decisions == 3  # the exclusion, the relabel and the keep of train digits
    np.testing.assert_array_equal(load_collection("train")[1], labels[train_rows])  # load_collection: as saved

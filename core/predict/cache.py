"""A persistent cache of the CNN's raw logits on whole splits, so a checkpoint's CNN reads each split once.

One file per (checkpoint content, MNIST data, split) in core.paths.cache_dir() ($DIGITSUM_CACHE_DIR,
else cache/, gitignored): `logits-<checkpoint sha256[:24]>-<data checksum>-<split>.npz` holding

  logits  float32 (n, 10): the CNN's RAW logits of every image of the split, in split order. They are
          not calibrated: calibrated probabilities are softmax(logits / predictor.cnn_temperature)
          (core.predict.calibration.softmax), so one file serves every temperature;
  meta    a JSON string: format version, the full checkpoint sha256, the data checksum, the split, n,
          and the sha256 of the logits' bytes.

Files are written atomically (core.io.atomic_write) and load in milliseconds. A file that cannot be
read, or whose key, shape, dtype or checksum does not match, is never trusted: `cached_logits` rebuilds
it. Files are keyed by content, so a checkpoint rewritten at the same path gets a new file; deleting
the folder is always safe.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from core.io import atomic_write
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


def cache_path(checkpoint_hash: str, split: str) -> Path:
    return cache_dir() / f"logits-{checkpoint_hash[:24]}-{data_key()}-{split}.npz"


def _meta(checkpoint_hash: str, split: str, logits: np.ndarray) -> dict:
    return {"format": FORMAT, "checkpoint_sha256": checkpoint_hash, "data_checksum": data_key(), "split": split,
            "n": int(len(logits)), "logits_sha256": hashlib.sha256(np.ascontiguousarray(logits).tobytes()).hexdigest()}


def load_logits(checkpoint_hash: str, split: str, n: int) -> np.ndarray | None:
    """The cached raw logits, float32 (n, 10) and read-only, or None when the file is missing or is
    not exactly what it claims to be (unreadable, truncated, another key, shape, dtype or checksum)."""
    path = cache_path(checkpoint_hash, split)
    try:
        with np.load(path, allow_pickle=False) as archive:
            logits, meta = archive["logits"], json.loads(str(archive["meta"][()]))
    except Exception:  # noqa: BLE001 - missing or corrupt in any way: rebuild, never trust
        return None
    if not isinstance(logits, np.ndarray) or logits.dtype != np.float32 or logits.shape != (n, 10):
        return None
    if meta != _meta(checkpoint_hash, split, logits):
        return None
    logits.flags.writeable = False
    return logits


def store_logits(checkpoint_hash: str, split: str, logits: np.ndarray) -> Path:
    """Write the raw logits of a whole split atomically; returns the file's path."""
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    if logits.ndim != 2 or logits.shape[1] != 10:
        raise ValueError(f"logits must be float32 (n, 10), got {logits.shape}")
    path = cache_path(checkpoint_hash, split)
    meta = json.dumps(_meta(checkpoint_hash, split, logits), sort_keys=True)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:  # a handle: np.savez would append .npz to a bare file name
            np.savez(handle, logits=logits, meta=np.array(meta))

    atomic_write(path, write)
    return path


def cached_logits(checkpoint_hash: str, split: str, compute: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """The raw logits of every image of `split` for this checkpoint: from the cache, or compute(images)
    (float32 (n, 10)) on a miss, stored for next time. Returned read-only."""
    images = split_images(split)
    logits = load_logits(checkpoint_hash, split, len(images))
    if logits is None:
        logits = np.ascontiguousarray(compute(images), dtype=np.float32)
        if logits.shape != (len(images), 10):
            raise ValueError(f"compute returned {logits.shape}, expected ({len(images)}, 10)")
        try:
            store_logits(checkpoint_hash, split, logits)
        except OSError:  # a read-only checkout still works, just without the speed-up
            pass
        logits.flags.writeable = False
    return logits

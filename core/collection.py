"""The local collection: digits a user wrote, corrected by hand and saved ("Write your own" in the
dashboard), usable by the evaluation tools as an extra split, "mine" (core.data.split_arrays).

It lives in core.paths.collection_dir() ($DIGITSUM_COLLECTION_DIR, else collection/, gitignored). Each
save is one file, `digits-<UTC time>-<random>.npz`, holding
  images  uint8 (L, 28, 28): MNIST-style digits, white on black (core.handwriting's output)
  labels  uint8 (L,): the digits as the user labelled them
  meta    a JSON string: format version, source ("canvas", "photo", ...), saved_at, count
written atomically (core.io.savez_atomic), so a crash never leaves half a file and a save never touches
an earlier one. Loading reads every file in name order (oldest first); a file that cannot be read is
skipped with a warning that names it, so one damaged file never hides the rest.
"""

from __future__ import annotations

import json
import secrets
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.io import savez_atomic
from core.paths import collection_dir

FORMAT = 1
PATTERN = "digits-*.npz"


def save_digits(digits, labels, source: str = "canvas") -> Path:
    """Add `digits` (uint8 (L, 28, 28)) with their `labels` (L integers 0-9) to the collection, as one
    new file; returns its path."""
    digits, labels = np.asarray(digits), np.asarray(labels)
    if digits.dtype != np.uint8 or digits.ndim != 3 or digits.shape[1:] != (28, 28) or len(digits) == 0:
        raise ValueError(f"digits must be a non-empty uint8 array (L, 28, 28); got {digits.dtype} {digits.shape}")
    if labels.shape != (len(digits),) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be {len(digits)} integers, one per digit; got {labels.dtype} {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"labels must be digits 0-9; got {labels.min()}..{labels.max()}")
    if not isinstance(source, str) or not source.strip() or len(source) > 100 or "\n" in source:
        raise ValueError(f"source must be a short one-line name such as 'canvas' or 'photo'; got {source!r}")
    now = datetime.now(timezone.utc)
    meta = json.dumps({"format": FORMAT, "source": source, "saved_at": now.isoformat(), "count": len(digits)})
    path = collection_dir() / f"digits-{now:%Y%m%dT%H%M%S%fZ}-{secrets.token_hex(4)}.npz"
    return savez_atomic(path, images=np.ascontiguousarray(digits), labels=labels.astype(np.uint8), meta=np.array(meta))


def load_collection() -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of every save, oldest first; empty arrays when
    nothing is saved. Unreadable files are skipped with a warning."""
    images, labels = [np.zeros((0, 28, 28), np.uint8)], [np.zeros(0, np.uint8)]
    folder = collection_dir()
    for path in sorted(folder.glob(PATTERN)) if folder.is_dir() else []:
        try:
            found = _read(path)
        except Exception as error:  # noqa: BLE001 - any damage: say which file, keep the others
            warnings.warn(f"skipped {path.name} in the collection: {' '.join(str(error).split())}", stacklevel=2)
            continue
        images.append(found[0])
        labels.append(found[1])
    return np.concatenate(images), np.concatenate(labels)


def _read(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        images, labels, meta = archive["images"], archive["labels"], json.loads(str(archive["meta"][()]))
    if meta.get("format") != FORMAT:
        raise ValueError(f"unknown format {meta.get('format')!r}")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"images are {images.dtype} {images.shape}, expected uint8 (L, 28, 28)")
    if labels.dtype != np.uint8 or labels.shape != (len(images),) or (len(labels) and labels.max() > 9):
        raise ValueError(f"labels are {labels.dtype} {labels.shape}, expected {len(images)} digits 0-9")
    return images, labels

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

The collection has a fixed held-out part, for measuring a model trained on the rest (the `personal`
training preset): about HOLDOUT_SHARE of the saves, chosen by file so that one save never straddles
the parts. A save is held out when the hash of its file name falls in the lowest HOLDOUT_SHARE of the
range, a fact of the name alone; so that two or more saves always hold one out, the second save (in
name order) is held out while no name hashes low. As saves are added a training save therefore never
moves into the held-out part; at most that second save moves back to training, once a low-hashing save
arrives. `load_collection(part)` reads one part; `training_digits()` adds the standing label
decisions about "mine" (core.data.decisions), which is what training reads.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from core.data.decisions import apply_decisions, load_decisions
from core.io import savez_atomic
from core.paths import collection_dir

FORMAT = 1
PATTERN = "digits-*.npz"
PARTS = ("all", "train", "holdout")
HOLDOUT_SHARE = 0.2


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


def load_collection(part: str = "all") -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, 28, 28), labels uint8 (N,)) of every save in `part` ("all", "train" or
    "holdout"), oldest first; empty arrays when nothing is saved. Unreadable files are skipped with a
    warning."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    images, labels, held_out = _load_all()
    if part == "all":
        return images, labels
    keep = held_out if part == "holdout" else ~held_out
    return images[keep], labels[keep]


def holdout_names(names) -> set[str]:
    """The file names, among `names` (all the collection's saves), that form the held-out part."""
    names = sorted(names)
    held = {name for name in names if _hash_share(name) < HOLDOUT_SHARE}
    if not held and len(names) >= 2:
        held = {names[1]}  # see the module's docstring: never a save that trained before
    return held


def training_digits() -> tuple[np.ndarray, np.ndarray, int]:
    """What training reads of the collection: the train part's (images, labels) with the standing label
    decisions about "mine" applied (excluded digits dropped, relabelled ones relabelled), and how many
    of the part's digits a standing decision covers."""
    images, labels, held_out = _load_all()
    decided, excluded, covered = _decisions(labels)
    keep = ~held_out
    keep[excluded] = False
    return images[keep], decided[keep], int(np.count_nonzero(~held_out[covered]))


def _decisions(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(decided labels, excluded indices, indices with a standing decision) of the whole collection, in
    load_collection("all") order."""
    decided, excluded = apply_decisions("mine", labels)
    covered = load_decisions("mine")["index"].to_numpy(np.int64)
    return decided, excluded, covered[covered < len(labels)]


def _load_all() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, labels, held_out) of every readable save, oldest first; held_out marks each digit of a
    held-out save."""
    images, labels, held_out = [np.zeros((0, 28, 28), np.uint8)], [np.zeros(0, np.uint8)], [np.zeros(0, bool)]
    folder = collection_dir()
    paths = sorted(folder.glob(PATTERN)) if folder.is_dir() else []
    held = holdout_names(path.name for path in paths)  # every file counts, a damaged one too: parts never shift
    for path in paths:
        try:
            found = _read(path)
        except Exception as error:  # noqa: BLE001 - any damage: say which file, keep the others
            warnings.warn(f"skipped {path.name} in the collection: {' '.join(str(error).split())}", stacklevel=3)
            continue
        images.append(found[0])
        labels.append(found[1])
        held_out.append(np.full(len(found[1]), path.name in held))
    return np.concatenate(images), np.concatenate(labels), np.concatenate(held_out)


def _hash_share(name: str) -> float:
    """Where a file name's hash falls in [0, 1): the same on every machine and in every process."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64


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

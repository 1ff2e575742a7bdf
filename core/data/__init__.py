"""Data: MNIST from IDX files or the pinned wheel (mnist), the splits (splits), seeded digit
sequences drawn from a split (sequences), and a person's label decisions (decisions)."""

from core.data.decisions import DECISION_ACTIONS, apply_decisions, load_decisions, record_decision
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
from core.data.sequences import (
    Sequences,
    concat_sequences,
    evaluation_sequences,
    generate_sequences,
    parse_digits,
    parse_lengths,
)
from core.data.splits import SPLITS, TRAIN_SIZE, split_arrays

__all__ = ["DECISION_ACTIONS", "DataError", "MNIST", "SPLITS", "Sequences", "TRAIN_SIZE", "apply_decisions",
           "concat_sequences", "evaluation_sequences", "fetch_mnist", "generate_sequences", "load_decisions",
           "load_idx_dir", "load_mnist", "mnist_checksum", "parse_digits", "parse_idx", "parse_lengths", "read_cache",
           "read_wheel", "record_decision", "resolve_data_dir", "split_arrays", "validate", "write_cache"]

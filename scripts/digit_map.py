"""Compute a checkpoint's digit map (core.evaluate.embeddings.digit_map) once and leave it in the disk cache.

    python -m scripts.digit_map --checkpoint checkpoints/default.pt

The dashboard's Digit map view starts this in a subprocess the first time it shows a checkpoint (up to a
minute on a CPU), so the work never runs inside a Streamlit script thread; later calls read the cache.
"""

import sys
import time

from core import load_predictor
from core.constants import DEVICES
from core.data import DataError
from core.evaluate import digit_map
from core.evaluate.embeddings import MAP_NAME
from core.model.checkpoint import CheckpointError
from core.paths import cache_dir
from core.predict import cache
from scripts.cli import Parser


def main(argv=None) -> int:
    parser = Parser(prog="python -m scripts.digit_map", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="checkpoints/default.pt", help="checkpoint file to map")
    parser.add_argument("--split", default="test", choices=["test", "val"], help="which images to map")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda, then mps, then cpu")
    args = parser.parse_args(argv)
    try:
        predictor = load_predictor(args.checkpoint, device=args.device)
    except (ValueError, CheckpointError) as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    try:
        points = digit_map(predictor, split=args.split)
    except (DataError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if cache.load_array(predictor.checkpoint_hash, MAP_NAME, args.split, (len(points), 2)) is None:
        print(f"error: the digit map could not be stored: is the cache folder {cache_dir()} writable?", file=sys.stderr)
        return 2
    print(f"digit map of {args.checkpoint}: {len(points):,} {args.split} images in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Calibrate checkpoints in place: fit temperatures and interval margins on val_calib, store them.

    python -m scripts.calibrate checkpoints/*.pt

The fit reads val's calibration part only, val_calib = MNIST train[57500:60000] (core.data.splits),
never the part that selected the checkpoint's epochs. Each file is rewritten atomically (a temp file,
then a rename), with its weights unchanged and a "calibration" block added to its metadata (its
"fitted_on" and "images" name that part). Predictions do not change; confidences become honest.
"""

import sys

from core.data import DataError
from core.model.checkpoint import CheckpointError
from core.training.fit_calibration import calibrate_checkpoint
from scripts.cli import Parser


def main(argv=None) -> int:
    parser = Parser(prog="python -m scripts.calibrate", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+", help="checkpoint files to calibrate in place")
    args = parser.parse_args(argv)
    for path in args.checkpoints:
        try:
            block = calibrate_checkpoint(path)
        except (CheckpointError, DataError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        head = (f", head T {block['head_temperature']:.3f} (val NLL {block['head_val_nll_before']:.4f} -> "
                f"{block['head_val_nll_after']:.4f})" if "head_val_nll_before" in block else "")
        print(f"{path}: on {block['fitted_on']} ({block['images']} images): CNN T {block['cnn_temperature']:.3f} "
              f"(val NLL {block['cnn_val_nll_before']:.4f} -> {block['cnn_val_nll_after']:.4f}){head}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Draw one random (or sum-constrained) test sequence, predict its sum, write a PNG strip and JSON.

    python -m scripts.generate --length 12 --seed 3
    python -m scripts.generate --length 50 --target-sum 300 --digits 5679 --out out/sample

Writes out/sequence.png and out/sequence.json unless --out names another prefix.
"""

import json
import os
import sys

from core import load_predictor, promotion
from core.constants import DEVICES
from core.data import generate_sequences, load_mnist, parse_digits, split_arrays
from core.evaluate import evaluate_sequences
from core.images import png_bytes, strip_image
from core.model.checkpoint import CheckpointError
from scripts.cli import OUT_DIR, Parser, int_in, output_prefix, write_outputs

DEFAULT_OUT = f"{OUT_DIR}/sequence"


def parse_range(text: str) -> tuple[int, int]:
    lo, sep, hi = text.partition("-")
    if not (sep and lo.isdigit() and hi.isdigit()):
        raise ValueError(f"bad sum range {text!r}: expected LO-HI, e.g. 40-60")
    return int(lo), int(hi)


def main(argv=None) -> int:
    parser = Parser(prog="python -m scripts.generate",
                    description="Generate a digit sequence from MNIST test images and predict its sum.")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to predict with (default: the active default, see `python -m scripts.runs promote`)")
    parser.add_argument("--length", type=int, default=10, help="number of digits (1..5000)")
    parser.add_argument("--seed", type=int_in(0), default=None, help="seed (default: a new random one, printed)")
    parser.add_argument("--target-sum", type=int, help="exact sum the sequence must have")
    parser.add_argument("--sum-range", help="inclusive range the sum must fall in, e.g. 40-60")
    parser.add_argument("--digits", help="allowed digits, e.g. 137 (default: all ten)")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda, then mps, then cpu")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output prefix: writes PREFIX.png and PREFIX.json")
    args = parser.parse_args(argv)
    if not 1 <= args.length <= 5000:
        parser.error(f"--length must be in 1..5000, got {args.length}")
    out = output_prefix(parser, args.out)
    args.checkpoint, source = promotion.cli_checkpoint(args.checkpoint)

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    try:
        sum_range = parse_range(args.sum_range) if args.sum_range else None
        try:  # the dashboard's links read digit sets the same way
            digits = parse_digits(args.digits) if args.digits is not None else None
        except ValueError as exc:
            raise ValueError(f"--digits: {exc}") from None
        images, labels = split_arrays(load_mnist(), "test")
        seqs = generate_sequences("test", 1, args.length, seed=seed, target_sum=args.target_sum,
                                  sum_range=sum_range, allowed_digits=digits, labels=labels)
        predictor = load_predictor(args.checkpoint, device=args.device)
    except (ValueError, CheckpointError) as exc:
        parser.error(str(exc))

    row = evaluate_sequences(predictor, seqs, images).iloc[0]
    wrong = [t != p for t, p in zip(row.true_digits, row.pred_digits)]
    record = {
        "seed": seed, "length": int(row.length), "target_sum": args.target_sum, "sum_range": sum_range,
        "allowed_digits": digits, "split": "test", "indices": row.indices, "true_digits": row.true_digits,
        "pred_digits": row.pred_digits, "digit_conf": row.digit_conf, "true_sum": int(row.true_sum),
        "pred_sum": float(row.pred_sum), "pred_rounded": int(row.pred_rounded), "error": float(row.error),
        "checkpoint": args.checkpoint,
    }
    write_outputs(parser, {out.with_suffix(".png"): png_bytes(strip_image(images[row.indices], wrong)),
                           out.with_suffix(".json"): json.dumps(record, indent=2).encode()})
    print(f"checkpoint {args.checkpoint} ({source})")
    print(f"seed {seed}: true sum {record['true_sum']}, predicted {record['pred_sum']:.3f} "
          f"(rounded {record['pred_rounded']}), {sum(wrong)} misread digit(s)")
    print(f"wrote {out.with_suffix('.png')} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Evaluate a checkpoint on random test sequences, by length; write JSON and markdown.

    python -m scripts.evaluate --checkpoint checkpoints/default.pt --lengths 1-10,20,50,100,1000 --count 1000

Writes out/evaluate.json and out/evaluate.md unless --out names another prefix.
"""

import json
import sys
import time

from core import load_predictor, promotion
from core.constants import DEVICES
from core.data import parse_lengths
from core.evaluate import by_length, evaluation_set, summary
from core.model.checkpoint import CheckpointError
from scripts.cli import OUT_DIR, Parser, int_in, output_prefix, write_outputs

DEFAULT_OUT = f"{OUT_DIR}/evaluate"


def markdown_table(stats) -> str:
    lines = ["| length | n | MAE | RMSE | exact-match | digit acc |", "|---:|---:|---:|---:|---:|---:|"]
    for row in stats.itertuples():
        lines.append(f"| {row.length} | {row.n} | {row.mae:.4f} | {row.rmse:.4f} | {row.exact_acc:.4f} | {row.digit_acc:.4f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = Parser(prog="python -m scripts.evaluate", description="Evaluate a checkpoint on random sequences of MNIST test images.")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint file to evaluate (default: the active default, see `python -m scripts.runs promote`)")
    parser.add_argument("--lengths", default="1-10,20,50,100,1000", help="sequence lengths, e.g. '1-10,20,100'")
    parser.add_argument("--count", type=int, default=1000, help="sequences per length")
    parser.add_argument("--seed", type=int_in(0), default=0, help="seed of the sequence generator")
    parser.add_argument("--device", default="auto", choices=DEVICES, help="auto: cuda, then mps, then cpu")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output prefix: writes PREFIX.json and PREFIX.md")
    args = parser.parse_args(argv)
    out = output_prefix(parser, args.out)
    args.checkpoint, source = promotion.cli_checkpoint(args.checkpoint)
    try:
        lengths = parse_lengths(args.lengths)
        if args.count < 1:
            raise ValueError("--count must be at least 1")
        predictor = load_predictor(args.checkpoint, device=args.device)
    except (ValueError, CheckpointError) as exc:
        parser.error(str(exc))
    start = time.perf_counter()
    results = evaluation_set(predictor, lengths, args.count, args.seed)
    seconds = time.perf_counter() - start
    stats = by_length(results)
    report = {
        "checkpoint": args.checkpoint, "lengths": lengths, "count": args.count, "seed": args.seed, "split": "test",
        "seconds": round(seconds, 3), "overall": summary(results), "by_length": stats.to_dict(orient="records"),
    }
    title = f"# Evaluation of {args.checkpoint}\n\n{args.count} test sequences per length, seed {args.seed}, {seconds:.1f} s.\n\n"
    write_outputs(parser, {out.with_suffix(".json"): json.dumps(report, indent=2).encode(),
                           out.with_suffix(".md"): (title + markdown_table(stats) + "\n").encode()})
    print(f"checkpoint {args.checkpoint} ({source})")
    print(markdown_table(stats))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train a digit-sum model: `python -m scripts.train --preset default`.

Thin CLI over core.train (make_config + train). Exit codes: 0 success, 143 stopped by SIGTERM (resume
with --resume and the same --run-dir), 2 bad arguments, 1 any other failure.
Runs unchanged under `torchrun --standalone --nproc_per_node=N -m scripts.train ...` (DDP).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


def parse_args(argv=None) -> argparse.Namespace:
    from core.model import DEVICES, HEADS
    from core.training import PRESETS

    p = argparse.ArgumentParser(prog="python -m scripts.train", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="smoke: <60 s CPU test run; default: the shipped checkpoint (<=15 min, 2-core CPU); full: GPU")
    p.add_argument("--head", choices=HEADS, help="sequence head (default: the preset's, lstm)")
    p.add_argument("--epochs-cnn", type=int, help="phase 1 epochs: the CNN on digit labels")
    p.add_argument("--epochs-head", type=int, help="phase 2 epochs: the head on sum labels (cached CNN logits)")
    p.add_argument("--epochs-joint", type=int, help="phase 3 epochs: CNN and head fine-tuned jointly")
    p.add_argument("--min-len", type=int, help="shortest training sequence (default 1)")
    p.add_argument("--max-len", type=int, help="longest training sequence (default 10)")
    p.add_argument("--lr", type=float, help="peak learning rate of the CNN (one-cycle)")
    p.add_argument("--batch-size", type=int, help="CNN images per step (global across DDP ranks)")
    p.add_argument("--device", choices=DEVICES, help="auto: cuda, then mps, then cpu")
    p.add_argument("--seed", type=int, help="random seed (the whole run is reproducible from it)")
    p.add_argument("--init-cnn", type=Path, help="start from this checkpoint's CNN (with --epochs-cnn 0: train only a head)")
    p.add_argument("--out", type=Path, help="final checkpoint path (default checkpoints/<preset>.pt)")
    p.add_argument("--run-dir", type=Path, help="writes metrics.jsonl and resume.pt (after every epoch) here")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/resume.pt")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (for log files)")
    return p.parse_args(argv)  # fmt: skip


def main(argv=None) -> int:
    args = parse_args(argv)
    from core.model.checkpoint import CheckpointError
    from core.paths import CHECKPOINTS_DIR
    from core.training import TrainingInterrupted, make_config, train

    overrides = {"head": args.head, "epochs_cnn": args.epochs_cnn, "epochs_head": args.epochs_head,
                 "epochs_joint": args.epochs_joint, "min_len": args.min_len, "max_len": args.max_len,
                 "lr": args.lr, "batch_size": args.batch_size, "device": args.device, "seed": args.seed,
                 "init_cnn": str(args.init_cnn) if args.init_cnn else None}  # fmt: skip
    try:
        config = make_config(args.preset, **overrides)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.resume and args.run_dir is None:
        print("error: --resume needs --run-dir (the directory holding resume.pt)", file=sys.stderr)
        return 2
    out = args.out or CHECKPOINTS_DIR / f"{args.preset}.pt"
    rank0 = os.environ.get("RANK", "0") == "0"
    try:
        metrics = train(config, out_path=out, run_dir=args.run_dir, resume=args.resume,
                        show_progress=not args.no_progress)  # fmt: skip
    except TrainingInterrupted as e:
        if rank0:
            where = f"; resume with --resume --run-dir {args.run_dir}" if args.run_dir else " (no --run-dir: not resumable)"
            print(f"{e}{where}", file=sys.stderr, flush=True)
        return 143
    except (ValueError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if rank0:
        print(json.dumps({"checkpoint": str(out), **metrics}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

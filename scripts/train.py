"""Train a digit-sum model: `python -m scripts.train --preset default`.

Thin CLI over core.training (make_config + train); its setting flags come from config.OVERRIDES.
Without --out it writes into a new folder under the runs folder, never over a shipped checkpoint; a
personal model (`--preset personal`, or any run with --collection-weight) is never written into checkpoints/:
    python -m scripts.train --preset personal --init-from checkpoints/default.pt --out PATH --device cpu
Exit codes: 0 success, 143 stopped by SIGTERM (resume with --resume and the same --run-dir),
2 bad arguments (one `error:` line), 1 any other failure.
Runs unchanged under `torchrun --standalone --nproc_per_node=N -m scripts.train ...` (DDP).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

from scripts.cli import Parser


def parse_args(argv=None) -> argparse.Namespace:
    from core.training import PRESETS, add_override_flags

    p = Parser(prog="python -m scripts.train", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(PRESETS), default="default",
                   help="smoke: <60 s CPU test run; default: the shipped checkpoint's recipe (<=30 min, 2-core CPU); "
                        "full: GPU; personal: fine-tune --init-from on your collection's digits (<=5 min, CPU)")
    add_override_flags(p)
    p.add_argument("--out", type=Path,
                   help="final checkpoint path (default: RUN_DIR/model.pt; RUN_DIR defaults to a new runs/train-<preset>-<time>)")
    p.add_argument("--run-dir", type=Path, help="writes metrics.jsonl and resume.pt (after every epoch) here")
    p.add_argument("--resume", action="store_true", help="continue from RUN_DIR/resume.pt")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (for log files)")
    return p.parse_args(argv)  # fmt: skip


def default_run_dir(preset: str, now: datetime | None = None) -> Path:
    """A fresh folder under the runs folder for a run started without --out: runs/train-<preset>-<UTC time>."""
    from core.paths import runs_dir

    stamp = (now or datetime.now(timezone.utc)).strftime("%Y%m%dT%H%M%SZ")
    folder, n = runs_dir() / f"train-{preset}-{stamp}", 1
    while folder.exists():  # two runs in the same second
        folder, n = runs_dir() / f"train-{preset}-{stamp}-{n}", n + 1
    return folder


def output_paths(args: argparse.Namespace) -> tuple[Path, Path | None]:
    """(checkpoint, run dir). Writing into checkpoints/ (the shipped models) takes an explicit --out."""
    if args.out is not None:
        return args.out, args.run_dir
    run_dir = args.run_dir or default_run_dir(args.preset)
    return run_dir / "model.pt", run_dir


def refuse_shipped_folder(config, out: Path, run_dir: Path | None) -> None:
    """A model trained on the user's own digits is theirs: ValueError when it would go into checkpoints/."""
    from core.paths import CHECKPOINTS_DIR

    if config.preset != "personal" and not config.collection_weight:
        return
    for name, path in (("--run-dir", run_dir), ("--out", out)):  # --out defaults to a file in the run dir
        if path is not None and path.resolve().is_relative_to(CHECKPOINTS_DIR.resolve()):
            raise ValueError(f"{name} {path} is inside {CHECKPOINTS_DIR}, the shipped models; a personal model is "
                             f"never written there: choose another {name}, or leave --out out to write under runs/")


def main(argv=None) -> int:
    args = parse_args(argv)
    from core.model.checkpoint import CheckpointError, read_metadata
    from core.training import TrainingInterrupted, make_config, overrides_from_args, train
    from core.training.distributed import env_rank
    from core.training.loop import collection_digits

    def fail(message) -> int:
        print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)  # one line
        return 2

    if args.resume and args.run_dir is None:
        return fail("--resume needs --run-dir (the directory holding resume.pt)")
    out, run_dir = output_paths(args)
    try:
        config = make_config(args.preset, **overrides_from_args(args))
        refuse_shipped_folder(config, out, run_dir)
        if config.init_cnn:
            read_metadata(config.init_cnn)  # a missing or broken file fails here, before anything starts
        collection_digits(config)  # and so does too small a collection, with --collection-weight
    except (ValueError, CheckpointError) as e:
        return fail(e)
    rank0 = env_rank() == 0
    if rank0:
        print(f"training {args.preset}: checkpoint {out}" + (f", run dir {run_dir}" if run_dir else ""),
              file=sys.stderr, flush=True)  # fmt: skip
    try:
        metrics = train(config, out_path=out, run_dir=run_dir, resume=args.resume, show_progress=not args.no_progress)
    except TrainingInterrupted as e:
        if rank0:
            where = f"; resume with --resume --run-dir {run_dir}" if run_dir else " (no --run-dir: not resumable)"
            print(f"{e}{where}", file=sys.stderr, flush=True)
        return 143
    except (ValueError, CheckpointError) as e:
        return fail(e)
    if rank0:
        print(json.dumps({"checkpoint": str(out), **metrics}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train an ensemble checkpoint: `python -m scripts.train_ensemble --members 3 --out checkpoints/ensemble.pt`.

Thin CLI over core.training.ensemble: --members CNNs of the preset's recipe, each its own run with seed
--seed + m (or the single-CNN checkpoints given with --members-from), stacked into one CNN ensemble,
then one lstm head over the members' averaged calibrated probabilities. Every member, the assembled CNN
and the head's run go under --work-dir (default out/NAME.work), and a finished member is reused when the
command is run again.
Exit codes: 0 success, 143 stopped by SIGTERM, 2 bad arguments (one `error:` line), 1 any other failure.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from scripts.cli import OUT_DIR, Parser


def main(argv=None) -> int:
    from core.model.checkpoint import CheckpointError
    from core.training import PRESETS, TrainingInterrupted, add_override_flags, make_config, overrides_from_args
    from core.training.ensemble import train_ensemble

    p = Parser(prog="python -m scripts.train_ensemble", description=__doc__.splitlines()[0])
    p.add_argument("--preset", choices=sorted(p for p in PRESETS if p != "personal"), default="default",
                   help="the recipe of every member and of the head (default: the shipped single CNN's)")
    add_override_flags(p)
    p.add_argument("--members-from", nargs="+", type=Path, default=[], metavar="CHECKPOINT",
                   help="single-CNN checkpoints to use as the members instead of training --members new ones")
    p.add_argument("--compare", nargs="+", type=Path, default=[], metavar="MEMBERS_PT",
                   help="other recipes' assembled CNNs (WORK_DIR/members.pt) whose val figures to record beside this one's")
    p.add_argument("--out", type=Path, required=True, help="the ensemble checkpoint to write")
    p.add_argument("--work-dir", type=Path,
                   help=f"members, the assembled CNN and the head's run (default: {OUT_DIR}/NAME.work for --out NAME.pt)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bars (for log files)")
    args = p.parse_args(argv)
    overrides = overrides_from_args(args)
    if args.members_from:
        overrides["members"] = len(args.members_from)
    overrides.setdefault("members", 3)
    try:
        config = make_config(args.preset, **overrides)
        if config.members < 2:
            raise ValueError(f"--members must be at least 2 for an ensemble, got {config.members}")
        for flag, paths in (("--members-from", args.members_from), ("--compare", args.compare)):
            for path in paths:
                if not path.is_file():
                    raise ValueError(f"{flag} {path}: no such checkpoint file")
    except ValueError as exc:
        p.error(str(exc))
    work_dir = args.work_dir or Path(OUT_DIR) / f"{args.out.stem}.work"  # gitignored, never beside a shipped model
    print(f"training an ensemble of {config.members}: checkpoint {args.out}, work dir {work_dir}", file=sys.stderr, flush=True)
    try:
        metrics = train_ensemble(config, out_path=args.out, work_dir=work_dir, members_from=args.members_from,
                                 compare=args.compare, show_progress=not args.no_progress)
    except TrainingInterrupted as exc:
        print(f"{exc}; the same command again keeps the finished members in {work_dir}", file=sys.stderr, flush=True)
        return 143
    except (ValueError, CheckpointError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
        return 2
    print(json.dumps({"checkpoint": str(args.out), **metrics}, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

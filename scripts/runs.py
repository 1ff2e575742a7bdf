"""Training runs from the command line — a thin wrapper over core.runs (the dashboard's Training
page calls the same functions).

    python -m scripts.runs launch --preset smoke --device cpu --epochs-head 1   # last line: run id
    python -m scripts.runs status RUN_ID [--json]
    python -m scripts.runs list [--json]
    python -m scripts.runs logs RUN_ID [--tail 50]
    python -m scripts.runs cancel RUN_ID [--grace 30] [--no-wait]   # waits unless --no-wait
    python -m scripts.runs resume RUN_ID        # same id, continues from its last saved epoch
    python -m scripts.runs wait RUN_ID [--timeout 600]   # exit 0 only if it succeeded
    python -m scripts.runs promote RUN_ID|PATH  # the active default of the dashboard and the scripts
    python -m scripts.runs promote --shipped    # back to the shipped checkpoints/default.pt

Runs keep going after this command exits: a detached supervisor per device starts queued runs
and records how each one ended. Bad input prints one clear line and exits 2 (no traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from core import promotion  # light: it imports torch only when it checks a checkpoint
from core.runs import api as runs
from scripts.cli import Parser


def build_parser(trainer_flags: bool = True) -> argparse.ArgumentParser:
    """The CLI. trainer_flags=False leaves out launch's training flags, which come from
    core.training.config (and so torch): `list` and `status` stay quick."""
    parser = Parser(prog="python -m scripts.runs", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("launch", help="queue a training run; prints its id as the last line")
    p.add_argument("--preset", required=True, help="smoke, default or full")
    p.add_argument("--world-size", type=int, default=None,
                   help="processes (torchrun) — default: all GPUs on cuda, 1 otherwise")
    if trainer_flags:
        from core.training.config import add_override_flags  # one list of trainer flags (--device too)
        add_override_flags(p)
    p = sub.add_parser("status", help="one run's status, progress and metrics")
    p.add_argument("run_id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("list", help="all runs, newest first")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = sub.add_parser("logs", help="the end of a run's training log")
    p.add_argument("run_id")
    p.add_argument("--tail", type=int, default=50, help="lines to show (default 50)")
    p = sub.add_parser("cancel", help="stop a queued or running run (SIGTERM, then SIGKILL)")
    p.add_argument("run_id")
    p.add_argument("--grace", type=float, default=None,
                   help=f"seconds between SIGTERM and SIGKILL (default {runs.DEFAULT_GRACE_S:.0f})")
    p.add_argument("--no-wait", action="store_true", help="return once the cancel is requested")
    p = sub.add_parser("resume", help="continue a failed or cancelled run (same id)")
    p.add_argument("run_id")
    p = sub.add_parser("wait", help="block until a run ends; exit 0 only if it succeeded")
    p.add_argument("run_id")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds (default 3600)")
    p = sub.add_parser("promote", help="make a succeeded run's (or any) checkpoint the active default")
    p.add_argument("target", nargs="?", metavar="RUN_ID|PATH", help="a succeeded run's id, or a checkpoint file")
    p.add_argument("--shipped", action="store_true", help="go back to the shipped default")
    return parser


def _fmt(value, spec: str = "") -> str:
    return "-" if value is None else format(value, spec)


def print_run(run: runs.Run) -> None:
    mae = run.metrics.get("val_mae")
    print(f"id:         {run.id}\nstatus:     {run.display_status}\npreset:     {run.preset} "
          f"{json.dumps(run.overrides) if run.overrides else ''}\n"
          f"device:     {run.device} x{run.world_size}\nprogress:   {run.progress:.0%}"
          f"{'  (ETA ' + _fmt(run.eta, '.0f') + ' s)' if run.status == 'running' else ''}\n"
          f"val MAE:    {_fmt(mae, '.4f')}\npid:        {_fmt(run.pid)}\n"
          f"checkpoint: {_fmt(run.checkpoint)}\nlog:        {run.log_path}")
    if run.error:
        print(f"error:      {run.error}")


def print_table(items: list[runs.Run]) -> None:
    if not items:
        print("no runs yet — start one with: python -m scripts.runs launch --preset smoke")
        return
    print(f"{'id':22} {'status':10} {'preset':8} {'device':7} {'progress':>8} {'val MAE':>8}  created")
    for r in items:
        print(f"{r.id:22} {r.display_status:10} {r.preset:8} {r.device:7} {r.progress:>8.0%} "
              f"{_fmt(r.metrics.get('val_mae'), '.4f'):>8}  {r.created}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(trainer_flags="launch" in argv).parse_args(argv)
    try:
        code = run_command(args)
        sys.stdout.flush()  # a closed pipe (`| head`) shows here, inside the handler below
        return code
    except BrokenPipeError:
        # The reader left: not an error worth a traceback. Python flushes stdout again at exit;
        # devnull takes that write (the docs' "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (runs.RunError, ValueError, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def run_command(args) -> int:
    if args.command == "launch":
        from core.training.config import overrides_from_args

        run = runs.launch({"preset": args.preset, **overrides_from_args(args)}, world_size=args.world_size)
        print(f"queued {run.preset} run on {run.device} (x{run.world_size}); "
              f"log: {run.log_path}")
        print(run.id)  # last line: scripts and tests read the id from here
    elif args.command == "status":
        run = runs.get(args.run_id)
        if args.json:
            print(json.dumps(run.to_dict(), indent=2))
        else:
            print_run(run)
    elif args.command == "list":
        items = runs.list_runs()
        if args.json:
            print(json.dumps([r.to_dict() for r in items], indent=2))
        else:
            print_table(items)
    elif args.command == "logs":
        if args.tail < 0:
            raise ValueError(f"--tail must be >= 0, got {args.tail}")
        runs.get(args.run_id)  # a clear error for an unknown id
        print(runs.log_tail(args.run_id, args.tail))
    elif args.command == "cancel":
        run = runs.cancel(args.run_id, grace=args.grace)  # returns at once
        if not args.no_wait and run.status not in runs.TERMINAL:
            grace = runs.DEFAULT_GRACE_S if args.grace is None else args.grace
            run = runs.wait(args.run_id, timeout=grace + 30)
        print(f"run {run.id}: {run.display_status}")
    elif args.command == "resume":
        run = runs.resume(args.run_id)
        print(f"run {run.id}: {run.status} (continues in {run.run_dir})")
    elif args.command == "wait":
        run = runs.wait(args.run_id, timeout=args.timeout)  # its reads restart a queue nobody serves
        print(f"run {run.id}: {run.status}" + (f"\n{run.error}" if run.error else ""))
        return 0 if run.status == "succeeded" else 1
    elif args.command == "promote":
        if args.shipped == (args.target is not None):
            raise ValueError("promote expects either RUN_ID|PATH or --shipped")
        active = promotion.reset_to_shipped() if args.shipped else promotion.promote(args.target)
        print(f"active default: {promotion.shown(active.path)} ({active.origin})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Detached per-device supervisor: `python -m core.runs.supervisor DEVICE`.

core.runs.launch()/resume() start one (and so does a status read that finds a queue nobody
serves, e.g. after a reboot). It holds runs/<DEVICE>.lock while it drains that device's queue,
oldest run first, one trainer at a time; it waits on each trainer, records the real exit status,
keeps progress/metrics in the registry fresh, and enforces cancel requests (SIGTERM to the
trainer's process group, SIGKILL at the deadline cancel() wrote). It runs in its own session,
so the Streamlit server or a terminal going away does not stop training or the queue.
"""
from __future__ import annotations

import fcntl
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.paths import REPO_ROOT
from core.runs import api as runs
from core.runs import registry as db
from core.runs import process as proc

POLL_S = 0.5       # how quickly a cancel request or new metrics line is noticed
BUSY_WAIT_S = 2.0  # re-check interval while an orphaned trainer still holds the device


def train_command(row) -> list[str]:
    """The trainer's argv (list args, no shell); torchrun when the run spans several processes."""
    run_dir = Path(row["log_path"]).parent
    args = ["-m", "scripts.train", "--preset", row["preset"], "--device", row["device"],
            "--run-dir", str(run_dir), "--out", str(run_dir / "model.pt"), "--no-progress"]
    for key, value in json.loads(row["overrides"]).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    if row["resume"]:
        args.append("--resume")
    if row["world_size"] > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                f"--nproc_per_node={row['world_size']}", *args]
    return [sys.executable, *args]


def supervise(device: str) -> None:
    with open(proc.lock_path(db.runs_dir(), device), "a") as lock:
        while True:
            if not proc.try_lock(lock, attempts=10):
                _say(f"{device}: another supervisor holds the lock; leaving the queue to it")
                return
            try:
                while (run_id := _claim_next(device)) is not None:
                    _run_one(run_id)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            # A launch just before the unlock saw the lock held and counted on us: look again.
            if not _has_queued(device):
                return


def _has_queued(device: str) -> bool:
    conn = db.connect()
    try:
        return conn.execute("SELECT 1 FROM runs WHERE device = ? AND status = 'queued'",
                            (device,)).fetchone() is not None
    finally:
        conn.close()


def _claim_next(device: str) -> str | None:
    """Atomically move the device's oldest queued run to running (owned by this process)."""
    me = os.getpid()
    while True:
        runs.reconcile()  # closes rows of trainers that died without a supervisor
        with db.tx() as conn:
            busy = conn.execute("SELECT 1 FROM runs WHERE device = ? AND status = 'running'",
                                (device,)).fetchone()
            if busy is None:
                row = conn.execute("SELECT id, attempts FROM runs WHERE device = ? AND status = "
                                   "'queued' ORDER BY queued_at, id LIMIT 1", (device,)).fetchone()
                if row is None:
                    return None
                db.transition(conn, row["id"], "running", supervisor_pid=me,
                              supervisor_token=proc.proc_token(me), started=db.now(),
                              attempts=row["attempts"] + 1, pid=None, pid_token=None)
                return row["id"]
        time.sleep(BUSY_WAIT_S)  # an orphaned trainer (its supervisor was killed) still runs


def _run_one(run_id: str) -> None:
    conn = db.connect()
    try:
        row = db.row(conn, run_id)
    finally:
        conn.close()
    log_path = Path(row["log_path"])
    metrics_path = log_path.parent / "metrics.jsonl"
    if not row["resume"] and row["attempts"] > 1 and metrics_path.exists():
        # Starting over: keep the old attempt's curve, but out of the new one's way.
        metrics_path.replace(metrics_path.with_name(f"metrics.attempt{row['attempts'] - 1}.jsonl"))
    cmd = train_command(row)
    with open(log_path, "ab") as log:
        kind = "resume" if row["resume"] else "start"
        log.write(f"\n=== {db.now()} attempt {row['attempts']} ({kind}): {shlex.join(cmd)}\n"
                  .encode())
        log.flush()
        try:
            child = subprocess.Popen(
                cmd, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)  # own process group: cancel signals all of it
        except OSError as exc:
            log.write(f"could not start the trainer: {exc}\n".encode())
            child = None
    if child is None:
        code = 127
    else:
        with db.tx() as conn:
            db.update(conn, run_id, pid=child.pid, pid_token=proc.proc_token(child.pid))
        _say(f"{run_id}: trainer pid {child.pid} started")
        code = _wait(run_id, child, metrics_path)
        if code != 0:  # sweep up stragglers (loader/torchrun workers) of a killed trainer
            proc.signal_group(child.pid, signal.SIGKILL)
    with db.tx() as conn:
        cancel_requested = db.row(conn, run_id)["cancel_deadline"] is not None
        status, fields = proc.outcome(log_path, cancel_requested, code)
        db.transition(conn, run_id, status, only_from={"running"}, **fields)
    _say(f"{run_id}: {proc.describe_exit(code)} -> {status}")


def _wait(run_id: str, child: subprocess.Popen, metrics_path: Path) -> int:
    """Wait for the trainer, enforcing a cancel request and mirroring progress into the DB."""
    termed = killed = False
    seen = None
    while True:
        try:
            return child.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        conn = db.connect()
        try:
            deadline = db.row(conn, run_id)["cancel_deadline"]
        finally:
            conn.close()
        if deadline is not None and not termed:
            # One SIGTERM only: the trainer stops at its next step boundary and writes resume.pt.
            proc.signal_group(child.pid, signal.SIGTERM)
            termed = True
        if deadline is not None and not killed and time.time() >= deadline:
            proc.signal_group(child.pid, signal.SIGKILL)
            killed = True
        try:
            stat = metrics_path.stat()
            mark = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            mark = None
        if mark != seen:
            seen = mark
            progress, eta, metrics = proc.summarize_metrics(proc.read_jsonl(metrics_path))
            with db.tx() as conn:
                db.update(conn, run_id, progress=progress, eta=eta, metrics=metrics)


def _say(message: str) -> None:
    print(f"{db.now()} [supervisor {os.getpid()}] {message}", flush=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in runs.DEVICES[1:]:
        print(f"usage: python -m core.runs.supervisor {{{','.join(runs.DEVICES[1:])}}}",
              file=sys.stderr)
        return 2
    supervise(argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Detached per-device supervisor: `python -m core.runs.supervisor DEVICE`.

launch() and resume() (and ensure_supervisors()) start one. It holds runs/<DEVICE>.lock while it
drains that device's queue, oldest run first, one trainer at a time. For each run it starts the
trainer (own process group), then claims the run in one transaction: queued -> running with the
trainer's pid, compare-and-set on the attempt. If the claim loses (the run was cancelled
meanwhile) the trainer is killed at once and the run's files are left as they were. It then
mirrors progress into the registry, enforces a cancel (SIGTERM, SIGKILL at the deadline), sweeps
the trainer's group before reaping it, and records the real exit status, again as a compare-and-set,
so a stale supervisor changes nothing. It logs to runs/supervisor-<DEVICE>.log, rotated
(LOG_MAX_BYTES, LOG_BACKUPS), since supervisors come and go for the life of the machine.
"""
from __future__ import annotations

import fcntl
import json
import logging
import logging.handlers
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.paths import REPO_ROOT
from core.runs import process as proc
from core.runs import registry as db
from core.runs.reconcile import reconcile

POLL_S = 0.25      # how quickly an exit, a cancel request or a new metrics line is noticed
BUSY_WAIT_S = 2.0  # re-check interval while an orphaned trainer still holds the device
STALE_GRACE_S = 10.0  # our run was taken over (closed, resumed): SIGTERM, then SIGKILL after this
LOG_MAX_BYTES = 1_000_000  # supervisor-<DEVICE>.log is rotated past this size ...
LOG_BACKUPS = 3            # ... keeping this many older files (.1 newest)
log = logging.getLogger(__name__)


def train_command(row) -> list[str]:
    """The trainer's argv (list args, no shell); torchrun when the run spans several processes."""
    from core.training.config import override_argv  # lazy: core.training loads torch

    run_dir = Path(row["log_path"]).parent
    args = ["-m", "scripts.train", "--preset", row["preset"], "--device", row["device"],
            "--run-dir", str(run_dir), "--out", str(run_dir / "model.pt"), "--no-progress",
            *override_argv(json.loads(row["overrides"]))]
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
                while run_next(device):
                    pass
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
            # A launch just before the unlock saw the lock held and counted on us: look again.
            if not _has_queued(device):
                return


def run_next(device: str) -> bool:
    """Start the device's oldest queued run and see it to its end. False when none is queued."""
    row = _next_queued(device)
    if row is None:
        return False
    log_path = Path(row["log_path"])
    metrics_path = log_path.parent / "metrics.jsonl"
    attempt = row["attempts"] + 1
    child = start_trainer(row, attempt)
    expect = {"expect_status": "queued", "expect_attempt": row["attempts"]}
    if child is None:
        with db.tx() as conn:
            db.transition(conn, row["id"], "failed", **expect, exit_code=127,
                          error=f"could not start the trainer\n--- last log lines ---\n{proc.tail(log_path, 5)}")
        return True
    me = proc.identify(os.getpid())
    with db.tx() as conn:
        claimed = db.transition(conn, row["id"], "running", **expect, attempts=attempt, started=db.now(),
                                pid=child.pid, pid_token=proc.proc_token(child.pid),
                                supervisor_pid=me.pid, supervisor_token=me.token)
    if not claimed:  # cancelled (or taken) between the pick and the claim: the trainer must not live
        _say(f"{row['id']}: no longer queued; trainer pid {child.pid} killed ({proc.describe_exit(proc.stop_child(child))})")
        return True
    if not row["resume"] and row["attempts"] > 0 and metrics_path.exists():
        # Starting over: keep the old attempt's curve, but out of the new one's way. Only now that
        # the claim won: a lost claim started no attempt. The trainer is seconds (torch import, a
        # first step) from its first metrics line, the claim a moment after its start.
        metrics_path.replace(metrics_path.with_name(f"metrics.attempt{row['attempts']}.jsonl"))
    _say(f"{row['id']}: attempt {attempt}, trainer pid {child.pid} started")
    code = _watch(row["id"], attempt, child, metrics_path)
    with db.tx() as conn:
        cancel_requested = db.row(conn, row["id"])["cancel_deadline"] is not None
        status, fields = proc.outcome(log_path, cancel_requested, code)
        recorded = db.transition(conn, row["id"], status, expect_status="running", expect_attempt=attempt, **fields)
    _say(f"{row['id']}: {proc.describe_exit(code)} -> {status}" + ("" if recorded else " (stale: not recorded)"))
    return True


def _next_queued(device: str):
    """The oldest queued run of the device, once nothing runs there; None if none is queued."""
    while True:
        reconcile()  # closes rows of trainers that died without a supervisor
        conn = db.connect()
        try:
            busy = conn.execute("SELECT 1 FROM runs WHERE device = ? AND status = 'running'", (device,)).fetchone()
            if busy is None:
                return conn.execute("SELECT * FROM runs WHERE device = ? AND status = 'queued' "
                                    "ORDER BY queued_at, id LIMIT 1", (device,)).fetchone()
        finally:
            conn.close()
        time.sleep(BUSY_WAIT_S)  # an orphaned trainer (its supervisor was killed) still runs


def start_trainer(row, attempt: int) -> subprocess.Popen | None:
    """Start the trainer in its own session (cancel signals its whole group), logging to train.log."""
    cmd = train_command(row)
    with open(row["log_path"], "ab") as log:
        kind = "resume" if row["resume"] else "start"
        log.write(f"\n=== {db.now()} attempt {attempt} ({kind}): {shlex.join(cmd)}\n".encode())
        log.flush()
        try:
            return subprocess.Popen(cmd, cwd=REPO_ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:
            log.write(f"could not start the trainer: {exc}\n".encode())
            return None


def _watch(run_id: str, attempt: int, child: subprocess.Popen, metrics_path: Path) -> int:
    """Wait for the trainer, enforcing a cancel and mirroring progress into the registry. Its
    group is swept with SIGKILL (loader or torchrun workers left behind) before it is reaped."""
    termed = killed = False
    stale_deadline = seen = None
    while not proc.exited(child):
        time.sleep(POLL_S)
        conn = db.connect()
        try:
            row = db.row(conn, run_id)
        finally:
            conn.close()
        deadline = row["cancel_deadline"]
        if (row["status"], row["attempts"]) != ("running", attempt):  # someone else owns the run now
            stale_deadline = stale_deadline or time.time() + STALE_GRACE_S
            deadline = stale_deadline
        if deadline is not None and not termed:
            # One SIGTERM only: the trainer stops at its next step boundary and writes resume.pt.
            proc.signal_child(child, signal.SIGTERM)
            termed = True
        if deadline is not None and not killed and time.time() >= deadline:
            proc.signal_child(child, signal.SIGKILL)
            killed = True
        seen = _mirror_progress(run_id, attempt, metrics_path, seen)
    return proc.stop_child(child)


def _mirror_progress(run_id: str, attempt: int, metrics_path: Path, seen):
    try:
        stat = metrics_path.stat()
        mark = (stat.st_size, stat.st_mtime_ns)
    except OSError:
        mark = None
    if mark != seen:
        records = proc.records()
        progress, eta, metrics = records.summarize(records.read_metrics(metrics_path))
        with db.tx() as conn:
            db.update(conn, run_id, expect_status="running", expect_attempt=attempt,
                      progress=progress, eta=eta, metrics=metrics)
    return mark


def _has_queued(device: str) -> bool:
    conn = db.connect()
    try:
        return conn.execute("SELECT 1 FROM runs WHERE device = ? AND status = 'queued'",
                            (device,)).fetchone() is not None
    finally:
        conn.close()


def _say(message: str) -> None:
    log.info(message)


def setup_log(device: str) -> None:
    """Send this supervisor's messages to runs/supervisor-<DEVICE>.log, rotated. Several
    supervisors of a device may overlap for a moment (a spare one exits at once); each rotates on
    its own, which at worst cuts a backup short, never lets the log grow without bound."""
    handler = logging.handlers.RotatingFileHandler(proc.supervisor_log(db.runs_dir(), device),
                                                   maxBytes=LOG_MAX_BYTES, backupCount=LOG_BACKUPS)
    handler.setFormatter(logging.Formatter("%(asctime)s [supervisor %(process)d] %(message)s"))
    for old in log.handlers[:]:  # main() once per process; again only in tests
        log.removeHandler(old)
        old.close()
    log.addHandler(handler)
    log.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or argv[0] not in db.QUEUES:
        print(f"usage: python -m core.runs.supervisor {{{','.join(db.QUEUES)}}}", file=sys.stderr)
        return 2
    setup_log(argv[0])
    try:
        supervise(argv[0])
    except Exception:  # into the current log: after a rotation, stderr still points at a backup
        log.exception("supervisor crashed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Make the registry tell the truth about processes; shared by the API's reads and the supervisor.

Nothing is trusted to clean up after itself. A running row whose supervisor and trainer are both
gone is closed from the run's own files (succeeded, cancelled or failed). A trainer whose
supervisor is gone (an orphan) still runs: a cancel that is overdue for it is enforced here with
SIGKILL. Reconciling never starts a supervisor (the supervisor reconciles too); unserved_devices()
says which queues need one, and the API's reads start it (api.ensure_supervisors).
"""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from core.runs import process as proc
from core.runs import registry as db


def reconcile() -> None:
    """Close running rows whose processes are gone; SIGKILL orphaned trainers past their cancel
    deadline. Cheap when nothing is running (one SELECT)."""
    if not db.db_path().exists():
        return
    proc.reap_children()
    conn = db.connect()
    try:
        running = conn.execute("SELECT * FROM runs WHERE status = 'running'").fetchall()
    finally:
        conn.close()
    for row in running:
        if proc.alive(row["supervisor_pid"], row["supervisor_token"]):
            continue  # a live supervisor records the exit itself, with the real exit code
        if proc.alive(row["pid"], row["pid_token"]):
            deadline = row["cancel_deadline"]
            if deadline is not None and time.time() >= deadline:
                proc.signal_group(row["pid"], row["pid_token"], signal.SIGKILL)
            continue
        close_vanished(row)


def close_vanished(row) -> bool:
    """Record how a run ended whose trainer and supervisor are both gone (no exit code seen).
    A compare-and-set on the attempt read: a newer attempt is never touched."""
    status, fields = proc.outcome(Path(row["log_path"]), row["cancel_deadline"] is not None, exit_code=None)
    with db.tx() as conn:
        return db.transition(conn, row["id"], status, expect_status="running",
                             expect_attempt=row["attempts"], **fields)


def terminate_orphan(row) -> bool:
    """SIGTERM the trainer of a running row whose supervisor is gone (cancel() asks this once;
    reconcile() follows with SIGKILL at the deadline). False if there is no such orphan."""
    if proc.alive(row["supervisor_pid"], row["supervisor_token"]):
        return False
    return proc.signal_group(row["pid"], row["pid_token"], signal.SIGTERM)


def kick_delay() -> float:
    """Seconds a queued run waits for its launcher's supervisor before a read starts another one
    (DIGITSUM_RUNS_KICK_AFTER_S, default 10)."""
    raw = os.environ.get("DIGITSUM_RUNS_KICK_AFTER_S", "10")
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"DIGITSUM_RUNS_KICK_AFTER_S must be a number of seconds, got {raw!r}") from None


def unserved_devices(kick_after: float | None = None) -> list[str]:
    """Devices with runs queued for over `kick_after` s (kick_delay() by default) and no
    supervisor holding their lock, e.g. after a reboot."""
    if not db.db_path().exists():
        return []
    if kick_after is None:
        kick_after = kick_delay()
    conn = db.connect()
    try:
        waiting = conn.execute("SELECT DISTINCT device FROM runs WHERE status = 'queued' AND queued_at <= ?",
                               (time.time() - kick_after,)).fetchall()
    finally:
        conn.close()
    return [device for (device,) in waiting if not proc.device_supervised(db.runs_dir(), device)]

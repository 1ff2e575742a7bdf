"""Run registry storage: the SQLite table and the run state machine (used by core.runs).

Why SQLite: several processes touch a run (the launcher, its detached supervisor, every status
read from the dashboard or the CLI), and none may see a half-done update. WAL mode lets readers
run while the supervisor writes; every read-modify-write takes BEGIN IMMEDIATE, so two launchers
or a launcher and a supervisor can never both claim the same run or the same device.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from core import paths

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
# The state machine. failed/cancelled -> queued is resume(); succeeded is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),
    "cancelled": frozenset({"queued"}),
}
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, created TEXT NOT NULL, preset TEXT NOT NULL,
    overrides TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL DEFAULT '{}',
    device TEXT NOT NULL, world_size INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL CHECK (status IN ('queued','running','succeeded','failed','cancelled')),
    pid INTEGER, pid_token TEXT, supervisor_pid INTEGER, supervisor_token TEXT,
    progress REAL NOT NULL DEFAULT 0, eta REAL, metrics TEXT NOT NULL DEFAULT '{}',
    checkpoint TEXT, log_path TEXT NOT NULL, error TEXT, exit_code INTEGER,
    started TEXT, finished TEXT, queued_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    resume INTEGER NOT NULL DEFAULT 0, cancel_deadline REAL);
CREATE INDEX IF NOT EXISTS runs_device_status ON runs (device, status);
"""
_COLUMNS = frozenset({
    "id", "created", "preset", "overrides", "config", "device", "world_size", "status", "pid", "pid_token",
    "supervisor_pid", "supervisor_token", "progress", "eta", "metrics", "checkpoint", "log_path", "error",
    "exit_code", "started", "finished", "queued_at", "attempts", "resume", "cancel_deadline"})


class RunError(RuntimeError):
    """A registry operation that cannot be done (unknown run, wrong status, ...)."""


class TransitionError(RunError):
    """A status change the state machine does not allow."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One run as the API shows it. pid is the live trainer's (None unless running); progress is
    0..1 and eta seconds, from metrics.jsonl; metrics holds the best/final val_mae, val_digit_acc
    (plus the checkpoint's own metrics once it succeeded); error is a summary ending in the last
    log lines; attempts counts starts (a resume adds one)."""
    id: str
    created: str
    preset: str
    overrides: dict
    config: dict
    device: str
    world_size: int
    status: str
    pid: int | None
    progress: float
    eta: float | None
    metrics: dict
    checkpoint: str | None
    log_path: str
    error: str | None
    exit_code: int | None
    started: str | None
    finished: str | None
    attempts: int

    @property
    def run_dir(self) -> Path:
        return Path(self.log_path).parent

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def check_transition(old: str, new: str) -> None:
    if old not in TRANSITIONS or new not in TRANSITIONS:
        raise TransitionError(f"unknown run status {old!r} or {new!r}; expected one of {STATUSES}")
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old])) or "nothing (final)"
        raise TransitionError(f"a {old} run cannot become {new}; from {old}: {allowed}")


# --- storage -------------------------------------------------------------------------------------
def runs_dir() -> Path:
    """runs/ under the repo root; DIGITSUM_RUNS_DIR overrides it (tests use a temp dir)."""
    return paths.runs_dir()


def db_path() -> Path:
    return runs_dir() / "registry.sqlite"


def connect() -> sqlite3.Connection:
    runs_dir().mkdir(parents=True, exist_ok=True)
    # Autocommit mode: plain reads take no lock; writers use tx()'s BEGIN IMMEDIATE.
    conn = sqlite3.connect(db_path(), timeout=30, isolation_level=None)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")  # readers (the dashboard) never block the supervisor
    conn.execute("PRAGMA busy_timeout=30000")
    conn.executescript(_SCHEMA)
    return conn


@contextlib.contextmanager
def tx() -> Iterator[sqlite3.Connection]:
    """One write transaction, taken up front, so read-then-update is atomic across processes."""
    conn = connect()
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def row(conn: sqlite3.Connection, run_id: str) -> sqlite3.Row:
    found = conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
    if found is None:
        raise RunError(f"no run with id {run_id!r} in {db_path()}")
    return found


def update(conn: sqlite3.Connection, run_id: str, **fields) -> None:
    unknown = set(fields) - _COLUMNS  # column names go into the SQL text: only known ones
    if unknown:
        raise ValueError(f"unknown run column(s) {sorted(unknown)}")
    for key in ("metrics", "overrides", "config"):
        if key in fields:
            fields[key] = json.dumps(fields[key])
    sets = ", ".join(f"{k} = ?" for k in fields)
    conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*fields.values(), run_id))


def transition(conn, run_id: str, new: str, *, only_from=None, **fields) -> bool:
    """Move a run to `new` inside an open transaction. Returns False (and changes nothing) when
    the run is no longer in one of `only_from` (someone else got there first); raises
    TransitionError when the state machine forbids the change."""
    old = row(conn, run_id)["status"]
    if only_from is not None and old not in only_from:
        return False
    check_transition(old, new)
    if new in TERMINAL:
        fields.setdefault("finished", now())
        fields.update(pid=None, pid_token=None, supervisor_pid=None, supervisor_token=None)
    update(conn, run_id, status=new, **fields)
    return True


def to_run(row: sqlite3.Row) -> Run:
    names = {f.name for f in dataclasses.fields(Run)}
    data = {k: row[k] for k in row.keys() if k in names}
    for key in ("metrics", "overrides", "config"):
        data[key] = json.loads(data[key] or "{}")
    return Run(**data)


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")

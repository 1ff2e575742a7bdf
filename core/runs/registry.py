"""The run registry: one SQLite table and the run state machine.

Several processes write a run (the launcher, its supervisor, status reads that reconcile), so every
status change is a compare-and-set on (status, attempts): `UPDATE ... WHERE id=? AND status=? AND
attempts=?`, and the row count says who won. A stale writer, such as the supervisor of an earlier
attempt after a resume, matches no row and changes nothing. WAL mode lets readers run while a
writer writes; writers take BEGIN IMMEDIATE so read-then-update is atomic across processes.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

from core import paths
from core.constants import QUEUES, STATUSES  # noqa: F401  (QUEUES: one queue, one running run, per device)

# The state machine over core.constants.STATUSES. failed/cancelled -> queued is resume(); succeeded is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled", "failed"}),
    "running": frozenset({"succeeded", "failed", "cancelled"}),
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),
    "cancelled": frozenset({"queued"}),
}
if set(TRANSITIONS) != set(STATUSES):  # a status added to core.constants needs its transitions here
    raise RuntimeError(f"TRANSITIONS covers {sorted(TRANSITIONS)}; expected exactly STATUSES {STATUSES}")
# Derived from the table, never listed again: a live run can still be cancelled, a resumable one requeued.
LIVE = frozenset(s for s in STATUSES if "cancelled" in TRANSITIONS[s])
TERMINAL = frozenset(STATUSES) - LIVE
RESUMABLE = frozenset(s for s in STATUSES if "queued" in TRANSITIONS[s])
SCHEMA_VERSION = 2  # PRAGMA user_version; older files get their missing columns added
# Every column with its declaration. Each has a default, so ALTER TABLE ADD COLUMN can add any of
# them to an older file. `attempts` counts starts: the claim (queued -> running) adds one.
COLUMNS: dict[str, str] = {
    "id": "TEXT PRIMARY KEY", "created": "TEXT NOT NULL DEFAULT ''", "preset": "TEXT NOT NULL DEFAULT ''",
    "overrides": "TEXT NOT NULL DEFAULT '{}'", "config": "TEXT NOT NULL DEFAULT '{}'",
    "device": "TEXT NOT NULL DEFAULT 'cpu'", "world_size": "INTEGER NOT NULL DEFAULT 1",
    "status": "TEXT NOT NULL DEFAULT 'queued' CHECK (status IN "
              f"({','.join(repr(s) for s in STATUSES)}))",
    "pid": "INTEGER", "pid_token": "TEXT", "supervisor_pid": "INTEGER", "supervisor_token": "TEXT",
    "progress": "REAL NOT NULL DEFAULT 0", "eta": "REAL", "metrics": "TEXT NOT NULL DEFAULT '{}'",
    "checkpoint": "TEXT", "log_path": "TEXT NOT NULL DEFAULT ''", "error": "TEXT", "exit_code": "INTEGER",
    "started": "TEXT", "finished": "TEXT", "queued_at": "REAL NOT NULL DEFAULT 0",
    "attempts": "INTEGER NOT NULL DEFAULT 0", "resume": "INTEGER NOT NULL DEFAULT 0",
    "cancel_deadline": "REAL",
}
_JSON = ("metrics", "overrides", "config")


class RunError(RuntimeError):
    """A registry operation that cannot be done (unknown run, wrong status, ...)."""


class TransitionError(RunError):
    """A status change the state machine does not allow."""


@dataclasses.dataclass(frozen=True)
class Run:
    """One run as the API shows it. pid is the live trainer's (None unless running); progress is
    0..1 and eta seconds, from metrics.jsonl; metrics holds the best/final val_mae, val_digit_acc;
    error ends in the last log lines; attempts counts starts (a resume adds one); cancel_deadline
    is set once a cancel was requested (the time SIGKILL follows SIGTERM)."""
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
    cancel_deadline: float | None = None

    @property
    def run_dir(self) -> Path:
        return Path(self.log_path).parent

    @property
    def cancelling(self) -> bool:
        """A cancel was requested but the trainer has not stopped yet (status still running)."""
        return self.cancel_deadline is not None and self.status in LIVE

    cancel_requested = cancelling

    @property
    def display_status(self) -> str:
        """The status to show a user: "cancelling" while a requested cancel is under way."""
        return "cancelling" if self.cancelling else self.status

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "cancelling": self.cancelling, "display_status": self.display_status}


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
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        _migrate(conn)
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Create the table, or add the columns an older registry file lacks; then stamp the version."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        columns = ", ".join(f"{name} {decl}" for name, decl in COLUMNS.items())
        conn.execute(f"CREATE TABLE IF NOT EXISTS runs ({columns})")
        have = {r["name"] for r in conn.execute("PRAGMA table_info(runs)")}
        for name, decl in COLUMNS.items():
            if name not in have:
                conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {decl}")
        conn.execute("CREATE INDEX IF NOT EXISTS runs_device_status ON runs (device, status)")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


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


def update(conn: sqlite3.Connection, run_id: str, *, expect_status: str | None = None,
           expect_attempt: int | None = None, **fields) -> bool:
    """Set columns of one run; with expect_status/expect_attempt only if the row still has them.
    True if the row was changed."""
    unknown = set(fields) - set(COLUMNS)  # column names go into the SQL text: only known ones
    if unknown:
        raise ValueError(f"unknown run column(s) {sorted(unknown)}")
    for key in _JSON:
        if key in fields:
            fields[key] = json.dumps(fields[key])
    sql = "UPDATE runs SET " + ", ".join(f"{k} = ?" for k in fields) + " WHERE id = ?"
    params = [*fields.values(), run_id]
    if expect_status is not None:
        sql, params = sql + " AND status = ?", [*params, expect_status]
    if expect_attempt is not None:
        sql, params = sql + " AND attempts = ?", [*params, expect_attempt]
    return conn.execute(sql, params).rowcount == 1


def transition(conn: sqlite3.Connection, run_id: str, new: str, *, expect_status: str | None = None,
               expect_attempt: int | None = None, **fields) -> bool:
    """Compare-and-set the run from (expect_status, expect_attempt) to `new`. False, and nothing
    changed, when the row no longer matches (someone else got there first). Raises TransitionError
    when the state machine forbids the change. expect_status None: the status the row has now."""
    old = expect_status if expect_status is not None else row(conn, run_id)["status"]
    check_transition(old, new)
    if new in TERMINAL:
        fields.setdefault("finished", now())
        fields.update(pid=None, pid_token=None, supervisor_pid=None, supervisor_token=None)
    return update(conn, run_id, expect_status=old, expect_attempt=expect_attempt, status=new, **fields)


def to_run(found: sqlite3.Row) -> Run:
    names = {f.name for f in dataclasses.fields(Run)}
    data = {k: found[k] for k in found.keys() if k in names}
    for key in _JSON:
        data[key] = json.loads(data[key] or "{}")
    return Run(**data)


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")

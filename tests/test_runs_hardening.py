"""Hardening of the run registry (core.runs, scripts.runs): reads restart a stuck queue, run ids
that never collide, a previous curve moved aside only by a won claim, bounded supervisor logs, a
quiet CLI on a closed pipe, and one definition of the run statuses. No training: stand-in processes."""
from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest

from core.constants import STATUSES
from core.paths import REPO_ROOT
from core.runs import api as runs
from core.runs import process as proc
from core.runs import registry as db
from core.runs import supervisor
from tests.test_runs import force

SMOKE = {"preset": "smoke", "device": "cpu"}
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


# --- 1. reads start a missing supervisor for queued work -----------------------------------------
def test_reads_start_a_missing_supervisor_for_a_stuck_queue(no_spawn, monkeypatch):
    monkeypatch.delenv("DIGITSUM_RUNS_KICK_AFTER_S", raising=False)  # the default delay, 10 s
    run = runs.launch(SMOKE, start=False)
    runs.list_runs()
    runs.get(run.id)
    assert no_spawn == []  # just queued: its launcher's supervisor gets the delay to take the lock
    force(run.id, queued_at=time.time() - 60)  # queued a minute ago, e.g. before a reboot
    with open(proc.lock_path(db.runs_dir(), "cpu"), "a") as lock:
        assert proc.try_lock(lock)  # a live supervisor drains the queue: nothing to start
        runs.list_runs()
        assert no_spawn == []
    assert [r.id for r in runs.list_runs()] == [run.id] and no_spawn == ["cpu"]  # the supervisor died
    runs.get(run.id)
    runs.list_checkpoints()
    assert no_spawn == ["cpu"]  # the one just started may still be on its way to the lock
    runs.cancel(run.id)
    monkeypatch.setattr(runs, "_KICKED", {})  # the delay is over
    runs.list_runs()
    assert no_spawn == ["cpu"]  # no queued work, no supervisor


def test_read_with_an_unusable_kick_delay_says_what_it_expected(no_spawn, monkeypatch):
    runs.launch(SMOKE, start=False)
    with monkeypatch.context() as env, pytest.raises(ValueError, match="KICK_AFTER_S must be a number of seconds.*'soon'"):
        env.setenv("DIGITSUM_RUNS_KICK_AFTER_S", "soon")  # (undone before conftest's teardown reads)
        runs.list_runs()


# --- 2. run ids never collide ------------------------------------------------------------------------
def test_twenty_launches_in_one_second_get_twenty_runs(no_spawn, monkeypatch):
    class Frozen(datetime):  # every launch in the same second: only the random part tells them apart
        @classmethod
        def now(cls, tz=None):
            return datetime(2024, 5, 1, 12, 0, 0)

    monkeypatch.setattr(runs, "datetime", Frozen)
    runs.validate_config(SMOKE)  # import core.training once, outside the threads
    start, errors, ids = threading.Barrier(20), [], []

    def launch():
        try:
            start.wait()
            ids.append(runs.launch(SMOKE, start=False).id)
        except Exception as exc:  # noqa: BLE001  (collected: a thread's exception would be lost)
            errors.append(exc)

    threads = [threading.Thread(target=launch) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(ids) == len(set(ids)) == 20
    assert all(len(i.removeprefix("20240501-120000-")) >= 16 for i in ids)  # >= 8 random bytes
    assert sorted(r.id for r in runs.list_runs()) == sorted(ids)
    assert all((db.runs_dir() / i / "train.log").is_file() for i in ids)


# --- 3. the previous curve moves aside only after a won claim ----------------------------------------
def test_metrics_curve_is_moved_aside_only_by_a_won_claim(no_spawn, monkeypatch):
    run = runs.launch(SMOKE, start=False)
    force(run.id, attempts=1)  # attempt 1 ran and failed; this one starts over (no resume.pt)
    curve, aside = run.run_dir / "metrics.jsonl", run.run_dir / "metrics.attempt1.jsonl"
    curve.write_text('{"phase": "cnn", "progress": 0.5}\n')
    monkeypatch.setattr(supervisor, "train_command", lambda row: SLEEPER)
    real_start, started = supervisor.start_trainer, []

    def start_then_cancel(row, attempt):
        started.append(real_start(row, attempt))
        runs.cancel(row["id"])  # the claim will lose
        return started[-1]

    monkeypatch.setattr(supervisor, "start_trainer", start_then_cancel)
    assert supervisor.run_next("cpu")
    assert started[0].returncode is not None and runs.get(run.id).status == "cancelled"
    assert curve.read_text() == '{"phase": "cnn", "progress": 0.5}\n' and not aside.exists()

    runs.resume(run.id)
    monkeypatch.setattr(supervisor, "start_trainer", real_start)
    watched = []

    def watch(run_id, attempt, child, metrics_path):
        watched.append((attempt, metrics_path.exists()))
        return proc.stop_child(child)

    monkeypatch.setattr(supervisor, "_watch", watch)
    assert supervisor.run_next("cpu")
    assert watched == [(2, False)]  # the won claim moved the old curve out of the new attempt's way
    assert aside.read_text() == '{"phase": "cnn", "progress": 0.5}\n'


# --- 4. supervisor logs are bounded -------------------------------------------------------------------
def test_supervisor_log_rotates_within_its_bound(registry, monkeypatch):
    monkeypatch.setattr(supervisor, "LOG_MAX_BYTES", 1000)
    monkeypatch.setattr(proc, "try_lock", lambda fd, **kw: False)  # each start finds the queue served
    registry.mkdir(parents=True)
    for _ in range(60):  # ~90 bytes a line: several times the bound
        assert supervisor.main(["cpu"]) == 0
    logs = sorted(registry.glob("supervisor-cpu.log*"))
    names = [p.name for p in logs]
    assert names == ["supervisor-cpu.log", *(f"supervisor-cpu.log.{i}" for i in range(1, supervisor.LOG_BACKUPS + 1))]
    assert all(0 < p.stat().st_size <= 1000 for p in logs)
    last = (registry / "supervisor-cpu.log").read_text().splitlines()[-1]
    assert "another supervisor holds the lock" in last and f"[supervisor {os.getpid()}]" in last


# --- 5. a closed pipe is not an error worth a traceback ----------------------------------------------
def test_status_json_into_a_closed_pipe_exits_quietly(no_spawn):
    run = runs.launch(SMOKE, start=False)
    force(run.id, status="failed", error="x" * 300_000)  # far more than a pipe holds
    env = {**os.environ, "DIGITSUM_RUNS_DIR": str(db.runs_dir())}
    cli = subprocess.Popen([sys.executable, "-m", "scripts.runs", "status", run.id, "--json"], cwd=REPO_ROOT,
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.run(["head", "-c", "10"], stdin=cli.stdout, capture_output=True, timeout=60)
    cli.stdout.close()  # head is the only reader, and it has gone
    err = cli.stderr.read().decode()
    assert cli.wait(60) == 1 and head.stdout == b'{\n  "id": '
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


# --- 6. one definition of the run statuses ------------------------------------------------------------
SCOPE = [*sorted((REPO_ROOT / "core" / "runs").glob("*.py")), REPO_ROOT / "scripts" / "runs.py"]


def status_lists(path: Path) -> list[str]:
    """Literal tuples/lists/sets naming two or more statuses, outside the state-machine table."""
    tree = ast.parse(path.read_text())
    table = {id(n) for a in ast.walk(tree) if isinstance(a, ast.Assign | ast.AnnAssign)
             for t in (a.targets if isinstance(a, ast.Assign) else [a.target])
             if isinstance(t, ast.Name) and t.id == "TRANSITIONS" for n in ast.walk(a)}
    return [f"{path.name}:{n.lineno}" for n in ast.walk(tree)
            if isinstance(n, ast.Tuple | ast.List | ast.Set) and id(n) not in table
            and sum(isinstance(e, ast.Constant) and e.value in STATUSES for e in n.elts) >= 2]


def test_statuses_have_one_definition(registry):
    assert [hit for path in SCOPE for hit in status_lists(path)] == []
    assert db.STATUSES is STATUSES and runs.STATUSES is STATUSES and set(db.TRANSITIONS) == set(STATUSES)
    assert db.LIVE | db.TERMINAL == set(STATUSES) and not db.LIVE & db.TERMINAL
    assert db.LIVE == {"queued", "running"}
    run = runs.launch(SMOKE, start=False)
    with db.tx() as conn, pytest.raises(sqlite3.IntegrityError, match="CHECK"):
        db.update(conn, run.id, status="paused")  # the table's CHECK is built from STATUSES

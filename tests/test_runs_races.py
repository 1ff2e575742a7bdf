"""Races of the run registry (core.runs), each staged with stand-in processes (no training):
compare-and-set on (status, attempt), the claim that records the trainer's pid, signals that check
identity or are sent before the reap, the locked child list, a cancel that never blocks, reads
that start one supervisor (not one per read) for a stuck queue, and an older registry file."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time

import psutil

from core.runs import api as runs
from core.runs import process as proc
from core.runs import registry as db
from core.runs import supervisor
from tests.test_runs import dead_process, force

SMOKE = {"preset": "smoke", "device": "cpu"}
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def read(run_id: str):
    conn = db.connect()
    try:
        return db.row(conn, run_id)
    finally:
        conn.close()


def test_stale_writer_cannot_overwrite_a_newer_attempt(no_spawn):
    run = runs.launch(SMOKE, start=False)
    with db.tx() as conn:  # attempt 1 starts; later its supervisor hangs and the run is closed
        assert db.transition(conn, run.id, "running", expect_status="queued", expect_attempt=0, attempts=1)
        assert db.transition(conn, run.id, "failed", expect_status="running", expect_attempt=1)
    runs.resume(run.id)
    with db.tx() as conn:
        assert db.transition(conn, run.id, "running", expect_status="queued", expect_attempt=1, attempts=2)
    with db.tx() as conn:  # the supervisor of attempt 1 wakes up and reports
        assert not db.update(conn, run.id, expect_status="running", expect_attempt=1, progress=0.9)
        assert not db.transition(conn, run.id, "succeeded", expect_status="running", expect_attempt=1)
    got = db.to_run(read(run.id))  # (no get(): its reconcile would close this process-less run)
    assert (got.status, got.attempts, got.progress) == ("running", 2, 0.0)


def test_older_registry_file_gets_the_missing_columns(registry):
    registry.mkdir(parents=True)
    old = sqlite3.connect(registry / "registry.sqlite")
    old.execute("CREATE TABLE runs (id TEXT PRIMARY KEY, created TEXT NOT NULL, preset TEXT NOT NULL, "
                "overrides TEXT NOT NULL DEFAULT '{}', config TEXT NOT NULL DEFAULT '{}', device TEXT NOT NULL, "
                "world_size INTEGER NOT NULL DEFAULT 1, status TEXT NOT NULL, pid INTEGER, pid_token TEXT, "
                "supervisor_pid INTEGER, supervisor_token TEXT, progress REAL NOT NULL DEFAULT 0, eta REAL, "
                "metrics TEXT NOT NULL DEFAULT '{}', checkpoint TEXT, log_path TEXT NOT NULL, error TEXT, "
                "exit_code INTEGER, started TEXT, finished TEXT, queued_at REAL NOT NULL)")
    old.execute("INSERT INTO runs (id, created, preset, device, status, log_path, queued_at) VALUES "
                "('old', '2024-01-01', 'smoke', 'cpu', 'failed', ?, 0)", (str(registry / "old" / "train.log"),))
    old.commit()
    old.close()
    [run] = runs.list_runs()
    assert (run.id, run.status, run.attempts, run.cancel_deadline) == ("old", "failed", 0, None)
    conn = db.connect()
    assert conn.execute("PRAGMA user_version").fetchone()[0] == db.SCHEMA_VERSION
    assert set(db.COLUMNS) <= {r["name"] for r in conn.execute("PRAGMA table_info(runs)")}


def test_identity_is_pid_and_psutil_create_time():
    me = proc.identify(os.getpid())
    assert me == (os.getpid(), psutil.Process().create_time()) and proc.alive(me.pid, me.token)
    child = subprocess.Popen(SLEEPER)
    token = proc.proc_token(child.pid)
    assert proc.alive(child.pid, token)
    child.kill()
    time.sleep(0.3)  # exited but not reaped: a zombie is not alive
    assert proc.identify(child.pid) is None and not proc.alive(child.pid, token)
    child.wait()
    assert not proc.alive(child.pid, token) and not proc.alive(None, token) and not proc.alive(me.pid, None)


def test_signals_to_a_stored_pid_check_its_identity_first(monkeypatch):
    sent = []
    monkeypatch.setattr(os, "killpg", lambda pid, sig: sent.append((pid, sig)))
    pid, token = dead_process()  # exited and reaped: its pid may belong to anyone now
    assert not proc.signal_group(pid, token, signal.SIGKILL)
    me = proc.identify(os.getpid())
    assert not proc.signal_group(me.pid, repr(me.create_time - 3600), signal.SIGTERM)  # a reused pid
    assert sent == []
    assert proc.signal_group(me.pid, me.token, 0) and sent == [(me.pid, 0)]


def test_supervisor_sweeps_the_group_before_reaping_the_trainer(no_spawn, monkeypatch, tmp_path):
    run = runs.launch(SMOKE, start=False)
    straggler = tmp_path / "straggler.pid"  # a loader/torchrun worker left behind in the group
    monkeypatch.setattr(supervisor, "train_command",
                        lambda row: ["sh", "-c", f"sleep 60 & echo $! > {straggler}; exit 3"])
    real_killpg, seen = os.killpg, []

    def killpg(pid, sig):
        seen.append(psutil.Process(pid).status())  # raises if the leader was already reaped
        real_killpg(pid, sig)

    monkeypatch.setattr(os, "killpg", killpg)
    assert supervisor.run_next("cpu")
    got = runs.get(run.id)
    assert got.status == "failed" and "exit code 3" in got.error and got.exit_code == 3
    assert seen == [psutil.STATUS_ZOMBIE]  # signalled while the kernel still held its pid
    pid = int(straggler.read_text())
    wait_until(lambda: proc.identify(pid) is None, 5)
    assert not supervisor.run_next("cpu")  # the queue is empty


def test_claim_records_the_pid_and_a_cancel_before_it_kills_the_trainer(no_spawn, monkeypatch):
    kept, started = runs.launch(SMOKE, start=False), []
    monkeypatch.setattr(supervisor, "train_command", lambda row: SLEEPER)
    real_start = supervisor.start_trainer

    def start_then_cancel(row, attempt):
        child = real_start(row, attempt)
        started.append(child)
        assert read(row["id"])["status"] == "queued" and read(row["id"])["pid"] is None
        runs.cancel(row["id"])  # the user cancels the still-queued run right now
        return child

    monkeypatch.setattr(supervisor, "start_trainer", start_then_cancel)
    force(kept.id, queued_at=time.time() + 60)  # served second
    victim = runs.launch(SMOKE, start=False)
    assert supervisor.run_next("cpu")
    [child] = started
    assert child.returncode == -signal.SIGKILL  # the claim lost: the trainer was killed and reaped
    got = runs.get(victim.id)
    assert got.status == "cancelled" and got.pid is None and got.attempts == 0

    claimed = []
    monkeypatch.setattr(supervisor, "start_trainer", real_start)

    def watch(run_id, attempt, child, metrics_path):
        claimed.append((dict(read(run_id)), child.pid, attempt))
        return proc.stop_child(child)

    monkeypatch.setattr(supervisor, "_watch", watch)
    assert supervisor.run_next("cpu")
    [(row, pid, attempt)] = claimed
    assert (row["status"], row["pid"], row["attempts"], attempt) == ("running", pid, 1, 1)
    assert float(row["pid_token"]) > 0 and row["supervisor_pid"] == os.getpid()
    assert runs.get(kept.id).status == "failed"


def test_spawn_waits_for_a_reap_in_progress(monkeypatch, tmp_path):
    """The child list is shared by Streamlit's script threads: reap and spawn must not interleave."""
    class Child:
        def __init__(self, *args, **kwargs):
            self.pid = 0

        def poll(self):
            return None

    overlapped = []

    class SlowChild(Child):
        def poll(self):  # another thread launches while this reap iterates the list
            if threads:
                return None
            spawner = threading.Thread(target=proc.spawn_supervisor, args=("cpu", tmp_path, tmp_path))
            spawner.start()
            spawner.join(0.3)
            overlapped.append(not spawner.is_alive())
            threads.append(spawner)
            return None

    threads: list[threading.Thread] = []
    children = [SlowChild()]
    monkeypatch.setattr(proc, "_CHILDREN", children)
    monkeypatch.setattr(subprocess, "Popen", Child)
    proc.reap_children()
    threads[0].join(5)
    assert overlapped == [False]  # the spawn waited for the reap to finish
    assert len(children) == 2 and isinstance(children[1], Child)


def test_cancel_returns_at_once_and_shows_cancelling(no_spawn, capsys):
    from scripts import runs as cli

    run = runs.launch(SMOKE, start=False)
    trainer = subprocess.Popen(SLEEPER, start_new_session=True)
    me = proc.identify(os.getpid())  # this process plays the live supervisor: it does the signalling
    force(run.id, status="running", attempts=1, pid=trainer.pid, pid_token=proc.proc_token(trainer.pid),
          supervisor_pid=me.pid, supervisor_token=me.token)
    try:
        began = time.monotonic()
        asked = runs.cancel(run.id, grace=60)
        assert time.monotonic() - began < 0.5
        assert asked.status == "running" and asked.cancelling and asked.display_status == "cancelling"
        got = runs.get(run.id)
        assert got.cancelling and got.to_dict()["display_status"] == "cancelling"
        assert trainer.poll() is None  # cancel() itself sent nothing: the supervisor's job
        assert cli.main(["cancel", run.id, "--no-wait"]) == 0 and "cancelling" in capsys.readouterr().out
        assert cli.main(["list"]) == 0 and "cancelling" in capsys.readouterr().out
    finally:
        trainer.kill()
        trainer.wait()
        force(run.id, status="cancelled")


def test_cancel_with_a_dead_supervisor_kills_the_orphan_after_the_grace(no_spawn):
    run = runs.launch(SMOKE, start=False)
    stubborn = subprocess.Popen(  # ignores SIGTERM, as a hung trainer would
        [sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
         "print('ready', flush=True); time.sleep(60)"], stdout=subprocess.PIPE, start_new_session=True)
    assert stubborn.stdout.readline().strip() == b"ready"
    gone, gone_token = dead_process()
    force(run.id, status="running", attempts=1, pid=stubborn.pid, pid_token=proc.proc_token(stubborn.pid),
          supervisor_pid=gone, supervisor_token=gone_token)
    try:
        began = time.monotonic()
        asked = runs.cancel(run.id, grace=1.0)
        assert time.monotonic() - began < 0.5 and asked.cancelling  # no blocking for the grace
        time.sleep(0.3)
        assert runs.get(run.id).status == "running"  # SIGTERM ignored; the grace is not over
        done = runs.wait(run.id, timeout=10, poll=0.2)  # reads (reconcile) enforce the deadline
        assert done.status == "cancelled" and "cancelled on request" in done.error and not done.cancelling
        assert stubborn.wait(5) == -signal.SIGKILL
    finally:
        if stubborn.poll() is None:
            stubborn.kill()
            stubborn.wait()


def test_concurrent_reads_start_one_supervisor_for_a_stuck_queue(no_spawn, monkeypatch):
    """Streamlit's script threads read at once: one spawn, then the delay holds off the rest."""
    monkeypatch.setenv("DIGITSUM_RUNS_KICK_AFTER_S", "5")
    run = runs.launch(SMOKE, start=False)
    force(run.id, queued_at=time.time() - 60)
    readers = [threading.Thread(target=read_all, args=(run.id,)) for _ in range(8)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(30)
    assert no_spawn == ["cpu"] and runs.ensure_supervisors() == []


def read_all(run_id: str) -> None:
    runs.list_runs()
    runs.get(run_id)
    runs.list_checkpoints()


def test_package_reexports_the_api_and_list_does_not_load_torch(registry):
    from core import runs as package

    assert package.launch is runs.launch and package.TERMINAL == runs.TERMINAL
    code = "import sys; from scripts import runs; runs.main(['list']); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DIGITSUM_RUNS_DIR": str(registry)}, check=True)
    assert out.stdout.splitlines()[-1] == "False"


def wait_until(predicate, timeout: float):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)

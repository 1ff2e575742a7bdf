"""The run registry (core.runs) and its CLI (scripts.runs).

Fast tests check the state machine, validation and reconciliation with stand-in processes; the
`slow` ones drive real `scripts.train --preset smoke` runs through a detached supervisor: queueing
on one device, cancel, resume to success and a SIGKILLed trainer. Every test uses its own
DIGITSUM_RUNS_DIR (conftest's `registry`), and any run still going at the end is killed. The races
(claim vs. cancel, signals vs. reaping, stale writers) are in test_runs_races.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from core.paths import REPO_ROOT as REPO
from core.runs import api as runs
from core.runs import process as proc
from core.runs import registry as db
from core.runs import supervisor as runs_supervisor
from core.training import records
from scripts import runs as cli

HAVE_TRAINER = (REPO / "scripts" / "train.py").exists()
SMOKE = {"preset": "smoke", "device": "cpu"}
needs_trainer = pytest.mark.skipif(not HAVE_TRAINER, reason="scripts/train.py not written yet")


def force(run_id: str, **fields) -> None:
    """Set columns directly, bypassing the state machine (to stage a situation)."""
    with db.tx() as conn:
        db.update(conn, run_id, **fields)


def dead_process() -> tuple[int, str]:
    child = subprocess.Popen(["sleep", "30"])
    token = proc.proc_token(child.pid)
    child.kill()
    child.wait()
    return child.pid, token


# --- state machine ------------------------------------------------------------------------------
def test_transition_table_is_enforced():
    allowed = {("queued", "running"), ("queued", "cancelled"), ("queued", "failed"),
               ("running", "succeeded"), ("running", "failed"), ("running", "cancelled"),
               ("failed", "queued"), ("cancelled", "queued")}
    for old in runs.STATUSES:
        for new in runs.STATUSES:
            if (old, new) in allowed:
                runs.check_transition(old, new)
            else:
                with pytest.raises(runs.TransitionError, match=f"{old} run cannot become {new}"):
                    runs.check_transition(old, new)
    with pytest.raises(runs.TransitionError, match="unknown run status"):
        runs.check_transition("running", "paused")


def test_registry_walks_the_state_machine(registry, no_spawn):
    run = runs.launch({**SMOKE, "epochs_head": 1})
    assert run.status == "queued" and no_spawn == ["cpu"]
    assert run.overrides == {"epochs_head": 1} and run.config["epochs_head"] == 1
    assert (registry / "registry.sqlite").exists() and run.run_dir == registry / run.id
    with db.tx() as conn, pytest.raises(runs.TransitionError):
        db.transition(conn, run.id, "succeeded", expect_status="queued")  # queued -> succeeded skips running
    assert runs.cancel(run.id).status == "cancelled"
    with pytest.raises(runs.RunError, match="only queued or running"):
        runs.cancel(run.id)
    resumed = runs.resume(run.id)
    assert resumed.id == run.id and resumed.status == "queued" and no_spawn == ["cpu", "cpu"]
    with db.tx() as conn:
        assert db.transition(conn, run.id, "running", expect_status="queued", expect_attempt=0, attempts=1)
        assert not db.transition(conn, run.id, "failed", expect_status="queued")  # someone was first
        assert db.transition(conn, run.id, "succeeded", expect_status="running", expect_attempt=1)
    with pytest.raises(runs.RunError, match="only failed or cancelled"):
        runs.resume(run.id)
    journal = db.connect().execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


@pytest.mark.parametrize("config, message", [
    ({"preset": "nope"}, "unknown preset"),
    ({"device": "cpu"}, "needs a 'preset'"),
    ({**SMOKE, "epochs": 3}, "unknown training option"),
    ({**SMOKE, "device": "tpu"}, "device must be one of"),
    ({**SMOKE, "epochs_cnn": -1}, "epochs.cnn"),  # the field, or its CLI flag --epochs-cnn
    ({**SMOKE, "min_len": 5, "max_len": 2}, "max.len"),
    ({**SMOKE, "lr": 0.0}, "lr"),
    ({**SMOKE, "batch_size": 0}, "batch.size"),
])
def test_launch_rejects_bad_config(registry, no_spawn, config, message):
    with pytest.raises(ValueError, match=message):
        runs.launch(config)
    assert runs.list_runs() == [] and no_spawn == []


def test_cuda_request_without_gpu_is_refused(registry, no_spawn, monkeypatch):
    monkeypatch.setattr(runs, "detect_gpus", lambda: [])
    with pytest.raises(ValueError, match="no CUDA GPU"):
        runs.launch({"preset": "smoke", "device": "cuda"})
    monkeypatch.setattr(runs, "detect_gpus", lambda: ["GPU A", "GPU B"])
    run = runs.launch({"preset": "smoke", "device": "auto"})
    assert (run.device, run.world_size) == ("cuda", 2)  # all GPUs by default
    with pytest.raises(ValueError, match="more GPUs"):
        runs.launch({"preset": "smoke", "device": "cuda"}, world_size=3)


def test_train_command_uses_torchrun_for_several_processes(registry, no_spawn):
    run = runs.launch({**SMOKE, "epochs_cnn": 2, "lr": 0.05}, world_size=2)
    force(run.id, resume=1)
    row = db.connect().execute("SELECT * FROM runs WHERE id = ?", (run.id,)).fetchone()
    cmd = runs_supervisor.train_command(row)
    assert cmd[:5] == [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    assert cmd[5:7] == ["-m", "scripts.train"] and cmd[-1] == "--resume"
    assert cmd[cmd.index("--epochs-cnn") + 1] == "2" and cmd[cmd.index("--lr") + 1] == "0.05"
    assert cmd[cmd.index("--run-dir") + 1] == str(run.run_dir) and "--no-progress" in cmd


# --- reconciliation -----------------------------------------------------------------------------
def test_running_run_whose_processes_died_is_failed_with_log_tail(registry, no_spawn):
    run = runs.launch(SMOKE, start=False)
    pid, token = dead_process()
    force(run.id, status="running", pid=pid, pid_token=token, supervisor_pid=pid, supervisor_token=token)
    run.run_dir.joinpath("train.log").write_text("epoch 1\nRuntimeError: out of memory\n")
    got = runs.get(run.id)
    assert got.status == "failed" and got.pid is None
    assert "gone" in got.error and "RuntimeError: out of memory" in got.error


def test_reused_pid_is_not_mistaken_for_the_trainer(registry, no_spawn):
    run = runs.launch(SMOKE, start=False)
    me, real = os.getpid(), proc.proc_token(os.getpid())
    assert float(real) == psutil.Process().create_time()  # the identity is psutil's create time
    force(run.id, status="running", pid=me, pid_token=real, supervisor_pid=me, supervisor_token=real)
    assert runs.get(run.id).status == "running"  # genuinely alive
    stale = repr(float(real) - 3600)  # same pid, started an hour earlier: the pid was reused
    force(run.id, pid_token=stale, supervisor_token="not-a-create-time")
    assert runs.get(run.id).status == "failed"


def test_vanished_run_with_finished_files_counts_as_succeeded(registry, no_spawn):
    run = runs.launch(SMOKE, start=False)
    pid, token = dead_process()
    force(run.id, status="running", pid=pid, pid_token=token)
    lines = [{"phase": "cnn", "progress": 0.5, "val_mae": 2.0, "eta": 9},
             {"phase": "done", "progress": 1.0, "val_mae": 0.5, "val_digit_acc": 0.9, "checkpoint": "x"}]
    run.run_dir.joinpath("metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"half')
    run.run_dir.joinpath("model.pt").write_bytes(b"weights")
    got = runs.get(run.id)
    assert got.status == "succeeded" and got.progress == 1.0 and got.metrics["val_mae"] == 0.5
    assert runs.list_checkpoints() == [{"path": str(run.run_dir / "model.pt"), "run_id": run.id,
                                        "label": f"run {run.id} · smoke · val MAE 0.500",
                                        "created": got.finished}]
    run.run_dir.joinpath("model.pt").unlink()
    assert runs.list_checkpoints() == []  # a deleted checkpoint is not offered


def test_queue_nobody_serves_gets_a_supervisor_on_the_next_read(registry, no_spawn, monkeypatch):
    run = runs.launch(SMOKE, start=False)
    monkeypatch.setenv("DIGITSUM_RUNS_KICK_AFTER_S", "0")
    with open(proc.lock_path(registry, "cpu"), "a") as lock:
        assert proc.try_lock(lock)  # as if a supervisor were draining the queue
        runs.get(run.id)
        assert runs.ensure_supervisors() == [] and no_spawn == []
    assert runs.get(run.id).status == "queued" and no_spawn == ["cpu"]  # e.g. after a reboot
    runs.cancel(run.id)
    assert runs.ensure_supervisors() == [] and no_spawn == ["cpu"]  # nothing queued, nothing to serve


def test_metrics_summary_and_exit_descriptions():
    lines = [{"phase": "cnn", "progress": 0.2, "eta": 40.0, "val_mae": 3.0},
             {"phase": "head", "progress": 0.6, "eta": 12.0, "val_mae": 1.0, "val_digit_acc": 0.95},
             {"phase": "head", "progress": 0.8, "eta": 5.0, "val_mae": 1.5}]
    assert records.summarize(lines) == (0.8, 5.0, {"val_mae": 1.0, "val_digit_acc": 0.95, "phase": "head"})
    assert records.summarize([]) == (0.0, None, {})
    assert proc.describe_exit(-9) == "signal SIGKILL" and "SIGTERM" in proc.describe_exit(143)


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_bad_input_is_one_clear_line(registry, capsys):
    assert cli.main(["status", "nope"]) == 2
    assert capsys.readouterr().err.startswith("error: no run with id 'nope'")
    assert cli.main(["launch", "--preset", "bogus"]) == 2
    err = capsys.readouterr().err
    assert "--preset must be one of" in err and "'bogus'" in err
    assert cli.main(["list"]) == 0 and "no runs yet" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli.main(["launch", "--preset", "smoke", "--epochs-cnn", "two"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--epochs-cnn" in err and "two" in err  # one line, naming the flag
    for bad, flag in ((["--device", "tpu"], "--device"), (["--head", "gru"], "--head"), (["--lr", "x"], "--lr")):
        with pytest.raises(SystemExit) as exc:
            cli.main(["launch", "--preset", "smoke", *bad])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and err.count("\n") == 1 and flag in err, err
    assert cli.main(["launch", "--preset", "smoke", "--epochs-cnn", "-1"]) == 2  # a range: core.training's check
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "epochs" in err and "cnn" in err


def test_cli_launch_prints_id_last_and_status_json(registry, no_spawn, capsys):
    assert cli.main(["launch", "--preset", "smoke", "--device", "cpu", "--epochs-head", "1"]) == 0
    run_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert cli.main(["status", run_id, "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert {"status", "progress", "pid", "checkpoint", "metrics"} <= set(status)
    assert status["status"] == "queued" and status["overrides"] == {"epochs_head": 1}
    assert cli.main(["cancel", run_id]) == 0 and "cancelled" in capsys.readouterr().out


# --- real smoke runs ----------------------------------------------------------------------------
def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def metrics_started(run_id: str) -> bool:
    return bool(runs.read_metrics(run_id))


@pytest.mark.slow
@needs_trainer
def test_second_launch_on_a_device_queues_and_cancel_works(registry):
    first, second, third = (runs.launch(SMOKE) for _ in range(3))
    wait_for(lambda: runs.get(first.id).status == "running", 90, "the first run to start")
    time.sleep(1.0)  # give a wrongly eager supervisor the chance to start a second trainer
    assert [runs.get(r.id).status for r in (second, third)] == ["queued", "queued"]
    assert runs.cancel(third.id).status == "cancelled"  # a queued run is cancelled at once
    wait_for(lambda: metrics_started(first.id), 120, "the first run's first metrics line")
    asked = runs.cancel(first.id, grace=20)  # returns at once: the supervisor does the signalling
    assert asked.status == "running" and asked.cancelling and asked.display_status == "cancelling"
    done = runs.wait(first.id, timeout=60)
    assert done.status == "cancelled" and done.exit_code == 143  # graceful: SIGTERM honoured
    assert (registry / first.id / "resume.pt").exists()
    assert wait_for(lambda: runs.get(second.id).status != "queued", 90, "the queued run to start")
    assert runs.get(second.id).status == "running" and runs.get(third.id).status == "cancelled"
    assert runs.get(second.id).started >= done.finished


@pytest.mark.slow
@needs_trainer
def test_sigkilled_trainer_is_reported_failed(registry):
    run = runs.launch(SMOKE)
    pid = wait_for(lambda: runs.get(run.id).pid, 90, "the trainer's pid")
    os.kill(pid, signal.SIGKILL)
    got = runs.wait(run.id, timeout=30)
    assert got.status == "failed" and "SIGKILL" in got.error and "last log lines" in got.error
    assert got.pid is None and runs.list_checkpoints() == []


@pytest.mark.slow
@needs_trainer
def test_trainer_and_supervisor_killed_is_failed_on_next_read(registry):
    run = runs.launch(SMOKE)
    wait_for(lambda: runs.get(run.id).pid, 90, "the trainer's pid")
    row = db.connect().execute("SELECT * FROM runs WHERE id = ?", (run.id,)).fetchone()
    os.kill(row["supervisor_pid"], signal.SIGKILL)  # as if the machine lost both at once
    os.killpg(row["pid"], signal.SIGKILL)
    wait_for(lambda: not proc.alive(row["pid"], row["pid_token"]), 10, "the trainer to die")
    got = runs.get(run.id)
    assert got.status == "failed" and "gone" in got.error


@pytest.mark.slow
@needs_trainer
def test_smoke_run_cancelled_resumed_and_succeeded_through_the_cli(registry):
    """One real run pays for the whole story: CLI launch, graceful cancel, resume as the same run,
    success with a checkpoint the dashboard offers."""
    env = {**os.environ, "DIGITSUM_RUNS_DIR": str(registry)}

    def cli_run(*args: str) -> str:
        return subprocess.run([sys.executable, "-m", "scripts.runs", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=120, check=True).stdout

    # One head epoch (val MAE still ~0.6): the test pays for two starts.
    run_id = cli_run("launch", "--preset", "smoke", "--device", "cpu", "--epochs-head", "1").strip().splitlines()[-1]
    assert runs.get(run_id).overrides == {"epochs_head": 1}
    wait_for(lambda: len(runs.read_metrics(run_id)) >= 2, 120, "two metrics lines")
    assert f"run {run_id}: cancelled" in cli_run("cancel", run_id, "--grace", "20")  # waits by default
    stopped = runs.get(run_id)
    assert stopped.status == "cancelled" and 0 < stopped.progress < 1 and stopped.exit_code == 143
    assert (registry / run_id / "resume.pt").exists()
    assert f"run {run_id}: queued" in cli_run("resume", run_id)
    run = runs.wait(run_id, timeout=240)
    assert run.status == "succeeded", runs.log_tail(run_id)
    assert run.attempts == 2 and "attempt 2 (resume)" in runs.log_tail(run_id, 1000)
    assert "--resume" in runs.log_tail(run_id, 1000)
    assert run.exit_code == 0 and run.progress == 1.0 and run.metrics["val_mae"] < 5
    assert Path(run.checkpoint).is_file() and run.checkpoint == str(registry / run_id / "model.pt")
    assert (registry / run_id / "metrics.jsonl").exists() and "scripts.train" in runs.log_tail(run_id, 500)
    assert [c["run_id"] for c in runs.list_checkpoints()] == [run_id]
    from core.model.checkpoint import read_metadata
    assert read_metadata(run.checkpoint)["preset"] == "smoke"

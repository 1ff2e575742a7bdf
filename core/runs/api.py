"""Training runs as background processes: launch, inspect, cancel, resume.

A run must outlive the Streamlit server or CLI that launched it, so launch() only records a queued
row and spawns a detached per-device supervisor (core.runs.supervisor), which starts the trainer
in its own process group, watches it and records how it ended. Reads (get, list_runs, wait,
list_checkpoints) reconcile the registry with the processes and start a supervisor for a queue
that nobody serves (a reboot, a killed supervisor), so a queued run is never stuck. cancel() only
records the request and returns at once: the supervisor (or reconcile, for an orphaned trainer)
sends SIGTERM, then SIGKILL after the grace. resume() requeues a failed or cancelled run under the
same id.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
import threading
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from core.constants import DEVICES
from core.paths import REPO_ROOT
from core.runs import process as proc
from core.runs import registry as db
from core.runs.reconcile import kick_delay, reconcile, terminate_orphan, unserved_devices
from core.runs.registry import (  # noqa: F401  (re-exported: the state machine is part of the API)
    LIVE,
    QUEUES,
    RESUMABLE,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    Run,
    RunError,
    TransitionError,
    check_transition,
    runs_dir,
)

__all__ = ["DEFAULT_GRACE_S", "DEVICES", "LIVE", "QUEUES", "STATUSES", "TERMINAL", "TRANSITIONS", "Run", "RunError",
           "TransitionError", "cancel", "check_transition", "detect_gpus", "ensure_supervisors", "get", "heads",
           "launch", "list_checkpoints", "list_runs", "log_tail", "presets", "read_metrics", "reconcile", "resume",
           "runs_dir", "validate_config", "wait"]

DEFAULT_GRACE_S = 30.0  # SIGTERM -> SIGKILL; the trainer only needs one step to write resume.pt
# (runs dir, device) -> time.monotonic() of this process's last supervisor start for that queue.
# Streamlit's script threads read at the same time, hence the lock.
_KICKED: dict[tuple[str, str], float] = {}
_KICK_LOCK = threading.Lock()


def _config_module():
    """core.training.config, imported on first use (it loads torch; `scripts.runs list` must not)."""
    from core.training import config
    return config


# --- configs and devices -------------------------------------------------------------------------
def validate_config(config: Mapping) -> dict:
    """Check a run config {"preset": ..., "device": ..., overrides...} through core.training's
    make_config (the one place for presets and ranges). Returns the full TrainConfig as a dict."""
    if not isinstance(config, Mapping):
        raise ValueError(f"run config must be a mapping like {{'preset': 'smoke'}}, got {config!r}")
    options = {k: v for k, v in config.items() if v is not None}
    preset = options.pop("preset", None)
    if not preset:
        raise ValueError("run config needs a 'preset' (smoke, default or full)")
    if options.get("device", "auto") not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {options['device']!r}")
    training = _config_module()
    unknown = sorted(set(options) - set(training.OVERRIDE_FIELDS))
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; expected any of {list(training.OVERRIDE_FIELDS)}")
    try:
        return dataclasses.asdict(training.make_config(preset, **options))
    except (KeyError, TypeError) as exc:  # make_config raises ValueError; be safe
        raise ValueError(f"invalid run config {dict(config)}: {exc}") from None


def presets() -> dict[str, dict]:
    """{name: full config} of core.training's presets, for forms that show each preset's values."""
    return {name: dataclasses.asdict(cfg) for name, cfg in _config_module().PRESETS.items()}


def heads() -> tuple[str, ...]:
    """The sequence-head variants a run may train (core.model's list)."""
    from core.model import HEADS
    return tuple(HEADS)


def detect_gpus() -> list[str]:
    """Names of the CUDA GPUs torch can see (empty on a CPU-only machine)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def _resolve_device(device: str) -> str:
    """The concrete device, which is also the queue a run waits in (one running run per device)."""
    gpus = detect_gpus() if device in ("auto", "cuda") else []
    if device == "auto":
        if gpus:
            return "cuda"
        import torch
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if device == "cuda" and not gpus:
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; use 'cpu' or 'auto'")
    return device


def _world_size(device: str, requested: int | None) -> int:
    if requested is not None and (not isinstance(requested, int) or requested < 1):
        raise ValueError(f"--world-size must be a positive integer, got {requested!r}")
    if device == "cuda":
        count = len(detect_gpus())
        if requested is not None and requested > count:
            raise ValueError(f"world_size {requested} asks for more GPUs than the {count} detected")
        return requested or count  # all GPUs by default: one run owns the device queue anyway
    if device == "mps" and (requested or 1) > 1:
        raise ValueError("world_size > 1 needs CUDA GPUs or the CPU (gloo); mps has one device")
    return requested or 1


# --- the run lifecycle ---------------------------------------------------------------------------
def launch(config: Mapping, *, world_size: int | None = None, start: bool = True) -> Run:
    """Validate `config` ({"preset": "smoke", "device": "cpu", "epochs_cnn": 1, ...}), record a
    queued run and hand it to its device's supervisor. start=False only records it (tests)."""
    full = validate_config(config)
    device = _resolve_device(config.get("device") or "auto")
    world_size = _world_size(device, world_size)
    # The device is a column of its own (the resolved one); the rest become trainer flags.
    overrides = {k: v for k, v in config.items() if k not in ("preset", "device") and v is not None}
    # 8 random bytes: launches in the same second (threads, several users) must not collide.
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(8)
    run_dir = runs_dir() / run_id
    run_dir.mkdir(parents=True)
    log_path = run_dir / "train.log"
    log_path.touch()
    with db.tx() as conn:
        conn.execute(
            "INSERT INTO runs (id, created, preset, overrides, config, device, world_size, status,"
            " log_path, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', ?, ?)",
            (run_id, db.now(), config["preset"], json.dumps(overrides), json.dumps(full), device,
             world_size, str(log_path), time.time()))
    if start:
        proc.spawn_supervisor(device, runs_dir(), REPO_ROOT)
    return get(run_id)


def ensure_supervisors(kick_after: float | None = None) -> list[str]:
    """Start a supervisor for every queue with runs waiting over `kick_after` s
    (DIGITSUM_RUNS_KICK_AFTER_S, default 10) and nobody holding its lock, e.g. after a reboot or a
    killed supervisor; the devices started. Every read calls this. The delay keeps reads off a queue
    whose launcher's supervisor is still starting, and off a queue this process kicked less than
    `kick_after` s ago (a supervisor that dies at once must not be restarted on every poll)."""
    kick_after = kick_delay() if kick_after is None else kick_after
    with _KICK_LOCK:
        now, where = time.monotonic(), str(runs_dir())
        devices = [d for d in unserved_devices(kick_after)
                   if (where, d) not in _KICKED or now - _KICKED[(where, d)] >= kick_after]
        for device in devices:
            proc.spawn_supervisor(device, runs_dir(), REPO_ROOT)
            _KICKED[(where, device)] = now
    return devices


def _refresh() -> None:
    """What every read does first: make the registry tell the truth, and get stuck queues served."""
    reconcile()
    ensure_supervisors()


def get(run_id: str) -> Run:
    """One run, after reconciling rows whose processes are gone (and restarting a stuck queue)."""
    if not db.db_path().exists():  # reading never creates runs/
        raise RunError(f"no run with id {run_id!r}: no runs yet in {runs_dir()}")
    _refresh()
    conn = db.connect()
    try:
        return db.to_run(db.row(conn, run_id))
    finally:
        conn.close()


def list_runs(limit: int = 200) -> list[Run]:
    """Newest first. Reading never creates runs/; it starts a supervisor only for a stuck queue."""
    if not db.db_path().exists():
        return []
    _refresh()
    conn = db.connect()
    try:
        rows = conn.execute("SELECT * FROM runs ORDER BY created DESC, id DESC LIMIT ?", (limit,))
        return [db.to_run(r) for r in rows.fetchall()]
    finally:
        conn.close()


def cancel(run_id: str, *, grace: float | None = None) -> Run:
    """Request a cancel and return at once. A queued run is cancelled now. A running one keeps
    status running with run.cancelling True until its trainer stops: its supervisor sends SIGTERM
    (the trainer saves resume.pt and exits 143), then SIGKILL after `grace` s. Without a live
    supervisor this call sends the SIGTERM and later reads (reconcile) the SIGKILL."""
    grace = DEFAULT_GRACE_S if grace is None else float(grace)
    with db.tx() as conn:
        row = db.row(conn, run_id)
        expect = {"expect_status": row["status"], "expect_attempt": row["attempts"]}
        if row["status"] == "queued":
            db.transition(conn, run_id, "cancelled", **expect, error="cancelled before it started")
        elif row["status"] != "running":
            raise RunError(f"run {run_id} is {row['status']}; only {_either(LIVE)} runs can be cancelled")
        elif row["cancel_deadline"] is None:
            db.update(conn, run_id, **expect, cancel_deadline=time.time() + grace)
        row = db.row(conn, run_id)
    if row["status"] == "running":
        terminate_orphan(row)
    return db.to_run(row)


def resume(run_id: str) -> Run:
    """Requeue a failed or cancelled run under the same id. With runs/<id>/resume.pt the trainer
    continues from its last saved epoch (--resume); without one it starts over in the same dir."""
    with db.tx() as conn:
        row = db.row(conn, run_id)
        if row["status"] not in RESUMABLE:
            raise RunError(f"run {run_id} is {row['status']}; only {_either(RESUMABLE)} runs can be resumed")
        has_state = (Path(row["log_path"]).parent / "resume.pt").exists()
        db.transition(conn, run_id, "queued", expect_status=row["status"], expect_attempt=row["attempts"],
                      queued_at=time.time(), resume=int(has_state), cancel_deadline=None, error=None,
                      exit_code=None, finished=None)
    proc.spawn_supervisor(row["device"], runs_dir(), REPO_ROOT)
    return get(run_id)


def _either(statuses) -> str:
    """'queued or running': the statuses in their core.constants order."""
    return " or ".join(s for s in STATUSES if s in statuses)


def wait(run_id: str, *, timeout: float = 600.0, until=TERMINAL, poll: float = 0.5) -> Run:
    """Block until the run's status is in `until` (terminal by default); TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while (run := get(run_id)).status not in until:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.display_status} after {timeout:.0f} s")
        time.sleep(poll)
    return run


# --- a run's files -------------------------------------------------------------------------------
def read_metrics(run_id: str) -> list[dict]:
    """The run's metrics.jsonl records (core.training.records; a half-written last line is skipped)."""
    return proc.records().read_metrics(runs_dir() / run_id)


def log_tail(run_id: str, lines: int = 50) -> str:
    return proc.tail(runs_dir() / run_id / "train.log", lines)


def list_checkpoints() -> list[dict]:
    """Succeeded runs whose checkpoint file exists, for the dashboard's checkpoint selector."""
    out = []
    for run in list_runs():
        if run.status == "succeeded" and run.checkpoint and Path(run.checkpoint).is_file():
            mae = run.metrics.get("val_mae")
            label = f"run {run.id} · {run.preset}" + (f" · val MAE {mae:.3f}" if mae else "")
            out.append({"path": run.checkpoint, "run_id": run.id, "label": label,
                        "created": run.finished or run.created})
    return out

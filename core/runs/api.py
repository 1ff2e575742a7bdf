"""Run registry: training runs launched as background processes, tracked in SQLite.

Why this shape:
- The dashboard never trains in-process, and a run must outlive the Streamlit server or the CLI
  that launched it. launch() therefore only records a *queued* row and spawns a small detached
  supervisor (`python -m core.runs.supervisor DEVICE`, in its own session). The supervisor holds an
  flock on runs/<device>.lock while it drains that device's queue one run at a time, so at most one
  run is running per device and a queued run starts with no browser open.
- The trainer (`python -m scripts.train`, or torchrun for several processes) gets its own process
  group, so a cancel reaches every process of the run (torchrun workers, loader workers) at once.
- Nothing is trusted to clean up after itself: every status read reconciles. A running row whose
  trainer and supervisor are both gone becomes failed (or succeeded/cancelled when the run's files
  prove it). A pid counts as alive only if its start time and the boot id match the ones stored,
  so a reused pid or a reboot never passes for a live run.
- resume() keeps the SAME run id: failed|cancelled -> queued, and the trainer restarts with
  --resume on the same run dir (resume.pt, metrics.jsonl and train.log carry on). One row per
  training job keeps the run list, the curves and the checkpoint selector in one place.
Modules: core.runs (this API), core.runs_db (SQLite table + state machine), core.runs_proc (pids,
signals, run-dir files), core.runs_supervisor (the detached queue runner). Linux only (/proc, flock).
"""
from __future__ import annotations

import dataclasses
import json
import os
import secrets
import signal
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

from core.paths import REPO_ROOT
from core.runs import registry as db
from core.runs import process as proc
from core.runs.registry import (  # noqa: F401  (re-exported: the state machine is part of the API)
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    Run,
    RunError,
    TransitionError,
    check_transition,
    runs_dir,
)

# Options launch() passes on as scripts.train flags (--epochs-cnn ...); anything else is refused
# so the registry never records a setting the trainer silently ignored.
OVERRIDE_KEYS = ("head", "epochs_cnn", "epochs_head", "epochs_joint", "min_len", "max_len",
                 "lr", "batch_size", "seed")
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_GRACE_S = 30.0  # SIGTERM -> SIGKILL; the trainer only needs one step to write resume.pt


# --- reconciling with the processes ------------------------------------------------------------
def reconcile() -> None:
    """Make the registry tell the truth. A running row whose trainer and supervisor are both gone
    is closed from its files; a device with runs queued for a while but no supervisor holding its
    lock (e.g. after a reboot) gets a new supervisor. Called by every status read."""
    if not db.db_path().exists():
        return
    proc.reap_children()
    kick_after = float(os.environ.get("DIGITSUM_RUNS_KICK_AFTER_S", "10"))
    conn = db.connect()
    try:
        running = conn.execute("SELECT * FROM runs WHERE status = 'running'").fetchall()
        waiting = conn.execute("SELECT DISTINCT device FROM runs WHERE status = 'queued' AND "
                               "queued_at < ?", (time.time() - kick_after,)).fetchall()
    finally:
        conn.close()
    for row in running:
        if proc.alive(row["supervisor_pid"], row["supervisor_token"]):
            continue  # a live supervisor records the exit itself, with the real exit code
        if proc.alive(row["pid"], row["pid_token"]):
            # An orphaned trainer (its supervisor was killed) still runs; if a cancel is overdue
            # nobody else will enforce it.
            deadline = row["cancel_deadline"]
            if deadline is not None and time.time() > deadline:
                proc.signal_group(row["pid"], signal.SIGKILL)
            continue
        status, fields = proc.outcome(
            Path(row["log_path"]), row["cancel_deadline"] is not None, exit_code=None)
        with db.tx() as conn:
            db.transition(conn, row["id"], status, only_from={"running"}, **fields)
    for (device,) in waiting:
        if not proc.device_supervised(runs_dir(), device):
            proc.spawn_supervisor(device, runs_dir(), REPO_ROOT)


# --- public API ----------------------------------------------------------------------------------
def validate_config(config: Mapping) -> dict:
    """Check a run config {"preset": ..., "device": ..., overrides...} through core.train, the one
    place that knows presets and ranges. Returns the full validated TrainConfig as a dict."""
    if not isinstance(config, Mapping):
        raise ValueError(f"run config must be a mapping like {{'preset': 'smoke'}}, got {config!r}")
    options = {k: v for k, v in config.items() if v is not None}
    preset = options.pop("preset", None)
    if not preset:
        raise ValueError("run config needs a 'preset' (smoke, default or full)")
    unknown = sorted(set(options) - set(OVERRIDE_KEYS) - {"device"})
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; expected any of "
                         f"{list(OVERRIDE_KEYS) + ['device']}")
    if options.get("device", "auto") not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {options['device']!r}")
    from core.training import make_config  # lazy: pulls in torch, which the CLI's `list` never needs
    try:
        return dataclasses.asdict(make_config(preset, **options))
    except (KeyError, TypeError) as exc:  # make_config should raise ValueError; be safe
        raise ValueError(f"invalid run config {dict(config)}: {exc}") from None


def presets() -> dict[str, dict]:
    """{name: full config} of core.train's presets, for forms that show each preset's values."""
    from core.training import PRESETS
    return {name: dataclasses.asdict(cfg) for name, cfg in PRESETS.items()}


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
        raise ValueError("device 'cuda' was requested but no CUDA GPU is available; "
                         "use 'cpu' or 'auto'")
    return device


def _world_size(device: str, requested: int | None) -> int:
    if requested is not None and (not isinstance(requested, int) or requested < 1):
        raise ValueError(f"world_size must be a positive integer, got {requested!r}")
    if device == "cuda":
        count = len(detect_gpus())
        if requested is not None and requested > count:
            raise ValueError(f"world_size {requested} asks for more GPUs than the {count} detected")
        return requested or count  # all GPUs by default: one run owns the device queue anyway
    if device == "mps" and (requested or 1) > 1:
        raise ValueError("world_size > 1 needs CUDA GPUs or the CPU (gloo); mps has one device")
    return requested or 1


def launch(config: Mapping, *, world_size: int | None = None, start: bool = True) -> Run:
    """Validate `config` ({"preset": "smoke", "device": "cpu", "epochs_cnn": 1, ...}), record a
    queued run and hand it to its device's supervisor. start=False only records it (tests)."""
    full = validate_config(config)
    device = _resolve_device(config.get("device") or "auto")
    world_size = _world_size(device, world_size)
    overrides = {k: v for k, v in config.items() if k in OVERRIDE_KEYS and v is not None}
    run_id = datetime.now().strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
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


def get(run_id: str) -> Run:
    """One run, after reconciling rows whose processes are gone."""
    if not db.db_path().exists():  # reading never creates runs/
        raise RunError(f"no run with id {run_id!r}: no runs yet in {runs_dir()}")
    reconcile()
    conn = db.connect()
    try:
        return db.to_run(db.row(conn, run_id))
    finally:
        conn.close()


def list_runs(limit: int = 200) -> list[Run]:
    """Newest first. Reading never creates runs/ when nothing was ever launched."""
    if not db.db_path().exists():
        return []
    reconcile()
    conn = db.connect()
    try:
        rows = conn.execute("SELECT * FROM runs ORDER BY created DESC, id DESC LIMIT ?", (limit,))
        return [db.to_run(r) for r in rows.fetchall()]
    finally:
        conn.close()


def cancel(run_id: str, *, grace: float | None = None) -> Run:
    """A queued run is cancelled at once. A running one gets SIGTERM on its process group (the
    trainer saves resume.pt and exits 143), then SIGKILL once `grace` seconds have passed; its
    supervisor does the signalling, or this call does (blocking) if the supervisor is gone."""
    grace = DEFAULT_GRACE_S if grace is None else float(grace)
    with db.tx() as conn:
        row = db.row(conn, run_id)
        if row["status"] == "queued":
            db.transition(conn, run_id, "cancelled", error="cancelled before it started")
            return db.to_run(db.row(conn, run_id))
        if row["status"] != "running":
            raise RunError(f"run {run_id} is {row['status']}; only queued or running runs can be "
                           "cancelled")
        if row["cancel_deadline"] is None:
            db.update(conn, run_id, cancel_deadline=time.time() + grace)
    if not proc.alive(row["supervisor_pid"], row["supervisor_token"]):
        proc.terminate_group(row["pid"], row["pid_token"], grace)
    return get(run_id)


def resume(run_id: str) -> Run:
    """Requeue a failed or cancelled run under the same id. With runs/<id>/resume.pt the trainer
    continues from its last saved epoch (--resume); without one (it died before the first save)
    it starts over in the same run dir."""
    with db.tx() as conn:
        row = db.row(conn, run_id)
        if row["status"] not in ("failed", "cancelled"):
            raise RunError(f"run {run_id} is {row['status']}; only failed or cancelled runs can be "
                           "resumed")
        has_state = (Path(row["log_path"]).parent / "resume.pt").exists()
        db.transition(conn, run_id, "queued", queued_at=time.time(), resume=int(has_state),
                      cancel_deadline=None, error=None, exit_code=None, finished=None)
    proc.spawn_supervisor(row["device"], runs_dir(), REPO_ROOT)
    return get(run_id)


def wait(run_id: str, *, timeout: float = 600.0, until=TERMINAL, poll: float = 0.5) -> Run:
    """Block until the run's status is in `until` (terminal by default); TimeoutError otherwise."""
    deadline = time.monotonic() + timeout
    while (run := get(run_id)).status not in until:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} still {run.status} after {timeout:.0f} s")
        time.sleep(poll)
    return run


def read_metrics(run_id: str) -> list[dict]:
    """The run's metrics.jsonl as dicts (a half-written last line is skipped)."""
    return proc.read_jsonl(runs_dir() / run_id / "metrics.jsonl")


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

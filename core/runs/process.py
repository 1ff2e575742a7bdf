"""Processes of a run: identity, signals, the supervisor spawn, how a stopped trainer ended.

A bare pid is not an identity: once a process has exited and been reaped, the kernel may give its
pid to an unrelated process. An identity is (pid, create_time) from psutil, stored as the pid and
a token (the create time as text); "alive" means a process with that pid exists, has that create
time and is not a zombie. Signals to a stored pid are sent only after that check, and a Popen we
hold is signalled only while it is unreaped. Detached children get their own session
(start_new_session=True): the Streamlit server or a terminal going away never takes a run down,
and a run's whole process group can be signalled at once. No database knowledge here.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import NamedTuple

import psutil

ERROR_TAIL_LINES = 20  # log lines kept as a failed run's error summary
# psutil derives create_time from the boot time, which the kernel may report a second apart in two
# processes; a pid reused within that second of the original's start is not a practical risk.
CREATE_TIME_TOLERANCE_S = 1.0
# Supervisors we spawned, polled now and then so a long-lived parent (the Streamlit server, whose
# script threads may launch at the same time) never collects zombies. Guarded by _CHILDREN_LOCK.
_CHILDREN: list[subprocess.Popen] = []
_CHILDREN_LOCK = threading.Lock()


class Identity(NamedTuple):
    pid: int
    create_time: float

    @property
    def token(self) -> str:
        return repr(self.create_time)


def identify(pid: int | None) -> Identity | None:
    """The identity of a live process; None if there is none with that pid, or it is a zombie."""
    if not pid:
        return None
    try:
        process = psutil.Process(pid)
        with process.oneshot():
            if process.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                return None
            return Identity(pid, process.create_time())
    except psutil.Error:
        return None


def proc_token(pid: int | None) -> str | None:
    """The token stored with a pid in the registry (None for a dead process)."""
    found = identify(pid)
    return found.token if found else None


def alive(pid: int | None, token: str | None) -> bool:
    """True if `pid` is still the process whose token was stored."""
    found = identify(pid)
    try:
        return found is not None and abs(found.create_time - float(token)) < CREATE_TIME_TOLERANCE_S
    except (TypeError, ValueError):  # no token, or one written by an older version
        return False


def signal_group(pid: int | None, token: str | None, sig: int) -> bool:
    """Signal the process group led by `pid` (a trainer is a session leader), but only if `pid` is
    still the process of `token`, checked right before the signal."""
    if not alive(pid, token):
        return False
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def signal_child(child: subprocess.Popen, sig: int) -> None:
    """Signal the group of a child we started. Safe while Popen has not reaped it (returncode
    None): until then the kernel keeps its pid, even as a zombie."""
    if child.returncode is None:
        try:
            os.killpg(child.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def exited(child: subprocess.Popen) -> bool:
    """Has the child exited? Leaves it unreaped (WNOWAIT), so signal_child stays safe."""
    if child.returncode is not None:
        return True
    try:
        return os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def stop_child(child: subprocess.Popen) -> int:
    """SIGKILL the child's whole group (stragglers included) before reaping it; its exit status."""
    signal_child(child, signal.SIGKILL)
    return child.wait()


def reap_children() -> None:
    with _CHILDREN_LOCK:
        _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]


def supervisor_log(runs_dir: Path, device: str) -> Path:
    return runs_dir / f"supervisor-{device}.log"


def spawn_supervisor(device: str, runs_dir: Path, repo_root: Path) -> None:
    """Start `python -m core.runs.supervisor DEVICE`, detached. It exits at once if another
    supervisor already drains that device's queue, so spawning one too many is harmless. Its
    stdout/stderr go to its log too, for a crash before it sets up its own (rotated) logging."""
    env = {**os.environ, "DIGITSUM_RUNS_DIR": str(runs_dir)}
    with _CHILDREN_LOCK, open(supervisor_log(runs_dir, device), "ab") as out:
        _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]
        _CHILDREN.append(subprocess.Popen(
            [sys.executable, "-m", "core.runs.supervisor", device], cwd=repo_root, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True))


# --- the per-device lock --------------------------------------------------------------------------
def lock_path(runs_dir: Path, device: str) -> Path:
    return runs_dir / f"{device}.lock"


def try_lock(fd, attempts: int = 1, pause: float = 0.2) -> bool:
    """Non-blocking exclusive flock, retried a few times (a status read may probe it briefly)."""
    for i in range(attempts):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if i + 1 < attempts:
                time.sleep(pause)
    return False


def device_supervised(runs_dir: Path, device: str) -> bool:
    """True while some supervisor holds the device lock (the kernel drops it when it dies)."""
    with open(lock_path(runs_dir, device), "a") as fd:
        if try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True


# --- how a run ended ---------------------------------------------------------------------------------
def records():
    """core.training.records, imported on first use: core.training's __init__ loads torch, which
    `scripts.runs list` must not pay for."""
    from core.training import records as module
    return module


def tail(path: Path, lines: int = 50, max_bytes: int = 256_000) -> str:
    """The last `lines` lines of a (possibly huge) log, reading only its end."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:]) if lines > 0 else ""


def describe_exit(code: int | None) -> str:
    if code is None:
        return "an unknown exit status"
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"exit code {code}" + (" (SIGTERM)" if code == 143 else "")


def outcome(log_path: Path, cancel_requested: bool, exit_code: int | None) -> tuple[str, dict]:
    """Final status and fields for a run whose trainer has stopped. exit_code None means nobody
    saw it exit (trainer and supervisor vanished): then the run's own files decide."""
    run_dir = log_path.parent
    lines = records().read_metrics(run_dir)
    progress, _, metrics = records().summarize(lines)
    ckpt = run_dir / "model.pt"
    metrics.update(_sidecar_metrics(ckpt))
    fields = {"progress": progress, "eta": None, "metrics": metrics, "exit_code": exit_code}
    finished = bool(lines) and lines[-1].get("phase") == "done"
    if ckpt.is_file() and (exit_code == 0 or (exit_code is None and finished)):
        return "succeeded", {**fields, "progress": 1.0, "checkpoint": str(ckpt), "error": None}
    if cancel_requested:
        how = "exit status unknown" if exit_code is None else describe_exit(exit_code)
        return "cancelled", {**fields, "error": f"cancelled on request ({how})"}
    if exit_code == 0:
        why = "the trainer exited with code 0 but wrote no checkpoint"
    elif exit_code is None:
        why = "the trainer and its supervisor are gone (killed, or the machine restarted)"
    else:
        why = f"the trainer stopped with {describe_exit(exit_code)}"
    return "failed", {**fields, "error": f"{why}\n--- last log lines ---\n{tail(log_path, ERROR_TAIL_LINES)}"}


def _sidecar_metrics(ckpt: Path) -> dict:
    """The checkpoint's own metrics from its JSON sidecar (plain JSON: no torch needed)."""
    try:
        meta = json.loads(ckpt.with_suffix(".json").read_text())
    except (OSError, ValueError):
        return {}
    metrics = meta.get("metrics") if isinstance(meta, dict) else None
    if not isinstance(metrics, dict):
        return {}
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str, bool))}

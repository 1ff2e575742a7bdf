"""Process and file helpers for the run registry (core.runs) — no database knowledge here.

Why these exist:
- A bare pid is not an identity: after the trainer dies, the kernel may hand its pid to an
  unrelated process, and after a reboot every pid is new. A process is identified by a token of
  (boot id, start time in clock ticks) read from /proc, and "alive" means the pid carries the
  same token and is not a zombie.
- Detached children are started in their own session (start_new_session=True): killing the
  Streamlit server or closing a terminal then never takes a training run down with it, and the
  run's process group can be signalled as a whole.
"""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ERROR_TAIL_LINES = 20  # log lines kept as a failed run's error summary
_BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")
# Popen objects of supervisors we spawned: polled now and then so a long-lived parent (the
# Streamlit server) never collects zombies.
_CHILDREN: list[subprocess.Popen] = []


def proc_token(pid: int | None) -> str | None:
    """'<boot id>:<start ticks>' for a live process, None if it is gone or a zombie."""
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = _BOOT_ID_PATH.read_text().strip()
    except OSError:
        return None
    # The command name (field 2) may contain spaces and ')', so split after its last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):  # state: a zombie has exited, whoever has not reaped it yet
        return None
    return f"{boot}:{fields[19]}"  # field 22 of stat = start time since boot


def alive(pid: int | None, token: str | None) -> bool:
    return bool(pid) and token is not None and proc_token(pid) == token


def signal_group(pid: int, sig: int) -> bool:
    """Signal the process group led by `pid` (the trainer was started as a session leader)."""
    try:
        os.killpg(pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def terminate_group(pid: int | None, token: str | None, grace: float) -> None:
    """SIGTERM the group, SIGKILL after `grace` s. Only if `pid` is still the process we started."""
    if not alive(pid, token):
        return
    signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid, token) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid, token):
        signal_group(pid, signal.SIGKILL)


def reap_children() -> None:
    _CHILDREN[:] = [p for p in _CHILDREN if p.poll() is None]


def spawn_supervisor(device: str, runs_dir: Path, repo_root: Path) -> None:
    """Start `python -m core.runs.supervisor DEVICE`, detached. It exits at once if another
    supervisor already drains that device's queue, so spawning one too many is harmless."""
    reap_children()
    env = {**os.environ, "DIGITSUM_RUNS_DIR": str(runs_dir)}
    with open(runs_dir / f"supervisor-{device}.log", "ab") as out:
        _CHILDREN.append(subprocess.Popen(
            [sys.executable, "-m", "core.runs.supervisor", device], cwd=repo_root, env=env,
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True))


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


def read_jsonl(path: Path) -> list[dict]:
    try:
        text = path.read_text()
    except OSError:
        return []
    out = []
    for line in text.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            continue  # the trainer may be mid-write on the last line
        if isinstance(item, dict):
            out.append(item)
    return out


def tail(path: Path, lines: int = 50, max_bytes: int = 256_000) -> str:
    """The last `lines` lines of a (possibly huge) log, reading only its end."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - max_bytes))
            data = f.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:]) if lines > 0 else ""


def summarize_metrics(lines: list[dict]) -> tuple[float, float | None, dict]:
    """(progress 0..1, eta seconds, best metrics) from metrics.jsonl lines. Best = the line with
    the lowest val_mae; the final 'done' line (the selected model) wins when present."""
    if not lines:
        return 0.0, None, {}
    last = lines[-1]
    scored = [x for x in lines if isinstance(x.get("val_mae"), (int, float))]
    best = min(scored, key=lambda x: x["val_mae"]) if scored else {}
    if last.get("phase") == "done" and last.get("val_mae") is not None:
        best = last
    metrics = {k: best[k] for k in ("val_mae", "val_digit_acc", "phase", "epoch") if k in best}
    done = last.get("phase") == "done"
    progress = 1.0 if done else float(last.get("progress") or 0.0)
    return min(max(progress, 0.0), 1.0), (None if done else last.get("eta")), metrics


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
    lines = read_jsonl(run_dir / "metrics.jsonl")
    progress, _, metrics = summarize_metrics(lines)
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
    log = tail(log_path, ERROR_TAIL_LINES)
    return "failed", {**fields, "error": f"{why}\n--- last log lines ---\n{log}"}


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

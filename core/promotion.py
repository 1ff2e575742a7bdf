"""Which checkpoint is the active default, for the dashboard and scripts.serve/evaluate/generate.

Promoting a checkpoint (a succeeded run's, or any loadable file) writes a pointer,
user_dir()/active_default.json = {"path", "sha256", "origin", "since"}; going back to the shipped
default removes it. A shipped file under checkpoints/ is never rewritten. active_default() never
raises: a pointer whose file is missing, changed or unreadable falls back to the shipped default,
and its origin says why.

    promotion.promote("20250101-120000-0123456789abcdef")   # a run id, or a path to a .pt
    promotion.active_default()   # ActiveDefault(path, origin="promoted from run …", since="2025-…")
    promotion.reset_to_shipped()
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core import paths
from core.io import write_text_atomic

SHIPPED = "shipped"


@dataclass(frozen=True)
class ActiveDefault:
    path: Path
    origin: str  # "shipped", "promoted from run X", "promoted from PATH", or "shipped (why the pointer is ignored)"
    since: str | None = None  # when it was promoted (ISO, UTC); None for the shipped default

    @property
    def shipped(self) -> bool:
        """True only when no pointer is stored (a stale pointer still counts as one, to clear)."""
        return self.origin == SHIPPED


def pointer_path() -> Path:
    return paths.user_dir() / "active_default.json"


def shipped_default() -> Path:
    """default.pt in the checkpoint folder ($DIGITSUM_CHECKPOINT_DIR, else the shipped checkpoints/)."""
    return paths.checkpoint_dir() / "default.pt"


def shown(path: str | Path) -> str:
    """A path as a person reads it: relative to the repo when inside it, else absolute."""
    path = Path(path).resolve()
    return str(path.relative_to(paths.REPO_ROOT)) if path.is_relative_to(paths.REPO_ROOT) else str(path)


def _sha256(path: Path) -> str:
    from core.predict.cache import file_sha256  # core.predict loads torch: `scripts.runs list` must not

    return file_sha256(path)


def active_default() -> ActiveDefault:
    """The promoted checkpoint while its file is still the one promoted, else the shipped default."""
    pointer = pointer_path()
    if not pointer.exists():
        return ActiveDefault(shipped_default(), SHIPPED)
    try:
        stored = json.loads(pointer.read_text())
        path, sha256, origin, since = Path(stored["path"]), stored["sha256"], stored["origin"], stored["since"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return ActiveDefault(shipped_default(), f"{SHIPPED} ({shown(pointer)} is unreadable: {exc})")
    if not path.is_file():
        return ActiveDefault(shipped_default(), f"{SHIPPED} (the promoted {shown(path)} is missing)")
    try:
        changed = _sha256(path) != sha256
    except OSError as exc:
        return ActiveDefault(shipped_default(), f"{SHIPPED} (the promoted {shown(path)} is unreadable: {exc})")
    if changed:
        return ActiveDefault(shipped_default(), f"{SHIPPED} (the promoted {shown(path)} changed since it was promoted)")
    return ActiveDefault(path, origin, since)


def cli_checkpoint(given: str | Path | None) -> tuple[str, str]:
    """A CLI's --checkpoint: the path given, else the active default; with where it came from, to print."""
    if given:
        return str(given), "--checkpoint"
    active = active_default()
    return str(active.path), f"active default, {active.origin}"


def promote(target: str | Path) -> ActiveDefault:
    """Make `target` the active default: a succeeded run's id, or the path of a loadable checkpoint.
    ValueError (one line) when it is neither."""
    path = Path(target)
    if path.exists():
        origin = f"promoted from {shown(path)}"
    else:
        path, origin = _run_checkpoint(str(target)), f"promoted from run {target}"
    from core.model.checkpoint import CheckpointError, read_metadata  # torch, only when promoting

    try:
        read_metadata(path)
    except CheckpointError as exc:
        raise ValueError(f"cannot promote it: {exc}") from None
    path = path.resolve()
    if path == shipped_default().resolve():
        return reset_to_shipped()
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    pointer = {"path": str(path), "sha256": _sha256(path), "origin": origin, "since": since}
    write_text_atomic(pointer_path(), json.dumps(pointer, indent=2) + "\n")
    return ActiveDefault(path, origin, since)


def _run_checkpoint(run_id: str) -> Path:
    """The checkpoint of succeeded run `run_id`; ValueError otherwise."""
    from core.runs import registry as db  # the table itself: a succeeded run's row is final, nothing to reconcile

    try:
        if not db.db_path().exists():
            raise db.RunError(run_id)
        conn = db.connect()
        try:
            run = db.to_run(db.row(conn, run_id))
        finally:
            conn.close()
    except db.RunError:
        raise ValueError(f"{run_id!r} is neither a checkpoint file nor a known run id; expected RUN_ID "
                         "(see `python -m scripts.runs list`) or PATH to a .pt file") from None
    if run.status != "succeeded" or not run.checkpoint:
        raise ValueError(f"run {run_id} is {run.status}; only a succeeded run's checkpoint can be the default")
    return Path(run.checkpoint)


def reset_to_shipped() -> ActiveDefault:
    """Back to the shipped default: the pointer goes, the shipped file is untouched."""
    pointer_path().unlink(missing_ok=True)
    return active_default()


# ----------------------------------------------------------------------------- lineage
NOT_RECORDED = "not recorded (trained before lineage was recorded)"


def lineage_facts(metadata: dict) -> dict[str, str] | None:
    """A checkpoint's metadata["lineage"] in words ({"Parent": …, "Data seen": …}), None when it has none.
    Training writes {"parent": {"path", "sha256"} | None, "data": {"mnist_train", "collection_digits",
    "label_decisions"}}."""
    lineage = (metadata or {}).get("lineage")
    if not isinstance(lineage, dict):
        return None
    parent, data = lineage.get("parent"), lineage.get("data") or {}
    if isinstance(parent, dict):
        where, digest = parent.get("path"), str(parent.get("sha256") or "?")
        parent_text = f"{shown(where) if where else '?'} (sha256 {digest[:12]})"
    else:
        parent_text = "none: trained from scratch"

    def count(key: str) -> str:
        value = data.get(key)
        return f"{value:,}" if isinstance(value, int) else "?"

    seen = (f"MNIST train {count('mnist_train')} images · {count('collection_digits')} collection digits · "
            f"{count('label_decisions')} label decisions")
    return {"Parent": parent_text, "Data seen": seen}

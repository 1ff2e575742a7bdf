"""Where things live on disk, in one place. Environment variables move the writable folders (tests do)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from core.constants import VERSION

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_DIR = REPO_ROOT / "checkpoints"  # the shipped models (tracked in git)
DEFAULT_CHECKPOINT = CHECKPOINTS_DIR / "default.pt"


def checkpoint_dir() -> Path:
    """The dashboard's checkpoint folder: $DIGITSUM_CHECKPOINT_DIR, else checkpoints/."""
    return Path(os.environ.get("DIGITSUM_CHECKPOINT_DIR") or CHECKPOINTS_DIR)


def data_dir() -> Path:
    """MNIST's cache folder: $DIGITSUM_DATA_DIR, else data/ (gitignored)."""
    return Path(os.environ.get("DIGITSUM_DATA_DIR") or REPO_ROOT / "data")


def runs_dir() -> Path:
    """Training runs and their registry: $DIGITSUM_RUNS_DIR, else runs/ (gitignored)."""
    return Path(os.environ.get("DIGITSUM_RUNS_DIR") or REPO_ROOT / "runs").resolve()


def cache_dir() -> Path:
    """Derived files that are safe to delete (e.g. the CNN's logits per checkpoint): $DIGITSUM_CACHE_DIR,
    else cache/ (gitignored)."""
    return Path(os.environ.get("DIGITSUM_CACHE_DIR") or REPO_ROOT / "cache")


def collection_dir() -> Path:
    """Digits a user labelled by hand (core.collection): $DIGITSUM_COLLECTION_DIR, else collection/
    (gitignored)."""
    return Path(os.environ.get("DIGITSUM_COLLECTION_DIR") or REPO_ROOT / "collection")


def decisions_dir() -> Path:
    """A person's label decisions (core.data.decisions): $DIGITSUM_DECISIONS_DIR, else decisions/ (gitignored)."""
    return Path(os.environ.get("DIGITSUM_DECISIONS_DIR") or REPO_ROOT / "decisions")


def user_dir() -> Path:
    """The user's own settings, such as which model is the active default (core.promotion): $DIGITSUM_USER_DIR,
    else user/ (gitignored). Never a shipped file."""
    return Path(os.environ.get("DIGITSUM_USER_DIR") or REPO_ROOT / "user")


def code_version() -> str:
    """The package version plus the git commit, when the code runs from a checkout (stored in checkpoints)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=REPO_ROOT)  # fmt: skip
        sha = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{VERSION}+{sha}" if sha else VERSION

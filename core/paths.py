"""Where things live on disk, in one place. Environment variables move the writable folders (tests do)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINTS_DIR = REPO_ROOT / "checkpoints"  # the shipped models (tracked in git)
DEFAULT_CHECKPOINT = CHECKPOINTS_DIR / "default.pt"


def data_dir() -> Path:
    """MNIST's cache folder: $DIGITSUM_DATA_DIR, else data/ (gitignored)."""
    return Path(os.environ.get("DIGITSUM_DATA_DIR") or REPO_ROOT / "data")


def runs_dir() -> Path:
    """Training runs and their registry: $DIGITSUM_RUNS_DIR, else runs/ (gitignored)."""
    return Path(os.environ.get("DIGITSUM_RUNS_DIR") or REPO_ROOT / "runs").resolve()

"""Fixtures shared by the whole suite: one smoke-trained checkpoint per session, a private run
registry per test, and a checkpoint folder for the dashboard.

The smoke model is trained once, through the CLI (a subprocess, as the run supervisor starts it), so
every test that needs a trained model shares the same ~10 s of training.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.paths import DEFAULT_CHECKPOINT, REPO_ROOT


def train_cmd(out, run_dir, *extra) -> list[str]:
    """The smoke preset through the train CLI, on the CPU, writing `out` and `run_dir`."""
    return [sys.executable, "-m", "scripts.train", "--preset", "smoke", "--out", str(out), "--run-dir", str(run_dir),
            "--no-progress", "--device", "cpu", *extra]


@pytest.fixture(scope="session", autouse=True)
def private_cache_dir(tmp_path_factory) -> Path:
    """Every test, and every process a test starts, writes CNN-output caches here, never to cache/."""
    folder = tmp_path_factory.mktemp("cache")
    os.environ["DIGITSUM_CACHE_DIR"] = str(folder)
    return folder


@pytest.fixture(scope="session", autouse=True)
def private_user_data(tmp_path_factory) -> Path:
    """Label decisions and the active-default pointer of every test live in a temp folder: a developer's
    own decisions/ and user/ never change what a test sees, and no test writes there."""
    folder = tmp_path_factory.mktemp("user_data")
    os.environ["DIGITSUM_DECISIONS_DIR"] = str(folder / "decisions")
    os.environ["DIGITSUM_USER_DIR"] = str(folder / "user")
    return folder


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """A folder holding smoke.pt (the checkpoint), run/ (metrics.jsonl, resume.pt) and log.txt."""
    root = tmp_path_factory.mktemp("smoke")
    with open(root / "log.txt", "w") as log:
        done = subprocess.run(train_cmd(root / "smoke.pt", root / "run"), cwd=REPO_ROOT, stdout=log,
                              stderr=subprocess.STDOUT, timeout=600)
    assert done.returncode == 0, (root / "log.txt").read_text()[-3000:]
    return root


@pytest.fixture(scope="session")
def smoke_checkpoint(smoke_run) -> Path:
    return smoke_run / "smoke.pt"


@pytest.fixture(scope="session")
def checkpoint_dir(tmp_path_factory) -> Path:
    """A checkpoint folder for dashboard tests holding default.pt: a copy of the shipped model, so the
    pages show what a user sees ($DIGITSUM_TEST_CHECKPOINT points elsewhere while iterating)."""
    folder = tmp_path_factory.mktemp("dashboard_checkpoints")
    shipped = Path(os.environ.get("DIGITSUM_TEST_CHECKPOINT") or DEFAULT_CHECKPOINT)
    assert shipped.exists(), f"{shipped} is missing: the shipped checkpoint is part of the repository"
    shutil.copy2(shipped, folder / "default.pt")
    return folder


@pytest.fixture
def registry(tmp_path, monkeypatch) -> Path:
    """A private, empty run registry (DIGITSUM_RUNS_DIR) for one test; no run outlives the test."""
    from core.runs import api as runs

    folder = tmp_path / "runs"
    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(folder))
    yield folder
    for run in runs.list_runs():  # never leave a trainer behind, whatever the test did
        if run.status not in runs.TERMINAL:
            runs.cancel(run.id, grace=1)
            runs.wait(run.id, timeout=30)


@pytest.fixture
def no_spawn(registry, monkeypatch) -> list[str]:
    """The private registry, recording supervisor spawns (their devices) instead of starting processes."""
    from core.runs import process

    calls: list[str] = []
    monkeypatch.setattr(process, "spawn_supervisor", lambda device, *a: calls.append(device))
    return calls


@pytest.fixture(scope="session")
def make_checkpoint():
    """A factory of untrained checkpoints: make_checkpoint(path, head="lstm", seed=0, members=1, **metadata)
    writes a small model (CNN widths 4, 8, 8) with its config and returns the path. Only tests of training train."""
    import torch

    from core.model import DigitSumModel, ModelConfig
    from core.model.checkpoint import save_checkpoint

    def make(path, head: str = "lstm", seed: int = 0, widths=(4, 8, 8), members: int = 1, **metadata) -> Path:
        torch.manual_seed(seed)
        config = ModelConfig(head=head, widths=list(widths), members=members)
        save_checkpoint(path, DigitSumModel(config).state_dict(),
                        {"model_config": config.to_dict(), "head": head, "train_lengths": [1, 10], **metadata})
        return Path(path)

    return make

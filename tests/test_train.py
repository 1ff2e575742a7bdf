"""core.train + scripts.train: config validation, the smoke preset learns, metrics file, SIGTERM + resume.

The smoke preset is trained once per module through the CLI (a subprocess, as core/runs.py uses it).
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from core import load_predictor
from core.model.checkpoint import load_checkpoint
from core.training import PRESETS, TrainConfig, make_config
from core.training.loop import augment, one_cycle, step_seed

REPO = Path(__file__).resolve().parent.parent
RECORD_KEYS = {"time", "step", "phase", "epoch", "epochs", "loss", "val_mae", "val_digit_acc", "elapsed", "eta", "progress"}


def train_cmd(out, run_dir, *extra):
    return [sys.executable, "-m", "scripts.train", "--preset", "smoke", "--out", str(out), "--run-dir", str(run_dir),
            "--no-progress", "--device", "cpu", *extra]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    root = tmp_path_factory.mktemp("smoke")
    with open(root / "log.txt", "w") as log:
        proc = subprocess.run(train_cmd(root / "smoke.pt", root / "run"), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                              timeout=300)
    assert proc.returncode == 0, (root / "log.txt").read_text()[-3000:]
    return root


# -- configuration -----------------------------------------------------------------------------------
def test_presets_are_valid_and_default_trains_on_lengths_1_to_10():
    for name, config in PRESETS.items():
        config.validate()
        assert config.preset == name
    assert (PRESETS["default"].min_len, PRESETS["default"].max_len) == (1, 10)
    assert PRESETS["default"].head == "lstm" and PRESETS["default"].epochs_joint == 0


@pytest.mark.parametrize("overrides, field", [
    ({"head": "gru"}, "head"), ({"device": "tpu"}, "device"), ({"epochs_cnn": -1}, "epochs_cnn"),
    ({"epochs_head": 1001}, "epochs_head"), ({"min_len": 0}, "min_len"), ({"min_len": 5, "max_len": 4}, "max_len"),
    ({"max_len": 1001}, "max_len"), ({"lr": 0.0}, "lr"), ({"lr": 1.5}, "lr"), ({"batch_size": 0}, "batch_size"),
    ({"batch_size": 70000}, "batch_size"),
])  # fmt: skip
def test_bad_config_names_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        make_config("smoke", **overrides)


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="preset"):
        make_config("huge")
    with pytest.raises(ValueError, match="unknown"):
        make_config("smoke", colour="blue")
    with pytest.raises(ValueError, match="preset"):
        TrainConfig(preset="huge").validate()


def test_cli_rejects_bad_arguments_with_exit_code_2(tmp_path):
    cmd = [sys.executable, "-m", "scripts.train", "--preset", "smoke", "--max-len", "0", "--out", str(tmp_path / "x.pt")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "max_len" in proc.stderr
    assert not (tmp_path / "x.pt").exists()


# -- helpers -----------------------------------------------------------------------------------------
def test_augment_is_identity_without_jitter_and_seeded_otherwise():
    x = torch.rand(4, 1, 28, 28)
    still = make_config("smoke", aug_rotate=0.0, aug_scale=0.0, aug_shift=0.0)
    assert torch.allclose(augment(x, torch.Generator().manual_seed(0), still), x, atol=1e-5)
    cfg = make_config("smoke")
    a = augment(x, torch.Generator().manual_seed(1), cfg)
    b = augment(x, torch.Generator().manual_seed(1), cfg)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x, atol=1e-2)


def test_schedule_and_seeds():
    assert one_cycle(0.2, 1.0) == pytest.approx(1.0) and one_cycle(1.0, 1.0) == pytest.approx(0.0, abs=1e-9)
    assert one_cycle(0.0, 1.0) < one_cycle(0.1, 1.0)
    seeds = {step_seed(0, 0, 0, s, 0) for s in range(1000)} | {step_seed(0, 0, 0, 0, r) for r in range(1, 8)}
    assert len(seeds) == 1007 and all(0 <= s < 2**63 for s in seeds)


# -- the smoke run -----------------------------------------------------------------------------------
def test_smoke_checkpoint_and_metadata(smoke):
    state, meta = load_checkpoint(smoke / "smoke.pt")
    assert meta["preset"] == "smoke" and meta["head"] == "lstm" and meta["train_lengths"] == [1, 10]
    assert meta["data_checksum"] and meta["code_version"] and meta["created"]
    assert meta["train_config"]["epochs_cnn"] == PRESETS["smoke"].epochs_cnn
    assert {"val_mae", "val_digit_acc"} <= set(meta["metrics"])
    assert json.loads((smoke / "smoke.json").read_text())["preset"] == "smoke"


def test_smoke_preset_learns(smoke):
    """On fresh val sequences the trained predictor is far better than the best constant predictor."""
    from core.data import load_mnist, split_arrays
    from core.sequences import generate_sequences

    images, labels = split_arrays(load_mnist(), "val")
    seqs = generate_sequences("val", 400, (1, 10), seed=123, labels=labels)
    pred = load_predictor(smoke / "smoke.pt", device="cpu").run_indexed(images, seqs.indices, seqs.lengths).sums
    mae = np.abs(pred - seqs.sums).mean()
    constant_mae = np.abs(seqs.sums - np.median(seqs.sums)).mean()
    assert mae < 0.3 * constant_mae, (mae, constant_mae)


def read_records(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_metrics_file_follows_the_contract(smoke):
    records = read_records(smoke / "run")
    assert len(records) > 5
    for r in records:
        assert RECORD_KEYS <= set(r) and r["phase"] in ("cnn", "head", "joint", "done")
        assert 0 <= r["progress"] <= 1
    assert [r["progress"] for r in records] == sorted(r["progress"] for r in records)
    assert any(r["val_digit_acc"] is not None for r in records if r["phase"] == "cnn")
    assert any(r["val_mae"] is not None for r in records if r["phase"] == "head")
    assert records[-1]["phase"] == "done" and records[-1]["checkpoint"] == str(smoke / "smoke.pt")
    assert sum(r["phase"] == "done" for r in records) == 1


def test_sigterm_writes_resume_and_resume_finishes_the_same_model(smoke, tmp_path):
    out, run_dir = tmp_path / "int.pt", tmp_path / "run"
    with open(tmp_path / "log1.txt", "w") as log:
        proc = subprocess.Popen(train_cmd(out, run_dir), cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while not ((run_dir / "metrics.jsonl").exists() and (run_dir / "metrics.jsonl").stat().st_size) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, (tmp_path / "log1.txt").read_text()[-3000:]
    assert (run_dir / "resume.pt").exists() and not out.exists()
    interrupted_at = read_records(run_dir)[-1]["step"]

    with open(tmp_path / "log2.txt", "w") as log:
        rc = subprocess.run(train_cmd(out, run_dir, "--resume"), cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            timeout=300).returncode
    assert rc == 0, (tmp_path / "log2.txt").read_text()[-3000:]
    records = read_records(run_dir)
    assert records[-1]["phase"] == "done" and records[-1]["step"] > interrupted_at
    # Every step's randomness is a function of its position, so interrupted + resumed == uninterrupted.
    resumed, _ = load_checkpoint(out)
    straight, _ = load_checkpoint(smoke / "smoke.pt")
    for name, tensor in straight.items():
        assert torch.allclose(resumed[name].float(), tensor.float(), atol=1e-4), name


def test_resume_without_state_is_an_error(tmp_path):
    proc = subprocess.run(train_cmd(tmp_path / "x.pt", tmp_path / "empty", "--resume"), cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "resume.pt" in proc.stderr


def test_a_head_can_be_trained_on_an_existing_cnn(smoke, tmp_path):
    """--init-cnn + --epochs-cnn 0: the benchmark trains every head on the shipped CNN without retraining it."""
    out = tmp_path / "deepsets.pt"
    cmd = [sys.executable, "-m", "scripts.train", "--preset", "smoke", "--head", "deepsets", "--epochs-cnn", "0",
           "--init-cnn", str(smoke / "smoke.pt"), "--out", str(out), "--no-progress", "--device", "cpu"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new, meta = load_checkpoint(out)
    old, _ = load_checkpoint(smoke / "smoke.pt")
    assert meta["head"] == "deepsets"
    assert all(torch.equal(new[k], v) for k, v in old.items() if k.startswith("cnn."))

"""core.training + scripts.train: config validation and flag-named errors, the CLI's output paths,
the smoke preset learns, the metrics schema, SIGTERM + resume, a head on an existing CNN.

The trained smoke model is conftest's session-wide smoke_run (one CLI training shared by the suite).
"""

import json
import os
import re
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
from core.paths import CHECKPOINTS_DIR, REPO_ROOT
from core.training import OVERRIDES, PRESETS, TrainConfig, flag, make_config, override_argv, overrides_from_args
from core.training.phases import ORDER, STEP, VIEW, augment, derive_seed, one_cycle
from core.training.records import RECORD_KEYS, read_metrics
from tests.conftest import train_cmd


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "scripts.train", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})  # fmt: skip


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
def test_bad_config_names_the_flag(overrides, field):
    """Errors name the setting as the user typed it (--epochs-cnn), not the dataclass field."""
    with pytest.raises(ValueError, match="^" + re.escape(flag(field)) + " must be ") as info:
        make_config("smoke", **overrides)
    assert f"got {overrides[field]!r}" in str(info.value)


def test_error_message_format_and_fields_without_a_flag():
    with pytest.raises(ValueError) as info:
        make_config("smoke", lr=-1)
    assert str(info.value) == "--lr must be in (0, 1], got -1"
    assert "head_steps" not in {o.field for o in OVERRIDES}
    with pytest.raises(ValueError, match=r"^head_steps must be an int >= 1, got 0$"):
        TrainConfig(preset="smoke", head_steps=0).validate()


def test_unknown_preset_and_field():
    with pytest.raises(ValueError, match="preset"):
        make_config("huge")
    with pytest.raises(ValueError, match="unknown"):
        make_config("smoke", colour="blue")
    with pytest.raises(ValueError, match="preset"):
        TrainConfig(preset="huge").validate()


def test_cli_rejects_bad_arguments_with_exit_code_2(tmp_path):
    proc = run_cli("--preset", "smoke", "--max-len", "0", "--out", str(tmp_path / "x.pt"))
    assert proc.returncode == 2 and "--max-len" in proc.stderr
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize("args, expected", [
    (["--lr", "-1"], "error: --lr must be in (0, 1], got -1.0"),
    (["--epochs-cnn", "-3"], "error: --epochs-cnn must be an int in 0..1000, got -3"),
    (["--label-smoothing", "1"], "error: --label-smoothing must be in [0, 1), got 1.0"),
    (["--members", "0"], "error: --members must be an int in 1..16, got 0"),
    (["--preset", "huge"], "error: argument --preset: invalid choice: 'huge'"),
    (["--init-cnn", "/nonexistent/model.pt"], "error: --init-cnn must be an existing checkpoint file, got"),
])  # fmt: skip
def test_cli_errors_are_one_line_with_exit_code_2(tmp_path, args, expected):
    proc = run_cli("--preset", "smoke", "--device", "cpu", *args, env={"DIGITSUM_RUNS_DIR": str(tmp_path / "runs")})
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(expected), proc.stderr
    assert proc.stdout == "" and not (tmp_path / "runs").exists()


def test_cli_flags_are_derived_from_overrides():
    from scripts.train import parse_args

    values = {"head": "deepsets", "epochs_cnn": 2, "epochs_head": 3, "epochs_joint": 1, "min_len": 2, "max_len": 7,
              "lr": 0.05, "batch_size": 32, "device": "cpu", "seed": 5, "init_cnn": "x.pt", "init_from": "y.pt",
              "collection_weight": 0.25, "train_subset": 3000, "members": 2, "label_smoothing": 0.0}  # fmt: skip
    assert set(values) == {o.field for o in OVERRIDES}  # this test covers every override
    args = parse_args(["--preset", "smoke", *override_argv(values)])
    assert overrides_from_args(args) == values
    assert overrides_from_args(parse_args(["--preset", "smoke"])) == {}


# -- where the CLI writes ------------------------------------------------------------------------------
@pytest.fixture
def fake_train(monkeypatch, tmp_path):
    """scripts.train.main without training: records what train() was asked to write."""
    import core.training

    calls = []
    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setattr(core.training, "train", lambda config, **kw: calls.append(kw) or {"val_mae": 0.5})
    return calls


def test_default_preset_without_out_never_writes_the_shipped_checkpoint(fake_train, tmp_path, capsys):
    """The bug: `--preset default` used to overwrite checkpoints/default.pt."""
    from scripts.train import main

    assert main(["--preset", "default", "--no-progress"]) == 0
    out, run_dir = Path(fake_train[0]["out_path"]), Path(fake_train[0]["run_dir"])
    runs = (tmp_path / "runs").resolve()
    assert out.is_relative_to(runs) and not out.resolve().is_relative_to(CHECKPOINTS_DIR.resolve())
    assert out.name == "model.pt" and out.parent == run_dir and re.fullmatch(r"train-default-\d{8}T\d{6}Z", run_dir.name)
    captured = capsys.readouterr()
    assert str(out) in captured.err and json.loads(captured.out)["checkpoint"] == str(out)


def test_explicit_out_and_run_dir_are_used_as_given(fake_train, tmp_path):
    from scripts.train import main

    target = CHECKPOINTS_DIR / "default.pt"  # writing there is allowed, but only when asked for
    assert main(["--preset", "default", "--out", str(target)]) == 0
    assert fake_train[-1]["out_path"] == target and fake_train[-1]["run_dir"] is None
    assert main(["--preset", "smoke", "--run-dir", str(tmp_path / "mine")]) == 0
    assert fake_train[-1]["out_path"] == tmp_path / "mine" / "model.pt" and fake_train[-1]["run_dir"] == tmp_path / "mine"


def test_default_run_dirs_are_fresh_folders_under_the_runs_dir(monkeypatch, tmp_path):
    from datetime import datetime, timezone

    from scripts.train import default_run_dir

    monkeypatch.setenv("DIGITSUM_RUNS_DIR", str(tmp_path / "runs"))
    now = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    first = default_run_dir("smoke", now)
    assert first == (tmp_path / "runs").resolve() / "train-smoke-20240506T070809Z"
    first.mkdir(parents=True)
    second = default_run_dir("smoke", now)
    assert second != first and second.parent == first.parent and not second.exists()


# -- helpers -----------------------------------------------------------------------------------------
def test_augment_is_identity_without_jitter_and_seeded_otherwise():
    x = torch.rand(4, 1, 28, 28)
    still = make_config("smoke", aug_rotate=0.0, aug_scale=0.0, aug_shift=0.0, aug_shear=0.0, aug_elastic=0.0,
                        aug_thickness=0.0, aug_noise=0.0)
    assert torch.allclose(augment(x, torch.Generator().manual_seed(0), still), x, atol=1e-5)
    cfg = make_config("smoke")
    a = augment(x, torch.Generator().manual_seed(1), cfg)
    b = augment(x, torch.Generator().manual_seed(1), cfg)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.allclose(a, x, atol=1e-2)


def test_schedule_and_seeds():
    assert one_cycle(0.2, 1.0) == pytest.approx(1.0) and one_cycle(1.0, 1.0) == pytest.approx(0.0, abs=1e-9)
    assert one_cycle(0.0, 1.0) < one_cycle(0.1, 1.0)
    seeds = ({derive_seed(0, STEP, 0, 0, s, 0) for s in range(1000)} | {derive_seed(0, STEP, 0, 0, 0, r) for r in range(1, 8)}
             | {derive_seed(0, ORDER, e) for e in range(10)} | {derive_seed(0, VIEW, 1, i) for i in range(10)})  # fmt: skip
    assert len(seeds) == 1027 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(3, STEP, 1, 2, 3, 0) == derive_seed(3, STEP, 1, 2, 3, 0) != derive_seed(4, STEP, 1, 2, 3, 0)


# -- the smoke run -----------------------------------------------------------------------------------
def test_smoke_checkpoint_and_metadata(smoke_run):
    state, meta = load_checkpoint(smoke_run / "smoke.pt")
    assert meta["preset"] == "smoke" and meta["head"] == "lstm" and meta["train_lengths"] == [1, 10]
    assert meta["data_checksum"] and meta["code_version"] and meta["created"]
    assert meta["train_config"]["epochs_cnn"] == PRESETS["smoke"].epochs_cnn
    assert {"val_mae", "val_digit_acc"} <= set(meta["metrics"])
    assert json.loads((smoke_run / "smoke.json").read_text())["preset"] == "smoke"


def test_smoke_preset_learns(smoke_run):
    """On fresh val sequences the trained predictor is far better than the best constant predictor."""
    from core.data import generate_sequences, load_mnist, split_arrays

    images, labels = split_arrays(load_mnist(), "val")
    seqs = generate_sequences("val", 400, (1, 10), seed=123, labels=labels)
    pred = load_predictor(smoke_run / "smoke.pt", device="cpu").run_indexed(images, seqs.indices, seqs.lengths).sums
    mae = np.abs(pred - seqs.sums).mean()
    constant_mae = np.abs(seqs.sums - np.median(seqs.sums)).mean()
    assert mae < 0.3 * constant_mae, (mae, constant_mae)


def test_metrics_file_follows_the_schema(smoke_run):
    records = read_metrics(smoke_run / "run")
    assert len(records) > 5
    for r in records:
        assert list(r)[: len(RECORD_KEYS)] == list(RECORD_KEYS) and r["phase"] in ("cnn", "head", "joint", "done")
        assert set(r) - set(RECORD_KEYS) <= ({"checkpoint"} if r["phase"] == "done" else set())
        assert 0 <= r["progress"] <= 1
    assert [r["progress"] for r in records] == sorted(r["progress"] for r in records)
    assert any(r["val_digit_acc"] is not None for r in records if r["phase"] == "cnn")
    assert any(r["val_mae"] is not None for r in records if r["phase"] == "head")
    assert records[-1]["phase"] == "done" and records[-1]["checkpoint"] == str(smoke_run / "smoke.pt")
    assert sum(r["phase"] == "done" for r in records) == 1


def test_sigterm_writes_resume_and_resume_finishes_the_same_model(smoke_run, tmp_path):
    out, run_dir = tmp_path / "int.pt", tmp_path / "run"
    with open(tmp_path / "log1.txt", "w") as log:
        proc = subprocess.Popen(train_cmd(out, run_dir), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 120
        while not read_metrics(run_dir) and time.time() < deadline:
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=120) == 143, (tmp_path / "log1.txt").read_text()[-3000:]
    assert (run_dir / "resume.pt").exists() and not out.exists()
    interrupted_at = read_metrics(run_dir)[-1]["step"]

    with open(tmp_path / "log2.txt", "w") as log:
        rc = subprocess.run(train_cmd(out, run_dir, "--resume"), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT,
                            timeout=300).returncode  # fmt: skip
    assert rc == 0, (tmp_path / "log2.txt").read_text()[-3000:]
    records = read_metrics(run_dir)
    assert records[-1]["phase"] == "done" and records[-1]["step"] > interrupted_at
    # Every step's randomness is a function of its position, so interrupted + resumed == uninterrupted.
    resumed, _ = load_checkpoint(out)
    straight, _ = load_checkpoint(smoke_run / "smoke.pt")
    for name, tensor in straight.items():
        assert torch.allclose(resumed[name].float(), tensor.float(), atol=1e-4), name


def test_resume_without_state_is_an_error(tmp_path):
    proc = subprocess.run(train_cmd(tmp_path / "x.pt", tmp_path / "empty", "--resume"), cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 2 and "resume.pt" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: cannot resume")


def test_a_head_can_be_trained_on_an_existing_cnn(smoke_run, tmp_path):
    """--init-cnn + --epochs-cnn 0: the benchmark trains every head on the shipped CNN without retraining it."""
    out = tmp_path / "deepsets.pt"
    cmd = train_cmd(out, tmp_path / "run", "--head", "deepsets", "--epochs-cnn", "0",
                    "--init-cnn", str(smoke_run / "smoke.pt"))  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    new, meta = load_checkpoint(out)
    old, _ = load_checkpoint(smoke_run / "smoke.pt")
    assert meta["head"] == "deepsets"
    assert all(torch.equal(new[k], v) for k, v in old.items() if k.startswith("cnn."))

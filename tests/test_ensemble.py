"""The ensemble checkpoint: a 2-member smoke ensemble trained through its CLI, the shipped ensemble, and
how its members are assembled."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from core import load_predictor
from core.data import load_mnist, split_arrays
from core.model.checkpoint import CheckpointError, read_metadata
from core.paths import CHECKPOINTS_DIR, REPO_ROOT
from core.training.ensemble import assemble

SHIPPED = CHECKPOINTS_DIR / "ensemble.pt"


@pytest.fixture(scope="module")
def smoke_ensemble(tmp_path_factory):
    """Two smoke members on 1,000 train images each, then the head: the whole CLI, in a subprocess."""
    root = tmp_path_factory.mktemp("ensemble")
    done = subprocess.run([sys.executable, "-m", "scripts.train_ensemble", "--preset", "smoke", "--members", "2",
                           "--train-subset", "1000", "--device", "cpu", "--out", str(root / "ens.pt"), "--no-progress",
                           "--work-dir", str(root / "ens.work")],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_smoke_ensemble_trains_two_members_with_their_own_seeds(smoke_ensemble):
    meta = read_metadata(smoke_ensemble / "ens.pt")
    assert meta["model_config"]["members"] == 2 and meta["head"] == "lstm"
    members = meta["ensemble"]["members"]
    assert [m["seed"] for m in members] == [0, 1]  # --seed 0 (the preset's) + member index
    assert len(meta["ensemble"]["member_temperature"]) == 2 and min(meta["ensemble"]["member_temperature"]) > 0
    assert meta["calibration"]["fitted_on"] == "val_calib"  # the head's calibration, as any run's
    first, second = (torch.load(smoke_ensemble / "ens.work" / f"member-{i}.pt", weights_only=True)["state_dict"]
                     for i in range(2))
    key = "cnn.members.0.features.0.weight"
    assert not torch.equal(first[key], second[key])  # different seeds, different members


def test_smoke_ensemble_predicts_a_sum_distribution(smoke_ensemble):
    predictor = load_predictor(smoke_ensemble / "ens.pt", device="cpu")
    images, labels = split_arrays(load_mnist(), "test")
    batch = images[:12].reshape(3, 4, 28, 28)
    prediction = predictor.run(batch)
    assert prediction.sums.shape == (3,) and prediction.has_distribution
    for dist in predictor.sum_distribution(prediction=prediction):
        assert np.all(dist.probs >= 0) and abs(dist.probs.sum() - 1) < 1e-6
        assert dist.support.min() >= 0 and dist.support.max() <= 36  # four digits sum to 0..36


def _check_shipped_distribution(predictor, images, labels):
    batch = images[:200].reshape(20, 10, 28, 28)
    prediction = predictor.run(batch)
    truth = labels[:200].reshape(20, 10).sum(1)
    assert (np.rint(prediction.sums) == truth).mean() >= 0.9  # a trained ensemble, not a smoke one
    for dist, (lo, hi) in zip(predictor.sum_distribution(prediction=prediction), prediction.interval):
        assert np.all(dist.probs >= 0) and abs(dist.probs.sum() - 1) < 1e-6
        assert dist.support.min() <= lo <= hi <= dist.support.max()


def test_shipped_ensemble_loads_predicts_and_fits_the_size_budget():
    assert SHIPPED.is_file(), "checkpoints/ensemble.pt is part of the repository"
    assert SHIPPED.stat().st_size <= 6 * 2**20
    meta = read_metadata(SHIPPED)
    assert 3 <= meta["model_config"]["members"] <= 5 and meta["head"] == "lstm"
    assert meta["ensemble"]["temperatures_fitted_on"] == "val_calib" and meta["ensemble"]["val"]["split"] == "val_select"
    images, labels = split_arrays(load_mnist(), "test")
    _check_shipped_distribution(load_predictor(SHIPPED, device="cpu"), images, labels)


def test_assemble_refuses_one_member_or_members_of_other_shapes(smoke_checkpoint, smoke_ensemble, tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        assemble([smoke_checkpoint], tmp_path / "one.pt")
    with pytest.raises(CheckpointError, match="single CNNs of one shape"):
        assemble([smoke_checkpoint, smoke_ensemble / "ens.pt"], tmp_path / "mixed.pt")  # an ensemble is no member
    assert not (tmp_path / "mixed.pt").exists()


def test_cli_names_the_flag_on_bad_input(tmp_path, capsys):
    from scripts.train_ensemble import main

    for args, expected in ((["--members", "1"], "--members must be at least 2"),
                           (["--members-from", str(tmp_path / "nope.pt"), str(tmp_path / "nope2.pt")], "--members-from"),
                           (["--compare", str(tmp_path / "nope.pt")], "--compare")):
        with pytest.raises(SystemExit) as exit_:
            main(["--out", str(tmp_path / "e.pt"), *args])
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and err.startswith("error: ") and expected in err, err
        assert len(err.strip().splitlines()) == 1 and not (tmp_path / "e.pt").exists()


def test_cli_stopped_by_sigterm_exits_143_and_says_how_to_go_on(tmp_path, capsys, monkeypatch):
    import core.training.ensemble
    from core.training import TrainingInterrupted
    from scripts.train_ensemble import main

    def stopped(*args, **kwargs):
        raise TrainingInterrupted("stopped in phase cnn, epoch 3, step 7")

    monkeypatch.setattr(core.training.ensemble, "train_ensemble", stopped)
    assert main(["--out", str(tmp_path / "e.pt"), "--work-dir", str(tmp_path / "w")]) == 143
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("stopped in phase cnn") and str(tmp_path / "w") in err


def test_members_skip_their_own_calibration(smoke_ensemble):
    """A member's temperature is fitted at assembly, so its own run fits none (train(calibrate=False))."""
    for i in range(2):
        assert read_metadata(smoke_ensemble / "ens.work" / f"member-{i}.pt").get("calibration") is None


def test_an_ensemble_saved_before_member_temperatures_loads_with_t_1(make_checkpoint, tmp_path):
    from core.model.checkpoint import load_checkpoint, load_model, save_checkpoint

    path = make_checkpoint(tmp_path / "old.pt", members=2)
    state, meta = load_checkpoint(path)
    del state["cnn.member_temperature"]
    save_checkpoint(path, state, meta)
    model, _ = load_model(path)
    assert torch.equal(model.cnn.member_temperature, torch.ones(2))


def test_member_logits_combine_into_the_ensembles_logits(make_checkpoint, tmp_path):
    predictor = load_predictor(make_checkpoint(tmp_path / "e.pt", members=3, seed=4), device="cpu")
    predictor.model.cnn.member_temperature.copy_(torch.tensor([0.5, 1.0, 2.0]))
    images = split_arrays(load_mnist(), "test")[0][:300]
    z = predictor.member_logits(images)
    assert z.shape == (3, 300, 10)
    assert torch.allclose(predictor.model.cnn.combine(z), predictor.cnn_logits(images), atol=1e-5)


def test_doubt_study_ranks_by_p_exact_times_agreement(monkeypatch):
    from core.evaluate import doubt

    predictor = load_predictor(SHIPPED, device="cpu")  # a trained model: a misread digit makes its sum wrong
    monkeypatch.setattr(doubt, "member_agreement", lambda p, images: np.ones(len(images)))
    same = doubt.doubt_study(predictor, per_length=40)
    assert same["images_with_disagreement"] == 0
    assert same["10"]["p_exact"] == same["10"]["p_exact x agreement"]  # agreement 1: the same ranking
    images, labels = split_arrays(load_mnist(), "val_select")
    misread = predictor.cnn_logits(images).numpy().argmax(1) != labels
    monkeypatch.setattr(doubt, "member_agreement", lambda p, images: np.where(misread, 0.0, 1.0))
    oracle = doubt.doubt_study(predictor, per_length=200)  # every sequence with a misread digit ranked last
    for n in ("10", "100"):
        assert oracle[n]["p_exact x agreement"]["aurc"] < oracle[n]["p_exact"]["aurc"]

"""Val's two parts: val_select (epoch and model selection) and val_calib (temperatures and interval
margins). They are disjoint, cover val exactly and touch neither train nor test; training selects on
val_select only and calibrates on val_calib only; scripts.calibrate fits on val_calib; the parts' logits
are rows of val's cached logits (one file, one CNN pass)."""

import dataclasses
import types

import numpy as np
import pytest

import core.data
import core.data.sequences
import core.training.fit_calibration as fit_calibration
from core import load_predictor
from core.data import load_mnist
from core.data.splits import CALIBRATION_SPLIT, PARTS, SELECTION_SPLIT, SPLITS, split_arrays
from core.model.checkpoint import read_metadata
from core.predict import cache
from core.predict.temperature import fit_temperature
from core.training import make_config, train
from core.training.loop import Trainer

MNIST_TRAIN, MNIST_TEST = 60_000, 10_000


def indexed_mnist():
    """A stand-in for MNIST whose "images" are their own row numbers: train rows 0..59999 and test rows
    100000.., so a split's arrays say exactly which MNIST rows it holds."""
    train, test = np.arange(MNIST_TRAIN), 100_000 + np.arange(MNIST_TEST)
    return types.SimpleNamespace(x_train=train, y_train=train, x_test=test, y_test=test)


def tiny(**changes):
    """The smoke preset shrunk to a few seconds (as in test_training_phases)."""
    small = dict(train_subset=512, val_subset=200, val_sequences=64, batch_size=64, epochs_head=1, head_steps=10,
                 head_batch=16, head_views=0, max_len=5)  # fmt: skip
    return dataclasses.replace(make_config("smoke", device="cpu"), **{**small, **changes})


# -- the splits ------------------------------------------------------------------------------------
def test_parts_are_disjoint_cover_val_exactly_and_touch_neither_train_nor_test():
    mnist = indexed_mnist()
    select, select_labels = split_arrays(mnist, SELECTION_SPLIT)
    calib, calib_labels = split_arrays(mnist, CALIBRATION_SPLIT)
    val, _ = split_arrays(mnist, "val")
    assert (SELECTION_SPLIT, CALIBRATION_SPLIT) == ("val_select", "val_calib")
    np.testing.assert_array_equal(select, np.arange(55_000, 57_500))
    np.testing.assert_array_equal(calib, np.arange(57_500, 60_000))
    np.testing.assert_array_equal(np.concatenate([select, calib]), val)  # val exactly, in val's order
    assert not np.intersect1d(select, calib).size
    np.testing.assert_array_equal(select_labels, select)  # labels travel with their images
    np.testing.assert_array_equal(calib_labels, calib)
    for part in (select, calib):
        assert part.min() >= 55_000 and part.max() < MNIST_TRAIN  # never train[:55000], never test
        assert not np.isin(part, split_arrays(mnist, "train")[0]).any()
        assert not np.isin(part, split_arrays(mnist, "test")[0]).any()
    assert set(PARTS) == {SELECTION_SPLIT, CALIBRATION_SPLIT} and set(PARTS) <= set(SPLITS)


def test_parts_of_real_mnist_share_no_image_and_are_views():
    mnist = load_mnist()
    images = {name: split_arrays(mnist, name)[0] for name in ("train", "val", SELECTION_SPLIT, CALIBRATION_SPLIT)}
    assert len(images[SELECTION_SPLIT]) == len(images[CALIBRATION_SPLIT]) == 2500
    seen = {name: {x.tobytes() for x in images[name]} for name in ("train", SELECTION_SPLIT, CALIBRATION_SPLIT)}
    assert not seen[SELECTION_SPLIT] & seen[CALIBRATION_SPLIT]
    assert not (seen[SELECTION_SPLIT] | seen[CALIBRATION_SPLIT]) & seen["train"]
    assert np.shares_memory(images[CALIBRATION_SPLIT], mnist.x_train)  # views, not copies
    with pytest.raises(ValueError, match="unknown split"):
        split_arrays(mnist, "val_other")


# -- the cache -------------------------------------------------------------------------------------
def test_part_logits_are_rows_of_vals_cached_logits(make_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("DIGITSUM_CACHE_DIR", str(tmp_path / "cache"))
    path = make_checkpoint(tmp_path / "a.pt")
    first = load_predictor(path, device="cpu")
    calib = first.split_logits(CALIBRATION_SPLIT)
    direct = first.cnn_logits(split_arrays(load_mnist(), CALIBRATION_SPLIT)[0]).numpy()
    np.testing.assert_allclose(calib, direct, atol=1e-5)
    assert calib.shape == (2500, 10) and not calib.flags.writeable
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.cache_path(first.checkpoint_hash, "val").name]
    again = load_predictor(path, device="cpu")

    def fail(images):
        raise AssertionError("the CNN ran although val's logits were cached")

    monkeypatch.setattr(again, "cnn_logits", fail)
    val = again.split_logits("val")
    np.testing.assert_array_equal(again.split_logits(SELECTION_SPLIT), val[:2500])
    np.testing.assert_array_equal(again.split_logits(CALIBRATION_SPLIT), val[2500:])
    np.testing.assert_array_equal(cache.load_logits(again.checkpoint_hash, CALIBRATION_SPLIT, 2500), val[2500:])
    assert cache.load_logits(again.checkpoint_hash, CALIBRATION_SPLIT, 2400) is None  # a wrong count: not served


# -- training --------------------------------------------------------------------------------------
def test_training_selects_on_val_select_and_calibrates_on_val_calib(tmp_path, monkeypatch):
    """Record every split that training reads, and when: setup (every val metric and epoch choice comes
    from what it reads) or the final calibration."""
    stage, reads, real = ["setup"], [], core.data.split_arrays

    def recording(mnist, split):
        reads.append((stage[0], split))
        return real(mnist, split)

    calibrate = Trainer._calibration

    def calibration(self, metadata):
        stage[0] = "calibration"
        try:
            return calibrate(self, metadata)
        finally:
            stage[0] = "after"

    for module in (core.data, core.data.sequences, fit_calibration):
        monkeypatch.setattr(module, "split_arrays", recording)
    monkeypatch.setattr(Trainer, "_calibration", calibration)
    out = tmp_path / "model.pt"
    train(tiny(), out_path=out)
    assert {split for when, split in reads if when == "setup"} == {"train", SELECTION_SPLIT}
    assert {split for when, split in reads if when == "calibration"} == {CALIBRATION_SPLIT}
    assert not [split for when, split in reads if when not in ("setup", "calibration")]
    meta = read_metadata(out)
    assert meta["selected_on"] == {"split": SELECTION_SPLIT, "images": 200}  # val_subset of val_select
    block = meta["calibration"]
    assert block["fitted_on"] == CALIBRATION_SPLIT and block["images"] == 2500


def test_the_trainers_val_images_are_val_select_rows_only():
    """Content, not names: every image that selects an epoch is a val_select image, none is val_calib's."""
    from core.training import distributed as dd

    trainer = Trainer(tiny(val_subset=0), out_path=None, run_dir=None)
    dd.close_distributed(trainer.owns_group)
    mnist = load_mnist()
    select, calib = (split_arrays(mnist, name)[0] for name in (SELECTION_SPLIT, CALIBRATION_SPLIT))
    np.testing.assert_array_equal(trainer.x_val, select)
    rows = {x.tobytes() for x in trainer.x_val}
    assert not rows & {x.tobytes() for x in calib}
    assert trainer.val_seqs.split == SELECTION_SPLIT and trainer.val_seqs.indices.max() < len(select)


def test_smoke_checkpoint_records_both_parts(smoke_checkpoint):
    meta = read_metadata(smoke_checkpoint)
    assert meta["selected_on"] == {"split": "val_select", "images": make_config("smoke").val_subset}
    assert meta["calibration"]["fitted_on"] == "val_calib" and meta["calibration"]["images"] == 2500


# -- scripts.calibrate -----------------------------------------------------------------------------
def test_scripts_calibrate_fits_on_val_calib(make_checkpoint, tmp_path, monkeypatch, capsys):
    from scripts.calibrate import main

    monkeypatch.setenv("DIGITSUM_CACHE_DIR", str(tmp_path / "cache"))
    path = make_checkpoint(tmp_path / "c.pt", head="argmax-sum")
    assert main([str(path)]) == 0
    assert "on val_calib (2500 images)" in capsys.readouterr().out
    block = read_metadata(path)["calibration"]
    assert block["fitted_on"] == "val_calib" and block["images"] == 2500
    assert set(block["interval_margin"]) == {"10", "100", "1000"}
    predictor = load_predictor(path, device="cpu").uncalibrated()
    mnist = load_mnist()
    fitted = {name: fit_temperature(predictor.split_logits(name), split_arrays(mnist, name)[1])
              for name in (SELECTION_SPLIT, CALIBRATION_SPLIT, "val")}
    assert block["cnn_temperature"] == pytest.approx(fitted[CALIBRATION_SPLIT], rel=1e-9)
    assert block["cnn_temperature"] != pytest.approx(fitted[SELECTION_SPLIT], rel=1e-6)
    assert block["cnn_temperature"] != pytest.approx(fitted["val"], rel=1e-6)

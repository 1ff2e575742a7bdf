"""A personal model from the user's own handwriting: the collection's fixed held-out part, the
`personal` preset (--init-from, --collection-weight) on a stand-in writer at a tiny size, its refusals,
and the lineage every trained checkpoint records."""

import dataclasses
import json

import numpy as np
import pytest
import torch

import core.training.phases
from core import load_predictor
from core.collection import holdout_names, load_collection, save_digits, training_digits
from core.data import load_mnist, split_arrays
from core.data.stand_in import SEED, stand_in_digits, stand_in_writer, write_stand_in_collection
from core.model.checkpoint import load_checkpoint, read_metadata
from core.paths import CHECKPOINTS_DIR, DEFAULT_CHECKPOINT
from core.predict.cache import file_sha256
from core.training import PRESETS, make_config, train
from scripts.train import main

TINY = {"train_subset": 640, "batch_size": 64, "val_subset": 200, "val_sequences": 50}  # 20 CNN steps


@pytest.fixture
def folder(tmp_path, monkeypatch):
    """An empty collection, and no label decisions or promoted default, all private to the test."""
    monkeypatch.setenv("DIGITSUM_COLLECTION_DIR", str(tmp_path / "collection"))
    monkeypatch.setenv("DIGITSUM_DECISIONS_DIR", str(tmp_path / "decisions"))
    monkeypatch.setenv("DIGITSUM_USER_DIR", str(tmp_path / "user"))
    return tmp_path / "collection"


@pytest.fixture
def tiny_personal(monkeypatch):
    """The personal preset shrunk to a few seconds (the CLI reads PRESETS)."""
    monkeypatch.setitem(PRESETS, "personal", dataclasses.replace(PRESETS["personal"], **TINY))


def names(count: int) -> list[str]:
    return [f"digits-20250101T0000{i:02d}000000Z-{i:08x}.npz" for i in range(count)]


def marked(count: int, value: int) -> np.ndarray:
    """`count` images that say which save they came from: every pixel is `value`."""
    return np.full((count, 28, 28), value, np.uint8)


# -- the held-out part ----------------------------------------------------------------------------------
def test_the_held_out_part_is_a_fact_of_the_file_names():
    # Pinned: the rule decides which saves a person's earlier models never saw, so it never changes.
    few, more = names(12), names(20)
    assert holdout_names(few) == {few[1]}  # no name hashes low: the second save is held out
    assert holdout_names(more) == {"digits-20250101T000017000000Z-00000011.npz"}  # one does: only it
    many = names(500)
    assert holdout_names(many) == holdout_names(reversed(many))  # the order given does not matter
    assert 0.15 <= len(holdout_names(many)) / len(many) <= 0.25  # about 20%


def test_two_saves_hold_one_out_and_a_training_save_never_moves_out_as_saves_are_added():
    assert holdout_names([]) == set() and len(holdout_names(names(1))) <= 1
    every = names(60)
    for count in range(2, len(every)):
        before, after = set(every[:count]), set(every[: count + 1])
        held_before, held_after = holdout_names(before), holdout_names(after)
        assert held_before and held_before < before
        assert not (before - held_before) & held_after  # trained on once, never held out later


def test_a_save_is_never_split_between_the_parts(folder):
    saved = [save_digits(marked(3, 10 * i + 5), [i % 10] * 3) for i in range(12)]
    held = holdout_names(path.name for path in saved)
    assert 1 <= len(held) < len(saved)
    train_images, _ = load_collection("train")
    holdout_images, _ = load_collection("holdout")
    assert len(train_images) + len(holdout_images) == len(load_collection("all")[0]) == 36
    for i, path in enumerate(saved):
        value = 10 * i + 5
        part = holdout_images if path.name in held else train_images
        other = train_images if path.name in held else holdout_images
        assert (part[:, 0, 0] == value).sum() == 3 and not (other[:, 0, 0] == value).any()
    np.testing.assert_array_equal(load_collection("holdout")[0], holdout_images)  # the same on every read
    with pytest.raises(ValueError, match="part must be one of all, train, holdout, got 'test'"):
        load_collection("test")


# -- the stand-in writer ----------------------------------------------------------------------------------
def test_the_stand_in_writer_is_a_fixed_change_of_style_the_shipped_model_reads_poorly():
    images, labels = stand_in_digits("val_select", 1000)
    np.testing.assert_array_equal(stand_in_digits("val_select", 1000)[0], images)  # deterministic
    clean, clean_labels = split_arrays(load_mnist(), "val_select")
    rows = np.random.default_rng(SEED).permutation(len(clean))[:1000]
    np.testing.assert_array_equal(images, stand_in_writer(clean[rows]))
    np.testing.assert_array_equal(labels, clean_labels[rows])
    assert np.abs(images.astype(int) - clean[rows].astype(int)).mean() > 20  # much changed
    shipped = load_predictor(DEFAULT_CHECKPOINT, device="cpu")
    reads = {name: (shipped.cnn_logits(x).numpy().argmax(1) == labels).mean() for name, x in
             (("clean", clean[rows]), ("stand-in", images))}
    assert reads["clean"] >= 0.99 and 0.94 <= reads["stand-in"] <= 0.975, reads  # about 96%
    assert not set(map(bytes, stand_in_digits("val_select", 40, skip=1000)[0])) & set(map(bytes, images))
    with pytest.raises(ValueError, match="test has 10000 images"):
        stand_in_digits("test", 5, skip=9998)


# -- the personal preset -----------------------------------------------------------------------------------
def test_personal_on_the_stand_in_writer_keeps_the_head_refits_on_val_calib_and_records_its_lineage(
        folder, tiny_personal, smoke_checkpoint, tmp_path, capsys):
    write_stand_in_collection(train_saves=4, per_save=10)
    from core.data.decisions import record_decision  # a standing exclusion and relabel are applied

    files = sorted(path.name for path in folder.iterdir())
    first = 10 * next(i for i, name in enumerate(files) if name not in holdout_names(files))  # a train save's digits
    record_decision("mine", first, "exclude")
    record_decision("mine", first + 1, "relabel", label=(int(load_collection()[1][first + 1]) + 1) % 10)
    out = tmp_path / "personal.pt"
    assert main(["--preset", "personal", "--init-from", str(smoke_checkpoint), "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoint"] == str(out)
    meta, parent = read_metadata(out), read_metadata(smoke_checkpoint)
    assert meta["preset"] == "personal" and meta["model_config"] == parent["model_config"]
    assert meta["lineage"] == {
        "parent": {"path": str(smoke_checkpoint.resolve()), "sha256": file_sha256(smoke_checkpoint)},
        "data": {"mnist_train": TINY["train_subset"], "collection_digits": 40 - 1, "label_decisions": 2}}
    block = meta["calibration"]
    assert block["fitted_on"] == "val_calib" and block["images"] == 2500
    assert block["cnn_temperature"] != parent["calibration"]["cnn_temperature"]  # refitted for the new CNN
    state, parent_state = load_checkpoint(out)[0], load_checkpoint(smoke_checkpoint)[0]
    assert all(torch.equal(state[k], v) for k, v in parent_state.items() if k.startswith("head."))  # head kept
    assert not all(torch.equal(state[k], v) for k, v in parent_state.items() if k.startswith("cnn."))  # CNN tuned
    assert not any(CHECKPOINTS_DIR.glob("personal*"))


def test_the_personal_run_never_draws_from_the_held_out_part(folder, smoke_checkpoint, tmp_path, monkeypatch):
    """Every image a CNN batch holds, recorded before augmentation: collection digits of the train part
    are among them, no digit of the held-out part ever is."""
    write_stand_in_collection(train_saves=3, per_save=10)
    drawn, real = [], core.training.phases.augment

    def recording(x, gen, cfg):
        drawn.extend(bytes(image) for image in (x[:, 0] * 255).round().to(torch.uint8).numpy())
        return real(x, gen, cfg)

    monkeypatch.setattr(core.training.phases, "augment", recording)
    config = make_config("personal", init_from=str(smoke_checkpoint), device="cpu", **TINY)
    train(config, out_path=tmp_path / "personal.pt")
    train_part, holdout = (set(map(bytes, load_collection(part)[0])) for part in ("train", "holdout"))
    assert holdout and len(drawn) == 20 * 64
    assert len(train_part & set(drawn)) >= 20  # about 32 draws a step from 30 digits: nearly all of them
    assert not holdout & set(drawn)


def test_fewer_than_20_train_digits_is_refused_in_one_line(folder, smoke_checkpoint, tmp_path, capsys):
    for i in range(4):
        save_digits(marked(4, i + 1), [1, 2, 3, 4])
    count = len(training_digits()[1])
    assert count < 20
    out = tmp_path / "personal.pt"
    assert main(["--preset", "personal", "--init-from", str(smoke_checkpoint), "--out", str(out), "--device", "cpu",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: --collection-weight 0.5 (preset personal) needs at "
                                                         "least 20 digits in the collection's train part")
    assert f"which holds {count};" in err and not out.exists()


@pytest.mark.parametrize("flag", ["--out", "--run-dir"])
def test_a_personal_model_is_never_written_into_checkpoints(folder, smoke_checkpoint, capsys, flag):
    target = CHECKPOINTS_DIR / "personal-test.pt"
    assert main(["--preset", "personal", "--init-from", str(smoke_checkpoint), flag, str(target), "--device", "cpu",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(f"error: {flag} {target} is inside {CHECKPOINTS_DIR}")
    assert not target.exists()


def test_personal_starts_from_the_active_default_and_takes_its_shape(folder, smoke_checkpoint):
    from core import promotion

    shipped = make_config("personal")
    assert shipped.init_from == str(promotion.shipped_default()) and shipped.widths == [32, 64, 128]
    promotion.promote(smoke_checkpoint)
    promoted = make_config("personal")
    assert promoted.init_from == str(smoke_checkpoint.resolve())
    assert promoted.widths == read_metadata(smoke_checkpoint)["model_config"]["widths"] == [16, 32, 64]
    with pytest.raises(ValueError, match=r"^--head deepsets differs from the --init-from model's head \(lstm\)"):
        make_config("personal", head="deepsets")


@pytest.mark.parametrize("overrides, message", [
    ({"collection_weight": 0.95}, "--collection-weight must be in [0, 0.9] (0: MNIST only), got 0.95"),
    ({"init_from": "/nonexistent/model.pt"}, "--init-from must be an existing checkpoint file, got"),
])  # fmt: skip
def test_bad_personal_settings_name_the_flag(folder, overrides, message):
    with pytest.raises(ValueError) as info:
        make_config("smoke", **overrides)
    assert str(info.value).startswith(message)


def test_a_run_from_scratch_records_a_lineage_without_parent(smoke_checkpoint):
    lineage = read_metadata(smoke_checkpoint)["lineage"]
    assert lineage == {"parent": None, "data": {"mnist_train": PRESETS["smoke"].train_subset, "collection_digits": 0,
                                                "label_decisions": 0}}

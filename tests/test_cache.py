"""core.predict.cache: the CNN's logits on whole splits, on disk per checkpoint content — rebuilt when the
checkpoint changes or the file is damaged, and giving the same evaluations as a direct CNN pass.

Tiny seeded checkpoints keep the CNN passes over whole splits cheap; $DIGITSUM_CACHE_DIR points at a
temp folder, so no test writes the repository's cache/.
"""

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from core import load_predictor
from core.data import evaluation_sequences, load_mnist, split_arrays
from core.evaluate import evaluate_sequences
from core.model.checkpoint import load_model
from core.predict import Predictor, cache


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("DIGITSUM_CACHE_DIR", str(folder))
    return folder


@pytest.fixture(scope="module")
def models(tmp_path_factory, make_checkpoint):
    folder = tmp_path_factory.mktemp("tiny")
    calibration = {"cnn_temperature": 0.7, "head_temperature": 0.9}
    return (make_checkpoint(folder / "a.pt", seed=0, calibration=calibration),
            make_checkpoint(folder / "b.pt", seed=1, calibration=calibration))


def direct(predictor, split):
    return predictor.cnn_logits(split_arrays(load_mnist(), split)[0]).numpy()


def forbid_cnn(predictor, monkeypatch):
    def fail(images):
        raise AssertionError("the CNN ran although the logits were cached")

    monkeypatch.setattr(predictor, "cnn_logits", fail)


def test_logits_are_stored_and_reused(models, cache_dir, monkeypatch):
    first = load_predictor(models[0], device="cpu")
    logits = first.split_logits("val")
    assert logits.dtype == np.float32 and logits.shape == (5000, 10)
    np.testing.assert_array_equal(logits, direct(first, "val"))  # raw logits: no temperature applied
    assert [p.name for p in cache_dir.iterdir()] == [cache.cache_path(first.checkpoint_hash, "val").name]
    again = load_predictor(models[0], device="cpu")
    assert again.checkpoint_hash == first.checkpoint_hash == cache.file_sha256(models[0])
    forbid_cnn(again, monkeypatch)
    np.testing.assert_array_equal(again.split_logits("val"), logits)


def test_rebuilt_when_the_checkpoint_changes(models, tmp_path):
    path = tmp_path / "model.pt"
    shutil.copy(models[0], path)
    old = load_predictor(path, device="cpu")
    old_logits = np.array(old.split_logits("val"))
    shutil.copy(models[1], path)  # same path, new content
    new = load_predictor(path, device="cpu")
    assert new.checkpoint_hash != old.checkpoint_hash
    new_logits = new.split_logits("val")
    np.testing.assert_array_equal(new_logits, direct(new, "val"))
    assert not np.allclose(new_logits, old_logits)


def _rewrite(path, logits, meta):
    with open(path, "wb") as handle:
        np.savez(handle, logits=logits, meta=np.array(json.dumps(meta)))


def corrupt(kind: str, path) -> None:
    good = np.load(path)["logits"]
    meta = json.loads(str(np.load(path)["meta"][()]))
    if kind == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif kind == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "wrong shape":
        _rewrite(path, good[:, :9].copy(), meta)
    elif kind == "wrong dtype":
        _rewrite(path, good.astype(np.float64), meta)
    elif kind == "checksum mismatch":
        _rewrite(path, good + np.float32(1), meta)  # plausible logits, but not the ones hashed
    elif kind == "wrong key":
        fake = good + np.float32(1)
        meta = {**meta, "checkpoint_sha256": "0" * 64, "logits_sha256": hashlib.sha256(fake.tobytes()).hexdigest()}
        _rewrite(path, fake, meta)


@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "wrong shape", "wrong dtype", "checksum mismatch",
                                  "wrong key"])
def test_a_corrupt_cache_file_is_rebuilt(models, kind):
    first = load_predictor(models[0], device="cpu")
    good = np.array(first.split_logits("val"))
    path = cache.cache_path(first.checkpoint_hash, "val")
    corrupt(kind, path)
    assert cache.load_logits(first.checkpoint_hash, "val", len(good)) is None  # detected, never trusted
    fresh = load_predictor(models[0], device="cpu")
    np.testing.assert_array_equal(fresh.split_logits("val"), good)
    np.testing.assert_array_equal(cache.load_logits(first.checkpoint_hash, "val", len(good)), good)  # rewritten


def test_evaluation_from_the_cache_equals_a_direct_one(models, monkeypatch):
    images, labels = split_arrays(load_mnist(), "test")
    seqs = evaluation_sequences([1, 7, 40], 30, 3, "test", labels)
    cached = load_predictor(models[0], device="cpu")
    cached.split_logits("test")  # fill the cache, then evaluate without the CNN
    forbid_cnn(cached, monkeypatch)
    from_cache = evaluate_sequences(cached, seqs, images)
    model, _ = load_model(models[0])
    in_memory = Predictor(model, cached.metadata, torch.device("cpu"))  # no file: no cache, the dedup path
    assert in_memory.checkpoint_hash is None
    plain = evaluate_sequences(in_memory, seqs, images)
    np.testing.assert_allclose(from_cache["pred_sum"], plain["pred_sum"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(from_cache["p_exact"], plain["p_exact"], rtol=1e-6, atol=1e-9)
    for ours, theirs in zip(from_cache["digit_conf"], plain["digit_conf"]):
        np.testing.assert_allclose(ours, theirs, atol=1e-4)
    assert from_cache["pred_digits"].tolist() == plain["pred_digits"].tolist()


def test_other_images_of_the_same_shape_are_not_served_from_the_cache(models):
    images = split_arrays(load_mnist(), "test")[0]
    predictor = load_predictor(models[0], device="cpu")
    predictor.split_logits("test")
    other = images[::-1].copy()  # same shape and dtype, other contents
    indices, lengths = np.array([[0, 1, 2], [3, 4, -1]]), np.array([3, 2])
    claimed = predictor.run_indexed(other, indices, lengths, split="test")
    plain = predictor.run_indexed(other, indices, lengths)
    np.testing.assert_array_equal(np.concatenate(claimed.digit_probs), np.concatenate(plain.digit_probs))
    true_split = predictor.run_indexed(images, indices, lengths, split="test")
    assert not np.allclose(np.concatenate(true_split.digit_probs), np.concatenate(claimed.digit_probs))


def test_a_predictor_built_in_memory_writes_no_cache(models, cache_dir):
    loaded = load_predictor(models[0], device="cpu")
    in_memory = Predictor(loaded._model, loaded.metadata, torch.device("cpu"))
    np.testing.assert_array_equal(in_memory.split_logits("val"), direct(loaded, "val"))
    assert not cache_dir.exists() or not any(cache_dir.iterdir())

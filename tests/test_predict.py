"""core.predict: the public API contract — input forms, bad input, dedup, bounded chunks, no mutation.

An untrained (seeded) model is enough here: these tests check the plumbing, not accuracy (the smoke
training test in test_train.py checks that a trained predictor is accurate).
"""

import numpy as np
import pytest
import torch

import core.predict.predictor as predict_module
from core import load_predictor
from core.predict import Prediction, dedup_images


@pytest.fixture(scope="module")
def predictor(tmp_path_factory, make_checkpoint):
    return load_predictor(make_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt"), device="cpu")


@pytest.fixture(scope="module")
def pool():
    return np.random.default_rng(0).integers(0, 256, size=(40, 28, 28), dtype=np.uint8)


class CountingCNN(torch.nn.Module):
    """Wraps the CNN and counts the images it sees."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn, self.seen = cnn, 0

    def forward(self, x):
        self.seen += x.shape[0]
        return self.cnn(x)


@pytest.fixture
def counter(predictor):
    original = predictor._model.cnn  # swapped by hand: monkeypatch cannot restore nn.Module children
    wrapper = CountingCNN(original)
    predictor._model.cnn = wrapper
    yield wrapper
    predictor._model.cnn = original


def test_array_input(predictor, pool):
    images = pool[np.arange(3 * 5).reshape(3, 5) % len(pool)]
    sums = predictor.predict(images)
    assert sums.shape == (3,) and sums.dtype == np.float64 and np.isfinite(sums).all()
    probs = predictor.predict_digits(images)
    assert probs.shape == (3, 5, 10) and np.allclose(probs.sum(-1), 1, atol=1e-5)


def test_ragged_list_matches_one_by_one(predictor, pool):
    seqs = [pool[:1], pool[3:10], pool[10:13]]
    together = predictor.run(seqs)
    assert isinstance(together, Prediction) and together.sums.shape == (3,)
    for i, seq in enumerate(seqs):
        alone = predictor.predict(seq[None])[0]
        assert together.sums[i] == pytest.approx(alone, abs=1e-4)  # batching never changes a prediction
        assert together.running[i].shape == (len(seq),) and together.running[i][-1] == together.sums[i]
        assert together.digit_probs[i].shape == (len(seq), 10)
    probs = predictor.predict_digits(seqs)
    assert isinstance(probs, list) and [p.shape for p in probs] == [(1, 10), (7, 10), (3, 10)]


def test_run_indexed_matches_run(predictor, pool):
    indices = np.array([[0, 5, 5, -1], [7, 1, 2, 3]])
    lengths = np.array([3, 4])
    fast = predictor.run_indexed(pool, indices, lengths)
    slow = predictor.run([pool[[0, 5, 5]], pool[[7, 1, 2, 3]]])
    assert np.allclose(fast.sums, slow.sums, atol=1e-4)
    with pytest.raises(ValueError, match="lie in"):
        predictor.run_indexed(pool, np.array([[0, 99]]), np.array([2]))
    with pytest.raises(ValueError, match="lengths"):
        predictor.run_indexed(pool, indices, np.array([0, 4]))


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 3, 28, 28), dtype=np.float32), "uint8"),
    (np.zeros((2, 3, 28, 28), dtype=np.int64), "uint8"),
    (np.zeros((3, 28, 28), dtype=np.uint8), r"\(N, L, 28, 28\)"),
    (np.zeros((2, 3, 28, 27), dtype=np.uint8), r"\(N, L, 28, 28\)"),
    (np.zeros((0, 3, 28, 28), dtype=np.uint8), "N >= 1"),
    (np.zeros((2, 0, 28, 28), dtype=np.uint8), "L >= 1"),
    ([], "empty list"),
    ([np.zeros((2, 28, 28), dtype=np.float64)], "uint8"),
    ([np.zeros((0, 28, 28), dtype=np.uint8)], "L >= 1"),
    ([np.zeros((2, 32, 32), dtype=np.uint8)], r"\(L, 28, 28\)"),
    ("images.png", "uint8"),
    (None, "uint8"),
])  # fmt: skip
def test_bad_input_is_a_clear_value_error(predictor, bad, match):
    for method in (predictor.predict, predictor.predict_digits, predictor.run):
        with pytest.raises(ValueError, match=match):
            method(bad)


def test_identical_images_go_through_the_cnn_once(predictor, pool, counter):
    rng = np.random.default_rng(1)
    images = pool[rng.integers(0, 25, size=(200, 10))]  # 2000 positions, at most 25 distinct images
    distinct = len(np.unique(images.reshape(-1, 784), axis=0))
    predictor.predict(images)
    assert counter.seen == distinct
    counter.seen = 0
    twin = images[:1].copy()
    twin[0, 0, 0, 0] ^= 1  # one bit different: a different image
    predictor.predict(np.concatenate([images[:1], twin]))
    assert counter.seen == len(np.unique(np.concatenate([images[:1], twin]).reshape(-1, 784), axis=0))


def test_run_indexed_runs_the_cnn_on_used_indices_only(predictor, pool, counter):
    predictor.run_indexed(pool, np.array([[3, 3, 4], [4, 3, -1]]), np.array([3, 2]))
    assert counter.seen == 2


def test_dedup_survives_hash_collisions(monkeypatch, pool):
    monkeypatch.setattr(predict_module, "_HASH_MULT", np.zeros(98, dtype=np.uint64))  # every hash collides
    flat = pool[[0, 1, 0, 2, 1]]
    reps, inverse = dedup_images(flat)
    assert len(reps) == 3 and np.array_equal(flat[reps][inverse], flat)


def test_long_sequences_in_bounded_chunks(predictor, pool, counter, monkeypatch):
    monkeypatch.setattr(predict_module, "HEAD_POSITIONS", 3000)  # forces several head batches
    long = pool[np.arange(5000) % 7]
    out = predictor.run([long, pool[:2], long[:4000]])
    assert counter.seen == 7
    assert [len(r) for r in out.running] == [5000, 2, 4000]
    assert np.isfinite(out.sums).all()
    assert out.running[2][-1] == pytest.approx(out.running[0][3999], abs=1e-6)  # same prefix, same running sum


def test_predictor_is_never_mutated(predictor, pool):
    before = {k: v.clone() for k, v in predictor._model.state_dict().items()}
    predictor.metadata["head"] = "changed"
    predictor.predict(pool[None, :5])
    assert predictor.metadata["head"] == "lstm"
    assert not predictor._model.training
    assert all(torch.equal(before[k], v) for k, v in predictor._model.state_dict().items())


def test_a_head_never_changes_the_thread_count_another_thread_sees():
    """A sequence head runs on one thread; a CNN pass started meanwhile in another thread (another
    session) must wait for it and then run with torch's full thread count."""
    import threading

    import torch

    from core.predict.threads import one_thread, torch_section

    cpu = torch.device("cpu")
    before = torch.get_num_threads()
    inside, seen = threading.Event(), []

    def cnn_pass():
        inside.wait(5)
        with torch_section(cpu):
            seen.append(torch.get_num_threads())

    other = threading.Thread(target=cnn_pass)
    other.start()
    with one_thread(cpu):
        assert torch.get_num_threads() == 1
        inside.set()
        other.join(0.3)
        assert other.is_alive() and not seen  # it waits while the head holds torch on one thread
    other.join(5)
    assert seen == [before] and torch.get_num_threads() == before

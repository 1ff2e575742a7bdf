"""core.evaluate.embeddings.digit_map: a 2-D map of the test digits from the CNN's penultimate features that keeps
the classes apart (most points' 10 nearest neighbours share their label), cached per checkpoint.

The map of all 10,000 test digits is the benchmark's to time; here the first 2,000 of them, on a copy
of the shipped checkpoint, keep the file fast. The cache folder is private to the test session.
"""

import numpy as np
import pytest
import torch
from sklearn.neighbors import NearestNeighbors

from core import load_predictor
from core.data import load_mnist, split_arrays
from core.evaluate import digit_map, embeddings
from core.predict import Predictor, cache

LIMIT = 2000


@pytest.fixture(scope="module")
def shipped(checkpoint_dir):
    return checkpoint_dir / "default.pt"


@pytest.fixture(scope="module")
def first_map(shipped):
    return digit_map(load_predictor(shipped, device="cpu"), "test", limit=LIMIT)


def neighbour_agreement(table, k: int = 10) -> np.ndarray:
    """Per point: the share of its k nearest map neighbours (itself excluded) that carry its label."""
    xy = table[["x", "y"]].to_numpy()
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(xy).kneighbors(xy, return_distance=False)[:, 1:]
    labels = table["label"].to_numpy()
    return (labels[neighbours] == labels[:, None]).mean(axis=1)


def test_the_map_keeps_the_classes_apart(first_map):
    labels = split_arrays(load_mnist(), "test")[1][:LIMIT]
    assert list(first_map.columns[:5]) == ["index", "x", "y", "label", "pred"]
    assert len(first_map) == LIMIT and first_map["index"].tolist() == list(range(LIMIT))
    np.testing.assert_array_equal(first_map["label"], labels)
    assert np.isfinite(first_map[["x", "y"]].to_numpy()).all()
    agreement = neighbour_agreement(first_map)
    assert (agreement > 0.5).mean() > 0.9, f"only {(agreement > 0.5).mean():.1%} of points sit among their class"
    shuffled = first_map.assign(label=np.random.default_rng(0).permutation(labels))
    assert (neighbour_agreement(shuffled) > 0.5).mean() < 0.2  # the measure can fail: random labels do
    assert (first_map["correct"] == (first_map["pred"] == first_map["label"])).all()
    assert first_map["correct"].mean() > 0.98 and first_map["conf"].between(0.1, 1).all()


def test_the_second_map_comes_from_the_cache(shipped, first_map, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("the projection ran although the map was cached")

    monkeypatch.setattr(embeddings, "project", fail)
    again = digit_map(load_predictor(shipped, device="cpu"), "test", limit=LIMIT)
    np.testing.assert_array_equal(again[["x", "y"]].to_numpy(), first_map[["x", "y"]].to_numpy())


def test_a_corrupt_map_file_is_rebuilt(shipped, first_map, monkeypatch):
    predictor = load_predictor(shipped, device="cpu")
    name = f"{embeddings.MAP_NAME}_first{LIMIT}"
    path = cache.cache_path(predictor.checkpoint_hash, "test", name)
    assert path.exists()
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    assert cache.load_array(predictor.checkpoint_hash, name, "test", (LIMIT, 2)) is None  # never trusted
    calls = []
    project = embeddings.project
    monkeypatch.setattr(embeddings, "project", lambda features: calls.append(1) or project(features))
    rebuilt = digit_map(predictor, "test", limit=LIMIT)
    assert calls == [1]
    np.testing.assert_allclose(rebuilt[["x", "y"]].to_numpy(), first_map[["x", "y"]].to_numpy(), atol=1e-4)  # seeded
    assert cache.load_array(predictor.checkpoint_hash, name, "test", (LIMIT, 2)) is not None  # rewritten


def test_features_are_the_penultimate_layer(shipped):
    predictor = load_predictor(shipped, device="cpu")
    images = split_arrays(load_mnist(), "test")[0][:64]
    features = embeddings.cnn_features(predictor, images)
    assert features.shape == (64, predictor.model.cnn.members[0].classifier[-1].in_features)
    with torch.inference_mode():  # the classifier on these features gives the CNN's logits (one member)
        logits = predictor.model.cnn.members[0].classifier(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(logits, predictor.cnn_logits(images).numpy(), atol=1e-4)


def test_a_predictor_built_in_memory_writes_no_map(shipped, private_cache_dir):
    loaded = load_predictor(shipped, device="cpu")
    in_memory = Predictor(loaded.model, loaded.metadata, torch.device("cpu"))
    before = sorted(p.name for p in private_cache_dir.iterdir())
    small = digit_map(in_memory, "test", limit=300)
    assert len(small) == 300 and sorted(p.name for p in private_cache_dir.iterdir()) == before


@pytest.mark.parametrize("limit", [0, 10, 10**6, 2.5, True])
def test_a_bad_limit_is_refused(shipped, limit):
    with pytest.raises(ValueError, match="limit must be"):
        digit_map(load_predictor(shipped, device="cpu"), "test", limit=limit)

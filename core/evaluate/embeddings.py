"""The digit map: every image of a split as a point in 2-D, placed by what the CNN sees.

The CNN's penultimate features (core.model.cnn: CNNEnsemble.features, 128 numbers per image and member before the
classifier) are projected to 2-D with UMAP (umap-learn), so images the CNN reads alike sit together:
a misread digit shows up inside the cluster of the digit it was read as, a suspect label among the
points of its suggested class.

Speed: the exact 15 nearest neighbours come from scikit-learn (about 1 s for 10,000 points), which
spares UMAP its approximate search and that search's numba compile time (a plain UMAP took 41-68 s
here, this one 10-25 s); 200 optimisation epochs are plenty for 10,000 points. The whole map of the
10,000 test digits took 22 s on the 2-core CPU with a training run competing. A fixed random_state makes
the map the same on every run. The coordinates are cached per checkpoint and split
(core.predict.cache.cached_array), so a checkpoint's map is computed once; a cached map loads in ms.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import torch

from core.data import load_mnist, split_arrays
from core.data.splits import SPLITS
from core.predict import cache
from core.predict.predictor import CNN_CHUNK
from core.predict.temperature import softmax

MAP_NAME = "digitmap_umap2"  # the cache's name for the coordinates: change it when the projection changes
N_NEIGHBORS = 15
N_EPOCHS = 200
RANDOM_STATE = 0
MIN_IMAGES = 50  # fewer gives UMAP too little to lay out
COLUMNS = ["index", "x", "y", "label", "pred", "conf", "correct"]


@torch.inference_mode()
def cnn_features(predictor, images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> float32 (n, C): the CNN's penultimate features (an ensemble's members side by
    side), CNN_CHUNK images at a time."""
    cnn = predictor.model.cnn
    out = []
    for i in range(0, len(images), CNN_CHUNK):
        x = torch.from_numpy(np.array(images[i : i + CNN_CHUNK])).to(predictor.device)  # a copy: may be read-only
        out.append(cnn.features(x.unsqueeze(1).float().div_(255.0)).float().cpu().numpy())
    return np.concatenate(out)


def project(features: np.ndarray, random_state: int = RANDOM_STATE) -> np.ndarray:
    """float (n, C) -> float32 (n, 2) UMAP coordinates, deterministic in random_state."""
    from sklearn.neighbors import NearestNeighbors

    with warnings.catch_warnings():  # "Tensorflow not installed": only ParametricUMAP needs it
        warnings.simplefilter("ignore", ImportWarning)
        import umap  # imported here: it loads numba, which `import core` should not pay for

    features = np.asarray(features, np.float32)
    if len(features) < MIN_IMAGES:
        raise ValueError(f"the digit map needs at least {MIN_IMAGES} images, got {len(features)}")
    dists, neighbours = NearestNeighbors(n_neighbors=N_NEIGHBORS).fit(features).kneighbors(features)  # self first
    reducer = umap.UMAP(n_neighbors=N_NEIGHBORS, n_epochs=N_EPOCHS, min_dist=0.1, random_state=random_state, n_jobs=1,
                        precomputed_knn=(neighbours, dists, None))
    with warnings.catch_warnings():  # "transform will be unavailable": the map never transforms new points
        warnings.filterwarnings("ignore", message="precomputed_knn", category=UserWarning)
        return np.asarray(reducer.fit_transform(features), np.float32)


def digit_map(predictor, split: str = "test", limit: int | None = None) -> pd.DataFrame:
    """One row per image of `split` (the first `limit` images with limit, e.g. in tests): its index in
    the split, its map coordinates x and y, its given label, the CNN's reading pred, that reading's
    calibrated confidence conf, and correct (pred == label). Cached per checkpoint, split and limit."""
    images, labels = split_arrays(load_mnist(), split)
    if limit is not None:
        whole = isinstance(limit, (int, np.integer)) and not isinstance(limit, bool)
        if not whole or not MIN_IMAGES <= limit <= len(images):
            raise ValueError(f"limit must be an integer in {MIN_IMAGES}..{len(images)} or None, got {limit!r}")
        images, labels = images[:limit], labels[:limit]

    def compute() -> np.ndarray:
        return project(cnn_features(predictor, images))

    if predictor.checkpoint_hash is None or split not in SPLITS:  # in memory, or "mine" (changes with each save)
        xy = compute()
    else:
        name = MAP_NAME if limit is None else f"{MAP_NAME}_first{int(limit)}"
        xy = cache.cached_array(predictor.checkpoint_hash, name, split, (len(images), 2), compute)
    whole_split = limit is None or predictor.checkpoint_hash is not None  # a cached split, or no way round it
    logits = predictor.split_logits(split)[: len(images)] if whole_split else predictor.cnn_logits(images).numpy()
    probs = softmax(logits, predictor.cnn_temperature)
    pred = probs.argmax(axis=1)
    return pd.DataFrame({"index": np.arange(len(images)), "x": xy[:, 0], "y": xy[:, 1],
                         "label": labels.astype(np.int64), "pred": pred.astype(np.int64),
                         "conf": probs.max(axis=1).astype(np.float64), "correct": pred == labels})[COLUMNS]

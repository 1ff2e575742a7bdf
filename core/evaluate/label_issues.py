"""Suspect labels: test images whose given label the model doubts, ranked by cleanlab.

The ranking comes from the model and the data alone: the checkpoint's calibrated probabilities on the
split (never trained on: test is out-of-sample by construction), cleanlab's confident-learning filter
to decide which labels are issues, and its self-confidence label-quality score to rank them. No
published list of known MNIST label errors is used anywhere.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from core.evaluate.tables import evaluation_truth

COLUMNS = ["index", "given", "suggested", "score", "flagged"]


def label_scores(probs: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """One row per image, most suspect first: cleanlab's issue flag and score = 1 - label quality
    (the model's probability that the given label is wrong)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    labels = np.asarray(labels, np.int64)
    probs = np.asarray(probs, np.float64)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    # n_jobs=1: cleanlab otherwise forks a worker pool, whose workers inherit the Streamlit server's
    # SIGTERM handler and never exit, which hangs the dashboard.
    flagged = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1)
    table = pd.DataFrame({"index": np.arange(len(labels)), "given": labels, "suggested": probs.argmax(axis=1),
                          "score": 1.0 - quality, "flagged": flagged})
    return table.sort_values(["score", "index"], ascending=[False, True], kind="stable").reset_index(drop=True)


def suspect_labels(predictor, split: str = "test", images: np.ndarray | None = None,
                   labels: np.ndarray | None = None, decisions: bool = False) -> pd.DataFrame:
    """Every image of `split` (or of the given images and labels), most suspect first, with columns
    index (the image's index in the split), given, suggested (the model's reading), score (1 - cleanlab's
    self-confidence label quality: the calibrated probability that the given label is wrong) and
    flagged (cleanlab's confident-learning verdict, which is stricter than score > 0.5).
    decisions: the whole split with a person's label decisions applied: a relabelled image is judged
    by its decided label (given), an excluded one is left out."""
    from core.predict.temperature import softmax

    if images is not None and decisions:
        raise ValueError("decisions apply to a whole split: give no images and labels with decisions=True")
    keep = None
    if images is None:  # the whole split: its raw logits from the checkpoint's disk cache
        labels, excluded = evaluation_truth(split, decisions=decisions)
        logits = predictor.split_logits(split)
        if excluded is not None and len(excluded):
            keep = np.ones(len(labels), bool)
            keep[excluded] = False
            labels, logits = labels[keep], logits[keep]
    else:
        logits = predictor.cnn_logits(images).numpy()
    probs = softmax(logits, predictor.cnn_temperature)
    table = label_scores(probs, labels)
    if keep is not None:  # back to indices into the split (an increasing map: the order holds)
        table["index"] = np.flatnonzero(keep)[table["index"].to_numpy()]
    return table[COLUMNS]

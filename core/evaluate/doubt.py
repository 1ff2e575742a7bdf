"""Member disagreement as a doubt signal, and whether it should rank sequences: measured on val only.

A digit the members of an ensemble read differently is doubtful even when their averaged probability
is high. member_agreement() gives, per image, the share of members whose own reading is the ensemble's;
doubt_study() ranks val_select sequences by p_exact alone and by p_exact times the agreement of every
digit, and compares the two rankings (exact-match at 90% coverage, AURC). The doubt joins the ranking
only where it wins on val (reports/benchmark.md says which).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from core.data import load_mnist, split_arrays
from core.data.sequences import evaluation_sequences
from core.data.splits import SELECTION_SPLIT
from core.evaluate.reliability import aurc, exact_at_coverage, risk_coverage

STUDY_LENGTHS = (10, 100)


@torch.inference_mode()
def member_readings(predictor, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each member's reading (n, M), the ensemble's reading (n,)) of uint8 images (n, 28, 28): the digit
    each CNN member and their average put first (M = 1 for a single CNN), from one pass of the members."""
    z = predictor.member_logits(images)  # (M, n, 10)
    joint = predictor.model.cnn.combine(z.to(predictor.device)).argmax(-1).cpu().numpy()
    return z.argmax(-1).T.numpy(), joint


def member_agreement(predictor, images: np.ndarray) -> np.ndarray:
    """float (n,): the share of the CNN members whose reading is the ensemble's (1.0 for a single CNN)."""
    members, joint = member_readings(predictor, images)
    return (members == joint[:, None]).mean(1)


def doubt_study(predictor, per_length: int = 2000, seed: int = 0, split: str = SELECTION_SPLIT) -> dict:
    """Per length of STUDY_LENGTHS: exact-match at 90% coverage and AURC when sequences of `split` are
    ranked by p_exact, and by p_exact times the product of their digits' member agreement."""
    images, labels = split_arrays(load_mnist(), split)
    agreement = member_agreement(predictor, images)
    out = {"split": split, "sequences_per_length": per_length,
           "images_with_disagreement": int((agreement < 1).sum()), "images": int(len(images))}
    seqs = evaluation_sequences(STUDY_LENGTHS, per_length, seed, split, labels)
    prediction = predictor.run_indexed(images, seqs.indices, seqs.lengths, split=split)
    exact = np.rint(prediction.sums) == seqs.sums
    seq_agreement = np.array([agreement[row[:n]].prod() for row, n in zip(seqs.indices, seqs.lengths)])
    for n in STUDY_LENGTHS:
        keep = seqs.lengths == n
        out[str(n)] = {}
        for name, score in (("p_exact", prediction.p_exact), ("p_exact x agreement", prediction.p_exact * seq_agreement)):
            df = pd.DataFrame({"p_exact": score[keep], "exact": exact[keep]})
            out[str(n)][name] = {"exact_at_90": exact_at_coverage(df, 0.9), "aurc": aurc(risk_coverage(df))}
    return out

"""Fit a checkpoint's calibration on val's calibration part and write it into the checkpoint.

The calibration part, val_calib = MNIST train[57500:60000] (core.data.splits.CALIBRATION_SPLIT), is
disjoint from the part that selects epochs (val_select), so the images that chose the model never
fit its temperatures or its interval margins. The maths (temperatures, margins) lives in
core.predict.temperature; this module runs the predictor over val_calib's images and sequences to fit
them, at the end of training or from `python -m scripts.calibrate`.
"""

from __future__ import annotations

import numpy as np

from core.data import load_mnist, split_arrays
from core.data.sequences import evaluation_sequences
from core.data.splits import CALIBRATION_SPLIT
from core.model import has_distribution
from core.model.checkpoint import load_checkpoint, save_checkpoint
from core.predict.predictor import load_predictor
from core.predict.temperature import fit_margin, fit_temperature, nll
from core.seeds import derive_seed

# Sequences for the head's temperature: the training lengths and a longer one, where the head's
# per-step choice has settled into its stationary regime.
HEAD_FIT_LENGTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100)
HEAD_FIT_PER_LENGTH = 300
MARGIN_LENGTHS = (10, 100, 1000)
MARGIN_PER_LENGTH = 400


def fit(predictor, seed: int = 0, split: str = CALIBRATION_SPLIT) -> dict:
    """Fit the CNN's and (for the lstm head) the head's temperature, then (for heads with a sum
    distribution) the interval margins, on the images of `split` (default: val_calib, the only split
    training and scripts.calibrate use). Returns the "calibration" metadata block: the split it was
    fitted on and its image count, and the NLL before and after on that split."""
    raw = predictor.uncalibrated()
    images, labels = split_arrays(load_mnist(), split)
    logits = raw.split_logits(split)  # from the checkpoint's disk cache when it has one (val's rows)
    t_cnn = fit_temperature(logits, labels)
    out = {"fitted_on": split, "method": "temperature", "cnn_temperature": t_cnn, "images": int(len(images)),
           "cnn_val_nll_before": nll(logits, labels), "cnn_val_nll_after": nll(logits, labels, t_cnn),
           "head_temperature": 1.0}
    if predictor.head == "lstm":
        seqs = evaluation_sequences(HEAD_FIT_LENGTHS, HEAD_FIT_PER_LENGTH, seed, split, labels)
        prediction = raw.run_indexed(images, seqs.indices, seqs.lengths, split=split)
        step_logits = np.log(np.concatenate(prediction.step_probs) + 1e-30)  # log-softmax: logits up to a constant
        digits = seqs.digits[seqs.digits >= 0]  # row-major: the same order as the concatenated steps
        t_head = fit_temperature(step_logits, digits)
        out.update(head_temperature=t_head, head_val_nll_before=nll(step_logits, digits),
                   head_val_nll_after=nll(step_logits, digits, t_head), head_sequences=int(len(seqs)))
    if has_distribution(predictor.head):
        calibrated = raw.uncalibrated()
        calibrated.cnn_temperature, calibrated.head_temperature = out["cnn_temperature"], out["head_temperature"]
        seqs = evaluation_sequences(MARGIN_LENGTHS, MARGIN_PER_LENGTH, derive_seed(seed, 1), split, labels)
        prediction = calibrated.run_indexed(images, seqs.indices, seqs.lengths, split=split)
        out["interval_margin"] = {str(n): fit_margin(prediction.interval[seqs.lengths == n], seqs.sums[seqs.lengths == n])
                                  for n in MARGIN_LENGTHS}
    return out


def calibrate_checkpoint(path, out=None) -> dict:
    """Fit the calibration of the checkpoint at `path` on val_calib and write it (to `out`, default in place,
    atomically) with the "calibration" block in its metadata. Returns that block."""
    block = fit(load_predictor(path, device="cpu"))
    state_dict, metadata = load_checkpoint(path)
    save_checkpoint(out or path, state_dict, {**metadata, "calibration": block})
    return block

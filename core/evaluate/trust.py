"""The trust figures the benchmark reports for a checkpoint, all on MNIST test images (calibration is
fitted on val only): calibration before and after, the point-prediction choice, the cost of the sum
distribution, and which calibrator wins on val.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.optimize import minimize

from core.data import load_mnist, split_arrays
from core.data.splits import CALIBRATION_SPLIT, SELECTION_SPLIT
from core.evaluate.reliability import digit_calibration, exact_at_coverage, sum_calibration
from core.evaluate.tables import evaluation_sequences, evaluation_set
from core.predict import sum_distribution as sd
from core.predict.temperature import fit_temperature, nll

TRUST_LENGTHS = (10, 100, 1000)
POINTS = ("head", "mode", "median")


def calibration_figures(predictor, per_length: int, seed: int) -> dict:
    """Digit and sum calibration before and after, on test: the issue's targets in one dict."""
    after = evaluation_set(predictor, TRUST_LENGTHS, per_length, seed)
    before = evaluation_set(predictor.uncalibrated(), TRUST_LENGTHS, per_length, seed)
    short = after[after["length"] == 10]
    return {"digits": digit_calibration(predictor), "sums_before": sum_calibration(before),
            "sums_after": sum_calibration(after),
            "exact_at_90_length_10": exact_at_coverage(short, 0.9) if len(short) else None}


def point_choices(predictor, per_length: int, seed: int, split: str = SELECTION_SPLIT) -> dict:
    """MAE and exact-match by length for each point prediction: the head's own sum, or the mode or the
    median of its sum distribution (same sequences, same distributions). A choice, so it is made on
    val's selection part."""
    images, labels = split_arrays(load_mnist(), split)
    seqs = evaluation_sequences(TRUST_LENGTHS, per_length, seed, split, labels)
    prediction = predictor.run_indexed(images, seqs.indices, seqs.lengths, split=split)
    if not prediction.has_distribution:
        return {}
    head_sums = np.array([r[-1] for r in prediction.running])
    out = {}
    for point in POINTS:
        points = sd.summarize(prediction.step_probs, head_sums, point=point)["point"]
        out[point] = {int(n): {"mae": float(np.abs(points - seqs.sums)[seqs.lengths == n].mean()),
                               "exact": float((np.rint(points) == seqs.sums)[seqs.lengths == n].mean())}
                      for n in TRUST_LENGTHS}
    return out


def distribution_cost(predictor) -> dict:
    """Seconds the sum distribution adds: 20,000 length-10 sequences, and one length-5000 sequence."""
    images, labels = split_arrays(load_mnist(), "test")
    out = {}
    for name, count, length in (("20000x10", 20_000, 10), ("1x5000", 1, 5000)):
        seqs = evaluation_sequences([length], count, 0, "test", labels)
        prediction = predictor.run_indexed(images, seqs.indices, seqs.lengths)
        head_sums = np.array([r[-1] for r in prediction.running])
        start = time.perf_counter()
        sd.summarize(prediction.step_probs, head_sums)
        out[name] = round(time.perf_counter() - start, 3)
    return out


def _class_temperature_nll(logits, labels, fit_logits, fit_labels) -> float:
    """Held-out NLL of per-class temperatures (logits[:, c] / T_c) fitted on (fit_logits, fit_labels)."""
    def loss(log_t):
        return nll(fit_logits / np.exp(log_t), fit_labels)

    result = minimize(loss, np.zeros(10), method="L-BFGS-B", bounds=[(-3, 3)] * 10)
    return nll(logits / np.exp(result.x), labels)


def compare_calibrators(predictor) -> dict:
    """2-fold cross-validated NLL on val's calibration part: one temperature vs one per class (CNN logits)."""
    labels = split_arrays(load_mnist(), CALIBRATION_SPLIT)[1]
    logits = predictor.split_logits(CALIBRATION_SPLIT)  # raw logits, rows of the disk cache's val file
    halves = np.arange(len(labels)) % 2 == 0
    single, per_class = [], []
    for fit_half in (halves, ~halves):
        held = ~fit_half
        t = fit_temperature(logits[fit_half], labels[fit_half])
        single.append(nll(logits[held], labels[held], t))
        per_class.append(_class_temperature_nll(logits[held], labels[held], logits[fit_half], labels[fit_half]))
    return {"uncalibrated": nll(logits, labels), "temperature": float(np.mean(single)),
            "per_class_temperature": float(np.mean(per_class))}

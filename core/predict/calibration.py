"""Temperature scaling, fitted on val (MNIST train[55000:]) and stored in the checkpoint.

Label smoothing leaves the CNN's softmax under-confident (a clear digit reads about 91%), so its
probabilities are divided by a temperature T: softmax(logits / T). One T keeps every argmax, and
therefore every prediction, unchanged; it only makes the confidences honest. The lstm head gets its
own temperature for its per-step digit logits (it reads the CNN's raw logits, as it was trained).

Intervals: the convolved distribution of a long sum is still too narrow, because the rare digits the
CNN misreads with confidence add up along a sequence. So each 95% interval is widened by a margin
fitted on val sequences of lengths 10, 100 and 1000 (split-conformal: the smallest widening that
covers 95% of val sums), interpolated in log-length between them.

The checkpoint's metadata holds {"calibration": {"cnn_temperature", "head_temperature",
"interval_margin", ...}}; a checkpoint without it behaves as T = 1 with no margin.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar

from core.seeds import derive_seed

T_BOUNDS = (0.05, 20.0)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of softmax(logits / T) at the labels."""
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float((log_norm - z[np.arange(len(z)), np.asarray(labels)]).mean())


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises val NLL (a 1-D bounded search over log T)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.int64)
    if len(logits) == 0 or logits.shape[1:] != (10,):
        raise ValueError(f"fit_temperature needs (n, 10) logits with n >= 1, got {logits.shape}")
    result = minimize_scalar(lambda log_t: nll(logits, labels, np.exp(log_t)),
                             bounds=np.log(T_BOUNDS), method="bounded", options={"xatol": 1e-4})
    return float(np.exp(result.x))


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return z / z.sum(axis=-1, keepdims=True)


def margin_for(margins: dict, lengths: np.ndarray) -> np.ndarray:
    """The interval widening for each length: interpolated in log-length between the fitted lengths,
    the shortest one's below them, and growing like sqrt(length) beyond the longest."""
    lengths = np.asarray(lengths, np.float64)
    if not margins:
        return np.zeros(len(lengths), np.int64)
    fitted = np.array(sorted(int(k) for k in margins), np.float64)
    values = np.array([margins[str(int(k))] for k in fitted], np.float64)
    out = np.interp(np.log(lengths), np.log(fitted), values)
    beyond = lengths > fitted[-1]
    out[beyond] = values[-1] * np.sqrt(lengths[beyond] / fitted[-1])
    return np.ceil(out - 1e-9).astype(np.int64)


def fit_margin(intervals: np.ndarray, truth: np.ndarray, coverage: float = 0.95) -> int:
    """The smallest m such that [lo - m, hi + m] holds at least `coverage` of the true sums (with the
    split-conformal (n + 1) correction)."""
    outside = np.maximum(0, np.maximum(intervals[:, 0] - truth, truth - intervals[:, 1]))
    k = min(len(truth), int(np.ceil((len(truth) + 1) * coverage)))  # the k-th smallest distance
    return int(np.sort(outside)[k - 1])


def temperatures(metadata: dict) -> tuple[float, float, dict]:
    """(cnn temperature, head temperature, interval margins) of a checkpoint; 1.0 and none where it was
    never calibrated."""
    calibration = metadata.get("calibration") or {}
    return (float(calibration.get("cnn_temperature", 1.0)), float(calibration.get("head_temperature", 1.0)),
            dict(calibration.get("interval_margin") or {}))


# Val sequences for the head's temperature: the training lengths and a longer one, where the head's
# per-step choice has settled into its stationary regime.
HEAD_FIT_LENGTHS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 100)
HEAD_FIT_PER_LENGTH = 300
MARGIN_LENGTHS = (10, 100, 1000)
MARGIN_PER_LENGTH = 400


def fit(predictor, images: np.ndarray | None = None, labels: np.ndarray | None = None, seed: int = 0) -> dict:
    """Fit the CNN's and (for the lstm head) the head's temperature on val images (default: the whole
    val split). Returns the "calibration" metadata block, with val NLL before and after."""
    from core.data import load_mnist, split_arrays
    from core.evaluate.tables import evaluation_sequences

    raw = predictor.uncalibrated()
    split = None  # given images (training's val tensors, a test's subset): computed here, never cached
    if images is None:  # the whole val split: its raw logits from the checkpoint's disk cache, if it has one
        images, labels = split_arrays(load_mnist(), "val")
        split = "val"
        logits = raw.split_logits(split)
    else:
        logits = raw.cnn_logits(images).numpy()
    t_cnn = fit_temperature(logits, labels)
    out = {"fitted_on": "val", "method": "temperature", "cnn_temperature": t_cnn, "images": int(len(images)),
           "cnn_val_nll_before": nll(logits, labels), "cnn_val_nll_after": nll(logits, labels, t_cnn),
           "head_temperature": 1.0}
    if predictor.head == "lstm":
        seqs = evaluation_sequences(HEAD_FIT_LENGTHS, HEAD_FIT_PER_LENGTH, seed, "val", labels)
        prediction = raw.run_indexed(images, seqs.indices, seqs.lengths, split=split)
        step_logits = np.log(np.concatenate(prediction.step_probs) + 1e-30)  # log-softmax: logits up to a constant
        digits = seqs.digits[seqs.digits >= 0]  # row-major: the same order as the concatenated steps
        t_head = fit_temperature(step_logits, digits)
        out.update(head_temperature=t_head, head_val_nll_before=nll(step_logits, digits),
                   head_val_nll_after=nll(step_logits, digits, t_head), head_sequences=int(len(seqs)))
    if predictor.head in ("lstm", "argmax-sum"):
        calibrated = raw.uncalibrated()
        calibrated.cnn_temperature, calibrated.head_temperature = out["cnn_temperature"], out["head_temperature"]
        seqs = evaluation_sequences(MARGIN_LENGTHS, MARGIN_PER_LENGTH, derive_seed(seed, 1), "val", labels)
        prediction = calibrated.run_indexed(images, seqs.indices, seqs.lengths, split=split)
        out["interval_margin"] = {str(n): fit_margin(prediction.interval[seqs.lengths == n], seqs.sums[seqs.lengths == n])
                                  for n in MARGIN_LENGTHS}
    return out


def calibrate_checkpoint(path, out=None) -> dict:
    """Fit the temperatures of the checkpoint at `path` on val and write it (to `out`, default in place,
    atomically) with the "calibration" block in its metadata. Returns that block."""
    from core.model.checkpoint import load_checkpoint, save_checkpoint
    from core.predict.predictor import load_predictor

    block = fit(load_predictor(path, device="cpu"))
    state_dict, metadata = load_checkpoint(path)
    save_checkpoint(out or path, state_dict, {**metadata, "calibration": block})
    return block

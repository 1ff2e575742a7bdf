"""The public predictor API: the dashboard and outside users call only this.

    from core import load_predictor
    p = load_predictor("checkpoints/default.pt", device="auto")
    p.predict(images)          # float64 (N,) predicted sums
    p.predict_digits(images)   # calibrated per-digit probabilities (N, L, 10), or a list for list input
    p.run(images)              # Prediction: sums, p_exact, interval, digit_probs, running — one pass
    p.sum_distribution(images) # the full distribution of each sum (core.predict.sum_distribution)
    p.run_indexed(split_images, indices, lengths, split="test")  # fast path for core.data.sequences.Sequences
    p.split_logits("test")     # raw CNN logits (n, 10) of a whole split, from the disk cache (cache.py)

`images` is a uint8 array (N, L, 28, 28) or a list of uint8 arrays (L_i, 28, 28), MNIST-style
(white digit on black, 0..255). Per-image work happens once per call: identical images are
deduplicated by content before the CNN, which runs in bounded chunks, so L up to 5000 (or many
sequences sharing a few thousand images) costs one CNN pass over the unique images.

A predictor loaded from a file knows its checkpoint's content hash (checkpoint_hash) and keeps the
CNN's raw logits of whole splits ("val", "test") in a disk cache (core.predict.cache), so each split
goes through its CNN once per checkpoint, ever; a predictor built in memory has no cache.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass

import numpy as np
import torch

from core.data.splits import SPLITS
from core.model import DigitSumModel, resolve_device
from core.model.checkpoint import load_model
from core.paths import DEFAULT_CHECKPOINT
from core.predict import cache, sum_distribution
from core.predict.temperature import margin_for, softmax, temperatures
from core.predict.threads import one_thread, torch_section

CNN_CHUNK = 256  # images per CNN forward: bounds memory whatever N*L is (and is fastest on CPU)
HEAD_POSITIONS = 200_000  # sequence positions per head forward (padded N*L): bounds LSTM memory
_HASH_CHUNK = 65_536
_rng = np.random.default_rng(0x5EED)
_HASH_MULT = _rng.integers(1, 2**63, size=98, dtype=np.uint64) * np.uint64(2) + np.uint64(1)  # odd


# Which number is the prediction, per head: the head's own sum, or the mode or median of its sum
# distribution. Chosen on val sequences by the benchmark ("Point prediction" in reports/benchmark.md):
# exact-match decides when the difference is beyond its standard error; otherwise the head's own sum
# wins, because it does not move with the calibration.
POINT_PREDICTION = {"lstm": "head", "argmax-sum": "head"}


@dataclass
class Prediction:
    """One pass over N sequences. p_exact and interval come from the head's distribution over the sum
    (sum_distribution.py); the regression heads (lstm-final, deepsets) have none: has_distribution is
    False, p_exact is NaN and interval is -1."""

    sums: np.ndarray  # float64 (N,): the point prediction
    p_exact: np.ndarray  # float64 (N,): the model's probability that round(sums) is the true sum
    interval: np.ndarray  # int64 (N, 2): central 95% credible interval of the sum, inclusive
    digit_probs: list[np.ndarray]  # per sequence (L_i, 10) float32: calibrated CNN readings
    running: list[np.ndarray]  # per sequence (L_i,) float64: the head's predicted sum after each step
    step_probs: list[np.ndarray] | None  # per sequence (L_i, 10): the distribution of the digit each step adds
    has_distribution: bool


def _as_flat(images) -> tuple[np.ndarray, np.ndarray]:
    """Validate the input -> (flat uint8 (M, 28, 28) images in sequence order, lengths int64 (N,))."""
    expected = "a uint8 array (N, L, 28, 28) or a non-empty list of uint8 arrays (L_i, 28, 28)"
    if isinstance(images, np.ndarray):
        if images.dtype != np.uint8:
            raise ValueError(f"images must be {expected}; got dtype {images.dtype}")
        if images.ndim != 4 or images.shape[2:] != (28, 28):
            raise ValueError(f"images must be {expected}; got an array of shape {images.shape}")
        n, length = images.shape[:2]
        if n == 0 or length == 0:
            raise ValueError(f"images must be {expected} with N >= 1 and L >= 1; got shape {images.shape}")
        flat = np.ascontiguousarray(images).reshape(n * length, 28, 28)
        return flat, np.full(n, length, dtype=np.int64)
    if isinstance(images, (list, tuple)):
        if len(images) == 0:
            raise ValueError(f"images must be {expected}; got an empty list")
        for i, seq in enumerate(images):
            if not isinstance(seq, np.ndarray) or seq.dtype != np.uint8:
                what = f"dtype {seq.dtype}" if isinstance(seq, np.ndarray) else type(seq).__name__
                raise ValueError(f"images[{i}] must be a uint8 array (L, 28, 28); got {what}")
            if seq.ndim != 3 or seq.shape[1:] != (28, 28) or seq.shape[0] == 0:
                raise ValueError(f"images[{i}] must be a uint8 array (L, 28, 28) with L >= 1; got shape {seq.shape}")
        return np.concatenate(images), np.array([len(s) for s in images], dtype=np.int64)
    raise ValueError(f"images must be {expected}; got {type(images).__name__}")


def dedup_images(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(representatives, inverse): flat[representatives][inverse] == flat, compared byte for byte.

    Each image's 784 bytes are hashed to 64 bits (a multiply-add over 98 uint64 words, then mixed),
    np.unique groups equal hashes, and every image is verified against its group's representative;
    on a (vanishingly rare) collision we fall back to an exact row-wise np.unique.
    """
    words = flat.reshape(len(flat), -1).view(np.uint64)
    hashes = np.empty(len(flat), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for i in range(0, len(flat), _HASH_CHUNK):
            h = (words[i : i + _HASH_CHUNK] * _HASH_MULT).sum(axis=1, dtype=np.uint64)
            h ^= h >> np.uint64(29)
            hashes[i : i + _HASH_CHUNK] = h * np.uint64(0xBF58476D1CE4E5B9)
    _, reps, inverse = np.unique(hashes, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    for i in range(0, len(flat), _HASH_CHUNK):
        if not np.array_equal(flat[i : i + _HASH_CHUNK], flat[reps[inverse[i : i + _HASH_CHUNK]]]):
            _, reps, inverse = np.unique(flat.reshape(len(flat), -1), axis=0, return_index=True, return_inverse=True)
            return reps, inverse.reshape(-1)
    return reps, inverse


class Predictor:
    """A loaded checkpoint, ready to predict. The model is in eval mode and never changed after load."""

    def __init__(self, model: DigitSumModel, metadata: dict, device: torch.device, checkpoint_hash: str | None = None):
        self._model = copy.deepcopy(model).to(device).eval()  # a copy: the caller's model stays trainable
        self._model.cnn.fuse_for_inference()  # BatchNorm folded into the convs: faster, same outputs
        for p in self._model.parameters():
            p.requires_grad_(False)
        self._metadata = metadata
        self.device = device
        self.cnn_temperature, self.head_temperature, self.interval_margins = temperatures(metadata)
        self.checkpoint_hash = checkpoint_hash  # sha256 of the checkpoint file; None: built in memory, no cache
        self._split_logits: dict[str, np.ndarray] = {}  # split -> raw logits, shared with uncalibrated() twins

    @property
    def metadata(self) -> dict:
        return copy.deepcopy(self._metadata)  # a copy: callers cannot alter the predictor's record

    @property
    def model(self) -> DigitSumModel:
        return self._model  # read it, never train or change it (e.g. the digit map's CNN features)

    @property
    def head(self) -> str:
        return self._metadata["head"]

    def uncalibrated(self) -> Predictor:
        """The same model with T = 1 and no interval widening (shares the weights): the "before" figures."""
        raw = copy.copy(self)
        raw.cnn_temperature, raw.head_temperature, raw.interval_margins = 1.0, 1.0, {}
        return raw

    # -- the two stages -------------------------------------------------------------------------
    def _batches(self, images: np.ndarray):
        """(start, float (b, 1, 28, 28) in [0, 1] on the device) for uint8 images (U, 28, 28), CHUNK at a time."""
        for i in range(0, len(images), CNN_CHUNK):
            x = torch.from_numpy(np.array(images[i : i + CNN_CHUNK])).to(self.device)  # a copy: input may be read-only
            yield i, x.unsqueeze(1).float().div_(255.0)

    @torch.inference_mode()
    def cnn_logits(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (U, 28, 28) -> float32 (U, 10) digit logits on the CPU, CHUNK images at a time."""
        out = torch.empty(len(images), 10)
        with torch_section(self.device):  # never while another session's head has torch on one thread
            for i, x in self._batches(images):
                out[i : i + len(x)] = self._model.cnn(x).float().cpu()
        return out

    @torch.inference_mode()
    def member_logits(self, images: np.ndarray) -> torch.Tensor:
        """uint8 (U, 28, 28) -> float32 (M, U, 10) each CNN member's raw logits on the CPU (M = 1 for a single
        CNN); the model's cnn.combine() turns them into cnn_logits' output."""
        out = torch.empty(len(self._model.cnn.members), len(images), 10)
        with torch_section(self.device):
            for i, x in self._batches(images):
                out[:, i : i + len(x)] = self._model.cnn.member_logits(x).float().cpu()
        return out

    @torch.inference_mode()
    def _head(self, pos_logits: torch.Tensor, lengths: np.ndarray) -> tuple[list[np.ndarray], np.ndarray | None]:
        """Per-position logits (M, 10) in sequence order -> (running sums per sequence, per-step digit
        logits (M, 10) in sequence order or None), in length-sorted batches."""
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        order = np.argsort(lengths, kind="stable")
        running: list[np.ndarray | None] = [None] * len(lengths)
        steps_out = None
        i = 0
        while i < len(order):
            j = i + 1  # grow the batch while the padded size stays in budget (lengths ascend)
            while j < len(order) and (j + 1 - i) * lengths[order[j]] <= HEAD_POSITIONS:
                j += 1
            batch = order[i:j]
            width = int(lengths[batch[-1]])
            steps = np.arange(width)
            gather = np.where(steps < lengths[batch, None], starts[batch, None] + steps, 0)  # padding: any row
            padded = pos_logits[torch.from_numpy(gather)]
            lens = torch.from_numpy(lengths[batch])
            with one_thread(self.device):
                out, step_logits = self._model.head_outputs(padded.to(self.device), lens.to(self.device))
            out = out.cpu().numpy()
            if step_logits is not None:
                steps_out = np.empty((len(pos_logits), 10), np.float32) if steps_out is None else steps_out
                step_logits = step_logits.float().cpu().numpy()
            for row, s in enumerate(batch):
                running[s] = out[row, : lengths[s]].astype(np.float64)
                if step_logits is not None:
                    steps_out[starts[s] : starts[s] + lengths[s]] = step_logits[row, : lengths[s]]
            i = j
        return running, steps_out

    def _finish(self, pos_logits: torch.Tensor, lengths: np.ndarray) -> Prediction:
        running, step_logits = self._head(pos_logits, lengths)
        splits = np.cumsum(lengths)[:-1]
        probs = softmax(pos_logits.numpy(), self.cnn_temperature).astype(np.float32)
        head_sums = np.array([r[-1] for r in running], dtype=np.float64)
        n = len(lengths)
        if step_logits is None:  # a regression head: no distribution over the sum
            return Prediction(head_sums, np.full(n, np.nan), np.full((n, 2), -1, np.int64), np.split(probs, splits),
                              running, None, False)
        # argmax-sum adds the CNN's reading of each digit; lstm its own per-step choice.
        temperature = self.head_temperature if self.head == "lstm" else self.cnn_temperature
        step_probs = np.split(softmax(step_logits, temperature), splits)
        summary = sum_distribution.summarize(step_probs, head_sums, point=POINT_PREDICTION.get(self.head, "head"))
        margin = margin_for(self.interval_margins, lengths)  # val-fitted widening (calibration.py)
        summary["interval"] = np.stack([np.maximum(summary["interval"][:, 0] - margin, 0),
                                        np.minimum(summary["interval"][:, 1] + margin, 9 * lengths)], axis=1)
        return Prediction(summary["point"], summary["p_exact"], summary["interval"], np.split(probs, splits), running,
                          step_probs, True)

    # -- whole splits, through the disk cache ---------------------------------------------------
    def split_logits(self, split: str) -> np.ndarray:
        """The CNN's RAW logits, float32 (n, 10), of every image of `split` (core.data.split_arrays order).
        Calibrated probabilities are softmax(logits / self.cnn_temperature). From the disk cache (filled on
        a miss; read-only, shared) when the predictor came from a file, else computed."""
        if split not in self._split_logits:
            if self.checkpoint_hash is None or split not in SPLITS:  # "mine" changes with every saved digit
                return self.cnn_logits(cache.split_images(split)).numpy()
            self._split_logits[split] = cache.cached_logits(self.checkpoint_hash, split,
                                                            lambda images: self.cnn_logits(images).numpy())
        return self._split_logits[split]

    def _indexed_logits(self, split_images: np.ndarray, unique: np.ndarray, split: str | None) -> torch.Tensor:
        """Logits of split_images[unique]: from the split's cached logits when split_images is exactly that
        split's images (a big enough share of it, or already cached), else through the CNN."""
        if split is not None and self.checkpoint_hash is not None:
            reference = cache.split_images(split)
            same = split_images.shape == reference.shape and (
                split_images.__array_interface__ == reference.__array_interface__
                or np.array_equal(split_images, reference))
            if same and split not in self._split_logits and 4 * len(unique) < len(reference):
                found = cache.load_logits(self.checkpoint_hash, split, len(reference))  # a few images: no CNN
                if found is not None:  # pass over the whole split unless it is cached already
                    self._split_logits[split] = found
            if same and (split in self._split_logits or 4 * len(unique) >= len(reference)):
                return torch.from_numpy(self.split_logits(split)[unique])
        return self.cnn_logits(split_images[unique])

    # -- public API -----------------------------------------------------------------------------
    def run(self, images) -> Prediction:
        """Sums, per-digit probabilities and running sums in one pass (CNN once per unique image)."""
        flat, lengths = _as_flat(images)
        reps, inverse = dedup_images(flat)
        unique_logits = self.cnn_logits(flat[reps])
        return self._finish(unique_logits[torch.from_numpy(inverse)], lengths)

    def predict(self, images) -> np.ndarray:
        """float64 (N,) predicted sums."""
        return self.run(images).sums

    def predict_digits(self, images):
        """Calibrated per-digit class probabilities: float32 (N, L, 10) for array input, a list of (L_i, 10)
        for a list."""
        flat, lengths = _as_flat(images)
        reps, inverse = dedup_images(flat)
        probs = softmax(self.cnn_logits(flat[reps]).numpy(), self.cnn_temperature).astype(np.float32)[inverse]
        if isinstance(images, np.ndarray):
            return probs.reshape(len(lengths), int(lengths[0]), 10)
        return np.split(probs, np.cumsum(lengths)[:-1])

    def sum_distribution(self, images=None, *, prediction: Prediction | None = None) -> list:
        """The full distribution P(sum = s) of each sequence (tails below 1e-12 dropped), of `images` or of
        a Prediction already made (e.g. by run_indexed from a split's cached logits)."""
        prediction = self.run(images) if prediction is None else prediction
        if not prediction.has_distribution:
            raise ValueError(f"the {self.head} head regresses a number: it has no distribution over the sum "
                             "(the lstm and argmax-sum heads have one)")
        return sum_distribution.distributions(prediction.step_probs)

    def run_indexed(self, split_images: np.ndarray, indices: np.ndarray, lengths: np.ndarray,
                    split: str | None = None) -> Prediction:
        """Like run() for sequences given as indices into one image array (e.g. core.data.sequences.Sequences):
        indices int (N, Lmax) padded with -1, lengths (N,). The CNN sees each used index once; with
        `split` ("val", "test") and split_images that split's images, the split's cached logits serve."""
        if not isinstance(split_images, np.ndarray) or split_images.dtype != np.uint8 or split_images.shape[1:] != (28, 28):
            raise ValueError("split_images must be a uint8 array (n, 28, 28)")
        indices, lengths = np.asarray(indices), np.asarray(lengths)
        if indices.ndim != 2 or not np.issubdtype(indices.dtype, np.integer) or indices.shape[0] == 0:
            raise ValueError(f"indices must be a non-empty integer array (N, Lmax); got {indices.dtype} {indices.shape}")
        if lengths.shape != (indices.shape[0],) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"lengths must be an integer array ({indices.shape[0]},); got {lengths.dtype} {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > indices.shape[1]:
            raise ValueError(f"lengths must lie in 1..{indices.shape[1]} (the width of indices)")
        lengths = lengths.astype(np.int64)
        used = indices[np.arange(indices.shape[1]) < lengths[:, None]]  # row-major: sequence order
        if used.min() < 0 or used.max() >= len(split_images):
            raise ValueError(f"indices must lie in 0..{len(split_images) - 1} within each sequence's length")
        unique, inverse = np.unique(used, return_inverse=True)
        unique_logits = self._indexed_logits(split_images, unique, split)
        return self._finish(unique_logits[torch.from_numpy(inverse.reshape(-1))], lengths)


def load_predictor(path: str | os.PathLike = DEFAULT_CHECKPOINT, device: str = "auto") -> Predictor:
    """Load a checkpoint (CheckpointError if unusable) onto `device` ("auto": cuda, then mps, then cpu)."""
    dev = resolve_device(device)
    before = cache.file_sha256(path) if os.path.isfile(path) else None
    model, metadata = load_model(path, map_location="cpu")
    after = cache.file_sha256(path)
    return Predictor(model, metadata, dev, checkpoint_hash=after if before == after else None)  # replaced: no cache

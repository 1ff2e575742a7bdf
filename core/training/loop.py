"""The training loop: train() and the Trainer that runs the phases of phases.py in order.

Model selection (each phase's epoch) uses val's selection part only, val_select = MNIST
train[55000:57500]; the calibration fitted at the end uses its calibration part only, val_calib =
train[57500:60000] (core.data.splits), so no image both chooses the model and calibrates it. The test
split is never touched here. A run may start from a whole model (init_from) or its CNN (init_cnn), and
may mix the user's collection (its train part, never its held-out part) into the CNN's batches
(collection_weight); every checkpoint records that lineage. Reproducibility and resume: every step's randomness is a pure function of
(seed, phase, epoch, step, rank), so a run resumed from resume.pt, even mid-epoch after SIGTERM,
replays what an uninterrupted run would do.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from core.data.splits import SELECTION_SPLIT
from core.io import atomic_write
from core.model import DigitSumModel, final_sums
from core.model.checkpoint import CheckpointError, load_checkpoint, load_model, save_checkpoint
from core.paths import code_version
from core.seeds import derive_seed
from core.training import distributed as dd
from core.training.phases import SETUPS, STEP, VIEW, augment, one_cycle, select_epoch, to_float
from core.training.records import append_record, make_record

PHASES = tuple(SETUPS)  # cnn, head, joint
RESUME_FILE = "resume.pt"
MIN_COLLECTION_DIGITS = 20  # fewer of the user's own digits than this cannot teach a model their hand


class TrainingInterrupted(RuntimeError):
    """A stop was requested (SIGTERM); resume.pt (if there is a run dir) holds the state. The CLI exits 143."""


def train(config, *, out_path, run_dir=None, progress=None, resume: bool = False, show_progress: bool = False,
          stop: threading.Event | None = None, calibrate: bool = True) -> dict:  # fmt: skip
    """Train per `config`, write the best checkpoint to out_path (rank 0), return the final val metrics.

    run_dir: where metrics.jsonl and resume.pt go (rank 0 only); needed for resume and for a stop to
    leave a resumable state. progress(record) is called with each metrics record (records.py). `stop`:
    setting it stops like SIGTERM does. calibrate=False leaves the calibration out (an ensemble member's
    is fitted when the members are assembled, core.training.ensemble). Raises TrainingInterrupted when stopped (after writing
    resume.pt), ValueError on a bad config, missing resume state or too small a collection (with
    collection_weight), CheckpointError on a bad init_cnn or init_from.
    """
    config.validate()
    trainer = Trainer(config, out_path=Path(out_path), run_dir=Path(run_dir) if run_dir else None,
                      progress=progress, show_progress=show_progress, stop=stop, calibrate=calibrate)  # fmt: skip
    in_main = threading.current_thread() is threading.main_thread()  # signals can only be set there
    previous = signal.signal(signal.SIGTERM, trainer.request_stop) if in_main else None
    try:
        if resume:
            trainer.load_resume()
        return trainer.run()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        dd.close_distributed(trainer.owns_group)


class Trainer:
    def __init__(self, cfg, *, out_path: Path, run_dir: Path | None, progress=None, show_progress=False, stop=None,
                 calibrate=True):
        from core.data import generate_sequences, load_mnist, mnist_checksum, split_arrays

        self.cfg, self.out_path, self.run_dir = cfg, out_path, run_dir
        self.progress_cb, self.show_progress, self.stop_event, self.stop = progress, show_progress, stop, False
        self.calibrate = calibrate
        # The user's digits first: too few of them is refused before anything starts.
        self.x_mine, self.y_mine, self.decisions_applied = collection_digits(cfg)
        self.world, self.rank, self.device, self.owns_group = dd.init_distributed(cfg.device)
        self.amp = self.device.type == "cuda"  # bf16 autocast on CUDA only
        torch.manual_seed(cfg.seed)
        if cfg.init_from:  # the whole model, as saved (make_config took its shape into cfg)
            self.model = load_model(cfg.init_from)[0].train().to(self.device)
        else:
            self.model = DigitSumModel(cfg.model_config()).to(self.device)
            if cfg.init_cnn:
                self._load_cnn(cfg.init_cnn)
        self.parent = _parent(cfg.init_from or cfg.init_cnn)
        # Data: seeded subsets of train and of val's selection part (x_val: every val_* metric and every
        # epoch choice), and fixed sequences of that part for the val MAE. Calibration reads val_calib.
        mnist = load_mnist()
        self.data_checksum = mnist_checksum(mnist)
        rng = np.random.default_rng(cfg.seed)
        x, y = split_arrays(mnist, "train")
        keep = np.sort(rng.permutation(len(x))[: cfg.train_subset]) if cfg.train_subset else slice(None)
        self.x_train, self.y_train = np.ascontiguousarray(x[keep]), torch.from_numpy(y[keep].astype(np.int64))
        x, y = split_arrays(mnist, SELECTION_SPLIT)
        keep = np.sort(rng.permutation(len(x))[: cfg.val_subset]) if cfg.val_subset else slice(None)
        self.x_val, self.y_val = np.ascontiguousarray(x[keep]), torch.from_numpy(y[keep].astype(np.int64))
        self.val_seqs = generate_sequences(SELECTION_SPLIT, cfg.val_sequences, (cfg.min_len, cfg.max_len),
                                           seed=derive_seed(cfg.seed, 1), labels=self.y_val.numpy())
        # State that resume.pt carries: the next step to run, each phase's best epoch, the optimizer.
        self.pos = {"phase": 0, "epoch": 0, "step": 0}
        self.best: dict[str, dict] = {}  # phase (or "phase:last") -> {"score", "state", "metrics"}
        self.opt_state, self.elapsed_before, self.global_step = None, 0.0, 0
        self.train_logits = self.train_labels = self.val_logits = None
        # A CNN step's batch: MNIST images plus collection_weight of the batch from the collection; an epoch
        # is one pass over the MNIST images.
        n_mine = min(round(cfg.collection_weight * cfg.batch_size), cfg.batch_size - 1) if len(self.x_mine) else 0
        self.cnn_batch = (cfg.batch_size - n_mine, n_mine)
        # Progress: the relative cost of one step per phase (on CPU a head position costs ~1/20 of a CNN image).
        avg_len = (cfg.min_len + cfg.max_len) / 2
        self.units = {"cnn": (cfg.epochs_cnn, max(1, len(self.x_train) // self.cnn_batch[0]), cfg.batch_size * cfg.members),
                      "head": (cfg.epochs_head if self.head_trainable() else 0, cfg.head_steps,
                               cfg.head_batch * avg_len / 20),
                      "joint": (cfg.epochs_joint, cfg.joint_steps, cfg.joint_batch * avg_len * 1.2)}  # fmt: skip
        self.total_units = sum(e * s * w for e, s, w in self.units.values()) or 1.0

    def _load_cnn(self, path: str) -> None:
        state, _ = load_checkpoint(path)
        cnn_state = {k[len("cnn."):]: v for k, v in state.items() if k.startswith("cnn.")}
        try:
            self.model.cnn.load_state_dict(cnn_state)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {path}: its CNN does not fit this config (widths/members)") from e

    def request_stop(self, signum=None, frame=None):
        self.stop = True

    def head_trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.head.parameters())

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> dict:
        self.t0, self.progress_at_start = time.time(), self._progress(*self.pos.values())
        for index, phase in enumerate(PHASES):
            if index >= self.pos["phase"]:
                self._run_phase(index, phase)
                self.pos = {"phase": index + 1, "epoch": 0, "step": 0}
        metrics = self._final_metrics()
        if self.rank == 0:
            metadata = self._metadata(metrics)
            if self.calibrate:
                metadata["calibration"] = self._calibration(metadata)
            save_checkpoint(self.out_path, self.model.state_dict(), metadata)
            self._record("done", 0, 0, None, metrics, checkpoint=str(self.out_path))
        dd.barrier(self.world)
        return metrics

    def _run_phase(self, index: int, name: str) -> None:
        epochs, steps, _ = self.units[name]
        if epochs == 0:
            return
        phase = SETUPS[name](self)
        if self.pos["phase"] == index and self.opt_state is not None:
            phase.opt.load_state_dict(self.opt_state)  # resuming inside this phase
        self.opt_state = None
        if name != "cnn" and name not in self.best:  # the starting point is a candidate too (see the lstm head)
            metrics, score = phase.evaluate()
            self.best[name] = {"score": score, "state": _copy_state(phase.holder), "metrics": metrics}
        log_every = max(1, steps // 20)
        start_epoch, start_step = self.pos["epoch"], self.pos["step"]
        for epoch in range(start_epoch, epochs):
            first = start_step if epoch == start_epoch else 0
            bar = _bar(steps, first, f"{name} {epoch + 1}/{epochs}", self.show_progress and self.rank == 0)
            phase.trainable.train()
            for step in range(first, steps):
                if dd.any_rank(self.stop or bool(self.stop_event and self.stop_event.is_set()), self.world, self.device):
                    self._save_resume(index, epoch, step, phase.opt)
                    raise TrainingInterrupted(f"stopped in phase {name}, epoch {epoch + 1}, step {step}")
                for group in phase.opt.param_groups:
                    group["lr"] = one_cycle((epoch * steps + step) / (epochs * steps), group["base_lr"])
                seed = derive_seed(self.cfg.seed, STEP, index, epoch, step, self.rank)
                torch.manual_seed(seed)  # dropout et al.: a pure function of the position
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss = phase.step(phase.trainable, epoch, step, torch.Generator().manual_seed(seed))
                phase.opt.zero_grad(set_to_none=True)
                loss.backward()
                phase.opt.step()
                self.global_step += 1
                bar.update(1)
                if (step + 1) % log_every == 0 and step + 1 < steps:  # the epoch's end logs below
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                    self._record(name, epoch, epochs, loss.item(), pos=(index, epoch, step + 1))
            bar.close()
            metrics, score = phase.evaluate()
            state = {"score": score, "state": _copy_state(phase.holder), "metrics": metrics}
            if name not in self.best or score >= self.best[name]["score"]:  # ties: prefer the later epoch
                self.best[name] = state
            self.best[f"{name}:last"] = state
            self._record(name, epoch, epochs, loss.item(), metrics, pos=(index, epoch + 1, 0))
            self._save_resume(index, epoch + 1, 0, phase.opt)
        chosen = select_epoch(name, self.best[name], self.best.get(f"{name}:last"), len(self.x_val))
        phase.holder.load_state_dict(chosen["state"])
        if name != "head":  # the cached logits came from the last epoch's CNN, not the selected one
            self.train_logits = self.val_logits = None

    # -- evaluation (the phases call these) ----------------------------------------------------------
    @torch.no_grad()
    def logits(self, images: np.ndarray, view: int = 0) -> torch.Tensor:
        """CNN logits (n, 10) float32 on the CPU for every image; ranks split the work and share it.
        view > 0: of a seeded augmented view of every image instead."""
        self.model.cnn.eval()
        per = math.ceil(len(images) / self.world)
        lo, hi = self.rank * per, min(len(images), (self.rank + 1) * per)
        out = torch.zeros(per, 10, device=self.device)
        for i in range(lo, hi, 256):
            x = to_float(images[i : min(hi, i + 256)], self.device)
            if view:
                x = augment(x, torch.Generator().manual_seed(derive_seed(self.cfg.seed, VIEW, view, i)), self.cfg)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out[i - lo : i - lo + len(x)] = self.model.cnn(x).float()
        self.model.cnn.train()
        return dd.gather_rows(out, self.world)[: len(images)].cpu()

    def cache_logits(self) -> None:
        if self.train_logits is None:  # clean images plus augmented views: see TrainConfig.head_views
            views = range(self.cfg.head_views + 1)
            self.train_logits = torch.cat([self.logits(self.x_train, view) for view in views])
            self.train_labels = self.y_train.repeat(len(views))
        if self.val_logits is None:
            self.val_logits = self.logits(self.x_val)

    @torch.no_grad()
    def val_metrics(self) -> dict:
        seqs = self.val_seqs
        idx, lengths = torch.from_numpy(seqs.indices).clamp(min=0), torch.from_numpy(seqs.lengths)
        running = self.model.head_forward(self.val_logits[idx].to(self.device), lengths.to(self.device))
        pred = final_sums(running, lengths).cpu().numpy()
        err = pred - seqs.sums
        return {"val_mae": float(np.abs(err).mean()), "val_rmse": float(np.sqrt((err**2).mean())),
                "val_exact": float((np.rint(pred) == seqs.sums).mean()),
                "val_digit_acc": float((self.val_logits.argmax(1) == self.y_val).float().mean())}  # fmt: skip

    def _final_metrics(self) -> dict:
        if self.val_logits is None:
            self.val_logits = self.logits(self.x_val)
        metrics = self.val_metrics()
        metrics["val_mae_constant"] = float(np.abs(self.val_seqs.sums - np.median(self.val_seqs.sums)).mean())
        metrics["train_seconds"] = round(self.elapsed_before + time.time() - self.t0, 1)
        metrics["world_size"] = self.world
        return metrics

    def _calibration(self, metadata: dict) -> dict:
        """Temperatures and interval margins fitted on val_calib, the whole calibration part of val and
        never the images that selected the epochs (core.training.fit_calibration), on a CPU copy."""
        from core.predict.predictor import Predictor
        from core.training.fit_calibration import fit

        predictor = Predictor(copy.deepcopy(self.model).cpu(), metadata, torch.device("cpu"))
        return fit(predictor, seed=self.cfg.seed)

    def _metadata(self, metrics: dict) -> dict:
        cfg = self.cfg
        return {"model_config": self.model.config.to_dict(), "head": cfg.head,
                "train_lengths": [cfg.min_len, cfg.max_len], "data_checksum": self.data_checksum,
                "metrics": metrics, "selected_on": {"split": SELECTION_SPLIT, "images": len(self.x_val)},
                "preset": cfg.preset, "train_config": asdict(cfg),
                "code_version": code_version(), "torch_version": torch.__version__,
                "device": self.device.type, "parameters": sum(p.numel() for p in self.model.parameters()),
                "lineage": {"parent": self.parent,
                            "data": {"mnist_train": len(self.x_train), "collection_digits": len(self.x_mine),
                                     "label_decisions": self.decisions_applied}}}  # fmt: skip

    # -- progress, metrics records, resume ------------------------------------------------------------
    def _progress(self, phase_index: int, epoch: int, step: int) -> float:
        done = 0.0
        for i, (epochs, steps, weight) in enumerate(self.units.values()):
            if i < phase_index:
                done += epochs * steps * weight
            elif i == phase_index:
                done += min(epochs * steps, epoch * steps + step) * weight
        return min(1.0, done / self.total_units)

    def _record(self, phase, epoch, epochs, loss, metrics=None, pos=None, **extra) -> None:
        progress = 1.0 if phase == "done" else self._progress(*pos)
        gained = progress - self.progress_at_start
        eta = (time.time() - self.t0) / gained * (1 - progress) if gained > 0 else None
        metrics = metrics or {}
        record = make_record(extra, time=time.strftime("%Y-%m-%dT%H:%M:%S"), step=self.global_step, phase=phase,
                             epoch=epoch + 1 if epochs else 0, epochs=epochs, loss=loss,
                             val_mae=metrics.get("val_mae"), val_digit_acc=metrics.get("val_digit_acc"),
                             elapsed=round(self.elapsed_before + time.time() - self.t0, 2),
                             eta=None if eta is None else round(eta, 1), progress=round(progress, 4))  # fmt: skip
        if self.rank != 0:
            return
        if self.run_dir is not None:
            append_record(self.run_dir, record)
        if self.progress_cb is not None:
            self.progress_cb(record)

    def _save_resume(self, phase_index: int, epoch: int, step: int, opt) -> None:
        if self.rank != 0 or self.run_dir is None:
            return
        state = {"config": asdict(self.cfg), "pos": {"phase": phase_index, "epoch": epoch, "step": step},
                 "model": self.model.state_dict(), "optimizer": opt.state_dict(), "best": self.best,
                 "global_step": self.global_step, "elapsed": self.elapsed_before + time.time() - self.t0}  # fmt: skip
        atomic_write(self.run_dir / RESUME_FILE, lambda tmp: torch.save(state, tmp))

    def load_resume(self) -> None:
        if self.run_dir is None:
            raise ValueError(f"resume needs a run dir (--run-dir) holding {RESUME_FILE}")
        path = self.run_dir / RESUME_FILE
        if not path.exists():
            raise ValueError(f"cannot resume: {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        diff = sorted(k for k, v in state["config"].items() if asdict(self.cfg).get(k) != v and k != "device")
        if diff:
            raise ValueError(f"cannot resume: {path} was written with a different config (fields {diff})")
        self.model.load_state_dict(state["model"])
        self.pos, self.best, self.opt_state = state["pos"], state["best"], state["optimizer"]
        self.global_step, self.elapsed_before = state["global_step"], state["elapsed"]


def collection_digits(cfg) -> tuple[np.ndarray, torch.Tensor, int]:
    """(images, labels, standing label decisions covering them) of the collection's train part, which
    the CNN phase mixes into its batches when collection_weight > 0; empty when it does not."""
    from core.collection import training_digits
    from core.paths import collection_dir
    from core.training.config import flag

    if not (cfg.collection_weight and cfg.epochs_cnn):
        return np.zeros((0, 28, 28), np.uint8), torch.zeros(0, dtype=torch.int64), 0
    images, labels, decisions = training_digits()
    if len(images) < MIN_COLLECTION_DIGITS:
        raise ValueError(f"{flag('collection_weight')} {cfg.collection_weight} (preset {cfg.preset}) needs at least "
                         f"{MIN_COLLECTION_DIGITS} digits in the collection's train part ({collection_dir()}), which "
                         f"holds {len(images)}; save more of your digits first (the dashboard's Write your own)")
    return images, torch.from_numpy(labels.astype(np.int64)), decisions


def _parent(path: str) -> dict | None:
    """The lineage's parent: the checkpoint a run starts from, with its file's sha256 (None: from scratch)."""
    from core.predict.cache import file_sha256

    return {"path": str(Path(path).resolve()), "sha256": file_sha256(path)} if path else None


def _copy_state(module: torch.nn.Module) -> dict:
    return {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}


def _bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=True)

"""The training loop behind core.train.train(): three phases, metrics records, resume, DDP.

Phase 1 trains the CNN on digit labels (augmented in torch), phase 2 the sequence head on sum labels
over CNN logits cached once per image, phase 3 (optional) both jointly on images. Model selection on
the val split only; the test split is never touched here.

Reproducibility and resume: every step's randomness (batch order, augmentation, dropout, sampled
sequences) is a pure function of (seed, phase, epoch, step, rank), so a run resumed from resume.pt —
even mid-epoch, after SIGTERM — replays what an uninterrupted run would have done.
Scale-out: under torchrun (WORLD_SIZE > 1) each phase wraps its trainable module in
DistributedDataParallel (gloo on CPU, nccl on CUDA), shards the data by rank, and only rank 0 writes.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
import torch.nn.functional as F

from core import __version__
from core.io import atomic_write
from core.model import DigitSumModel, final_sums, resolve_device
from core.model.checkpoint import save_checkpoint
from core.paths import REPO_ROOT

PHASES = ("cnn", "head", "joint")


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived; resume.pt (if there is a run dir) holds the state. The CLI exits 143."""


# ---------------------------------------------------------------------------------------------------
# Small pure helpers
# ---------------------------------------------------------------------------------------------------
def step_seed(*parts: int) -> int:
    """A 63-bit seed from integers (SplitMix64-style mixing), so nearby steps get unrelated streams."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = ((h ^ (p & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


def augment(x: torch.Tensor, gen: torch.Generator, cfg) -> torch.Tensor:
    """Random rotation, scale and shift of a (B, 1, 28, 28) batch, in torch (affine_grid + grid_sample)."""
    b = x.shape[0]

    def u(*shape):  # uniform in [-1, 1], drawn on the CPU generator for device-independent results
        return (torch.rand(*shape, generator=gen) * 2 - 1).to(x.device)

    angle = u(b) * math.radians(cfg.aug_rotate)
    scale = 1 + u(b) * cfg.aug_scale
    shift = u(b, 2) * (2 * cfg.aug_shift / 28)  # grid coordinates span 2 over 28 pixels
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def one_cycle(t: float, peak: float) -> float:
    """LR at fraction t of a phase: linear warm-up over 20%, then cosine to ~0."""
    if t < 0.2:
        return peak * (0.04 + 0.96 * t / 0.2)
    return peak * 0.5 * (1 + math.cos(math.pi * (t - 0.2) / 0.8))


def to_float(images_uint8: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    x = torch.from_numpy(np.array(images_uint8)).to(device)  # a copy: MNIST arrays may be read-only views
    return x.unsqueeze(1).float().div_(255.0)


def code_version() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=REPO_ROOT)  # fmt: skip
        sha = out.stdout.strip() if out.returncode == 0 else ""
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{__version__}+{sha}" if sha else __version__


class _Members(nn.Module):
    """Exposes each ensemble member's logits through forward(), which is what DDP hooks."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn

    def forward(self, x):
        return self.cnn.member_logits(x)


class Trainer:
    def __init__(self, cfg, *, out_path: Path, run_dir: Path | None, progress, show_progress: bool):
        from core.data import load_mnist, mnist_checksum, split_arrays
        from core.sequences import generate_sequences

        self.cfg, self.out_path, self.run_dir = cfg, out_path, run_dir
        self.progress_cb, self.show_progress = progress, show_progress
        self.world, self.rank, self.device, self.owns_group = _init_distributed(cfg.device)
        self.amp = self.device.type == "cuda"  # bf16 autocast on CUDA only
        torch.manual_seed(cfg.seed)
        self.model = DigitSumModel(cfg.model_config()).to(self.device)
        if cfg.init_cnn:
            self._load_cnn(cfg.init_cnn)
        mnist = load_mnist()
        self.data_checksum = mnist_checksum(mnist)
        rng = np.random.default_rng(cfg.seed)
        x, y = split_arrays(mnist, "train")
        keep = np.sort(rng.permutation(len(x))[: cfg.train_subset]) if cfg.train_subset else slice(None)
        self.x_train, self.y_train = np.ascontiguousarray(x[keep]), torch.from_numpy(y[keep].astype(np.int64))
        x, y = split_arrays(mnist, "val")
        keep = np.sort(rng.permutation(len(x))[: cfg.val_subset]) if cfg.val_subset else slice(None)
        self.x_val, self.y_val = np.ascontiguousarray(x[keep]), torch.from_numpy(y[keep].astype(np.int64))
        self.val_seqs = generate_sequences("val", cfg.val_sequences, (cfg.min_len, cfg.max_len), seed=cfg.seed + 1,
                                           labels=self.y_val.numpy())  # fmt: skip
        self.pos = {"phase": 0, "epoch": 0, "step": 0}  # the next step to run
        self.best: dict[str, dict] = {}  # phase -> {"score", "state", "metrics"}
        self.opt_state, self.elapsed_before, self.global_step, self.stop = None, 0.0, 0, False
        self.train_logits = self.val_logits = None
        steps_cnn = max(1, len(self.x_train) // cfg.batch_size)
        avg_len = (cfg.min_len + cfg.max_len) / 2
        # Relative cost of one step per phase (measured on CPU: a head position costs ~1/20 of a CNN image).
        self.units = {"cnn": (cfg.epochs_cnn, steps_cnn, cfg.batch_size * cfg.members),
                      "head": (cfg.epochs_head if self._head_trainable() else 0, cfg.head_steps,
                               cfg.head_batch * avg_len / 20),
                      "joint": (cfg.epochs_joint, cfg.joint_steps, cfg.joint_batch * avg_len * 1.2)}  # fmt: skip
        self.total_units = sum(e * s * w for e, s, w in self.units.values()) or 1.0

    def _load_cnn(self, path: str) -> None:
        from core.model.checkpoint import CheckpointError, load_checkpoint

        state, _ = load_checkpoint(path)
        cnn_state = {k[len("cnn."):]: v for k, v in state.items() if k.startswith("cnn.")}
        try:
            self.model.cnn.load_state_dict(cnn_state)
        except RuntimeError as e:
            raise CheckpointError(f"checkpoint {path}: its CNN does not fit this config (widths/members)") from e

    # -- control -----------------------------------------------------------------------------------
    def request_stop(self, signum=None, frame=None):
        self.stop = True

    def _should_stop(self) -> bool:
        if self.world == 1:
            return self.stop
        flag = torch.tensor([1.0 if self.stop else 0.0], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)  # every rank stops at the same step
        return bool(flag.item())

    def _head_trainable(self) -> bool:
        return any(p.requires_grad for p in self.model.head.parameters())

    def close(self):
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()

    # -- the loop ----------------------------------------------------------------------------------
    def run(self) -> dict:
        self.t0, self.progress_at_start = time.time(), self._progress(*self.pos.values())
        for index, phase in enumerate(PHASES):
            if index >= self.pos["phase"]:
                self._run_phase(index, phase)
                self.pos = {"phase": index + 1, "epoch": 0, "step": 0}
        metrics = self._final_metrics()
        if self.rank == 0:
            save_checkpoint(self.out_path, self.model.state_dict(), self._metadata(metrics))
            self._record("done", 0, 0, None, metrics.get("val_mae"), metrics.get("val_digit_acc"),
                         checkpoint=str(self.out_path))  # fmt: skip
        if self.world > 1:
            dist.barrier()
        return metrics

    def _run_phase(self, index: int, phase: str) -> None:
        epochs, steps, _ = self.units[phase]
        if epochs == 0:
            return
        trainable, opt, step_fn, evaluate, holder = getattr(self, f"_setup_{phase}")()
        start_epoch, start_step = self.pos["epoch"], self.pos["step"]
        if self.pos["phase"] == index and self.opt_state is not None:
            opt.load_state_dict(self.opt_state)  # resuming inside this phase
        self.opt_state = None
        log_every = max(1, steps // 20)
        if phase != "cnn" and phase not in self.best:  # the starting point is a candidate too (see the lstm head)
            metrics, score = evaluate()
            self.best[phase] = {"score": score, "state": _copy_state(holder), "metrics": metrics}
        for epoch in range(start_epoch, epochs):
            bar = _bar(steps, start_step if epoch == start_epoch else 0, f"{phase} {epoch + 1}/{epochs}",
                       self.show_progress and self.rank == 0)  # fmt: skip
            trainable.train()
            for step in range(start_step if epoch == start_epoch else 0, steps):
                if self._should_stop():
                    self._save_resume(index, epoch, step, opt)
                    raise TrainingInterrupted(f"stopped by SIGTERM in phase {phase}, epoch {epoch + 1}, step {step}")
                for group in opt.param_groups:
                    group["lr"] = one_cycle((epoch * steps + step) / (epochs * steps), group["base_lr"])
                seed = step_seed(self.cfg.seed, index, epoch, step, self.rank)
                torch.manual_seed(seed)  # dropout et al.: a pure function of the position
                gen = torch.Generator().manual_seed(seed)
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                    loss = step_fn(trainable, epoch, step, gen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                self.global_step += 1
                bar.update(1)
                if (step + 1) % log_every == 0 and step + 1 < steps:  # the epoch's end logs below
                    bar.set_postfix(loss=f"{loss.item():.4f}")
                    self._record(phase, epoch, epochs, loss.item(), pos=(index, epoch, step + 1))
            bar.close()
            metrics, score = evaluate()
            state = {"score": score, "state": _copy_state(holder), "metrics": metrics}
            if phase not in self.best or score >= self.best[phase]["score"]:  # ties: prefer the later epoch
                self.best[phase] = state
            self.best[f"{phase}:last"] = state
            self._record(phase, epoch, epochs, loss.item(), metrics.get("val_mae"), metrics.get("val_digit_acc"),
                         pos=(index, epoch + 1, 0))  # fmt: skip
            self._save_resume(index, epoch + 1, 0, opt)
        holder.load_state_dict(self._select(phase)["state"])
        if phase != "head":  # the cached logits came from the last epoch's CNN, not the best one
            self.train_logits = self.val_logits = None

    # -- phase 1: the CNN on digit labels ----------------------------------------------------------
    def _setup_cnn(self):
        cnn = self.model.cnn
        opt = torch.optim.SGD(cnn.parameters(), lr=self.cfg.lr, momentum=0.9, nesterov=True,
                              weight_decay=self.cfg.weight_decay)  # fmt: skip
        opt.param_groups[0]["base_lr"] = self.cfg.lr
        trainable = _ddp(_Members(cnn), self.world, self.device)
        batch, per_rank = self.cfg.batch_size, max(1, self.cfg.batch_size // self.world)

        perms = {}  # epoch -> the epoch's order: the same on every rank; each rank takes its share

        def step_fn(module, epoch, step, gen):
            if epoch not in perms:
                perms.clear()
                perms[epoch] = torch.randperm(len(self.x_train), generator=torch.Generator().manual_seed(
                    step_seed(self.cfg.seed, 0, epoch)))  # fmt: skip
            idx = perms[epoch][step * batch : (step + 1) * batch][self.rank :: self.world][:per_rank]
            x = augment(to_float(self.x_train[idx.numpy()], self.device), gen, self.cfg)
            logits = module(x).float()  # (members, b, 10)
            y = self.y_train[idx].to(self.device).repeat(logits.shape[0])
            return F.cross_entropy(logits.reshape(-1, 10), y, label_smoothing=self.cfg.label_smoothing)

        def evaluate():
            self.val_logits = self._logits(self.x_val)
            acc = (self.val_logits.argmax(1) == self.y_val).float().mean().item()
            return {"val_digit_acc": acc}, acc

        return trainable, opt, step_fn, evaluate, cnn

    def _select(self, phase: str) -> dict:
        """The epoch a phase keeps: the best on val, except that the CNN keeps its final epoch unless an
        earlier one beat it by more than 2 standard errors of val accuracy. At ~99.7% the 5,000 val images
        hold ~15 errors, so a mid-schedule epoch (high learning rate) can win by a few lucky images; we
        measured such a pick losing 0.15% test accuracy against the annealed final epoch."""
        best, last = self.best[phase], self.best.get(f"{phase}:last", self.best[phase])
        if phase != "cnn":
            return best
        p, n = best["score"], max(1, len(self.x_val))
        return last if last["score"] >= p - 2 * math.sqrt(max(p * (1 - p), 1e-6) / n) else best

    # -- phase 2: the head on sum labels, over cached CNN logits -----------------------------------
    def _setup_head(self):
        self._cache_logits()
        head = self.model.head
        opt = torch.optim.Adam(head.parameters(), lr=self.cfg.lr_head)
        opt.param_groups[0]["base_lr"] = self.cfg.lr_head
        trainable = _ddp(head, self.world, self.device)

        def step_fn(module, epoch, step, gen):
            logits, lengths, sums = self._sample_sequences(gen, self.cfg.head_batch)
            running = module(logits.to(self.device), lengths.to(self.device))
            return self._sum_loss(final_sums(running, lengths).float(), sums.float().to(self.device))

        def evaluate():
            metrics = self._val_metrics()
            return metrics, -metrics["val_mae"]

        return trainable, opt, step_fn, evaluate, head

    def _sum_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The original design ("lstm-final") regresses with MSE. The others use a Huber loss that is
        L1 beyond 0.1: the reported metrics (MAE, exact match) are L1/0-1, and under L1 an unsure digit's
        best contribution is its most likely value (an integer), not the mean, which rounds badly."""
        if self.cfg.head == "lstm-final":
            return F.mse_loss(pred, target)
        return F.smooth_l1_loss(pred, target, beta=0.1)

    def _sample_sequences(self, gen, batch):
        """Random train sequences (lengths min_len..max_len) as cached logits, lengths and true sums."""
        lengths = torch.randint(self.cfg.min_len, self.cfg.max_len + 1, (batch,), generator=gen)
        idx = torch.randint(0, len(self.train_logits), (batch, int(lengths.max())), generator=gen)
        mask = torch.arange(idx.shape[1]) < lengths[:, None]
        sums = (self.train_labels[idx] * mask).sum(1)
        return self.train_logits[idx], lengths, sums

    # -- phase 3 (optional): both jointly, on images ------------------------------------------------
    def _setup_joint(self):
        cfg, model = self.cfg, self.model
        groups = [{"params": list(model.cnn.parameters()), "lr": cfg.lr / 20, "base_lr": cfg.lr / 20}]
        if self._head_trainable():
            groups.append({"params": list(model.head.parameters()), "lr": cfg.lr_head / 10,
                           "base_lr": cfg.lr_head / 10})  # fmt: skip
        opt = torch.optim.SGD(groups, momentum=0.9, nesterov=True)
        trainable = _ddp(model, self.world, self.device)
        per_rank = max(1, cfg.joint_batch // self.world)

        def step_fn(module, epoch, step, gen):
            lengths = torch.randint(cfg.min_len, cfg.max_len + 1, (per_rank,), generator=gen)
            idx = torch.randint(0, len(self.x_train), (per_rank, int(lengths.max())), generator=gen)
            mask = torch.arange(idx.shape[1]) < lengths[:, None]
            x = augment(to_float(self.x_train[idx.reshape(-1).numpy()], self.device), gen, cfg)
            sums, _, logits = module(x.reshape(*idx.shape, 28, 28), lengths.to(self.device))
            digits = self.y_train[idx].to(self.device)
            m = mask.to(self.device)
            sum_loss = self._sum_loss(sums.float(), (digits * m).sum(1).float())
            return sum_loss + F.cross_entropy(logits[m].float(), digits[m])  # digit loss keeps the CNN honest

        def evaluate():
            self.val_logits = self._logits(self.x_val)
            metrics = self._val_metrics()
            return metrics, -metrics["val_mae"]

        return trainable, opt, step_fn, evaluate, model

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _logits(self, images: np.ndarray, view: int = 0) -> torch.Tensor:
        """CNN logits (n, 10) float32 on the CPU for every image; ranks split the work and share it.
        view > 0: of a seeded augmented view of every image instead."""
        self.model.cnn.eval()
        per = math.ceil(len(images) / self.world)
        lo, hi = self.rank * per, min(len(images), (self.rank + 1) * per)
        out = torch.zeros(per, 10, device=self.device)
        for i in range(lo, hi, 256):
            x = to_float(images[i : min(hi, i + 256)], self.device)
            if view:
                x = augment(x, torch.Generator().manual_seed(step_seed(self.cfg.seed, 9, view, i)), self.cfg)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
                out[i - lo : i - lo + len(x)] = self.model.cnn(x).float()
        if self.world > 1:
            parts = [torch.zeros_like(out) for _ in range(self.world)]
            dist.all_gather(parts, out)
            out = torch.cat(parts)
        self.model.cnn.train()
        return out[: len(images)].cpu()

    def _cache_logits(self):
        if self.train_logits is None:  # clean images plus augmented views: see TrainConfig.head_views
            views = range(self.cfg.head_views + 1)
            self.train_logits = torch.cat([self._logits(self.x_train, view) for view in views])
            self.train_labels = self.y_train.repeat(len(views))
        if self.val_logits is None:
            self.val_logits = self._logits(self.x_val)

    @torch.no_grad()
    def _val_metrics(self) -> dict:
        seqs = self.val_seqs
        idx = torch.from_numpy(seqs.indices).clamp(min=0)
        lengths = torch.from_numpy(seqs.lengths)
        running = self.model.head_forward(self.val_logits[idx].to(self.device), lengths.to(self.device))
        pred = final_sums(running, lengths).cpu().numpy()
        err = pred - seqs.sums
        return {"val_mae": float(np.abs(err).mean()), "val_rmse": float(np.sqrt((err**2).mean())),
                "val_exact": float((np.rint(pred) == seqs.sums).mean()),
                "val_digit_acc": float((self.val_logits.argmax(1) == self.y_val).float().mean())}  # fmt: skip

    def _final_metrics(self) -> dict:
        self._cache_logits()
        metrics = self._val_metrics()
        metrics["val_mae_constant"] = float(np.abs(self.val_seqs.sums - np.median(self.val_seqs.sums)).mean())
        metrics["train_seconds"] = round(self.elapsed_before + time.time() - self.t0, 1)
        metrics["world_size"] = self.world
        return metrics

    def _metadata(self, metrics: dict) -> dict:
        cfg = self.cfg
        return {"model_config": cfg.model_config().to_dict(), "head": cfg.head,
                "train_lengths": [cfg.min_len, cfg.max_len], "data_checksum": self.data_checksum,
                "metrics": metrics, "preset": cfg.preset, "train_config": asdict(cfg),
                "code_version": code_version(), "torch_version": torch.__version__,
                "device": self.device.type, "parameters": sum(p.numel() for p in self.model.parameters())}  # fmt: skip

    # -- progress, metrics file, resume --------------------------------------------------------------
    def _progress(self, phase_index: int, epoch: int, step: int) -> float:
        done = 0.0
        for i, (epochs, steps, weight) in enumerate(self.units.values()):
            if i < phase_index:
                done += epochs * steps * weight
            elif i == phase_index:
                done += min(epochs * steps, epoch * steps + step) * weight
        return min(1.0, done / self.total_units)

    def _record(self, phase, epoch, epochs, loss, val_mae=None, val_digit_acc=None, pos=None, **extra):
        progress = 1.0 if phase == "done" else self._progress(*pos)
        elapsed = self.elapsed_before + time.time() - self.t0
        gained = progress - self.progress_at_start
        eta = (time.time() - self.t0) / gained * (1 - progress) if gained > 0 else None
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "step": self.global_step, "phase": phase,
                  "epoch": epoch + 1 if epochs else 0, "epochs": epochs, "loss": loss,
                  "val_mae": val_mae, "val_digit_acc": val_digit_acc, "elapsed": round(elapsed, 2),
                  "eta": None if eta is None else round(eta, 1), "progress": round(progress, 4), **extra}  # fmt: skip
        if self.rank != 0:
            return
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
                f.flush()
        if self.progress_cb is not None:
            self.progress_cb(record)

    def _save_resume(self, phase_index: int, epoch: int, step: int, opt) -> None:
        if self.rank != 0 or self.run_dir is None:
            return
        state = {"config": asdict(self.cfg), "pos": {"phase": phase_index, "epoch": epoch, "step": step},
                 "model": self.model.state_dict(), "optimizer": opt.state_dict(), "best": self.best,
                 "global_step": self.global_step, "elapsed": self.elapsed_before + time.time() - self.t0}  # fmt: skip
        atomic_write(self.run_dir / "resume.pt", lambda tmp: torch.save(state, tmp))

    def load_resume(self) -> None:
        if self.run_dir is None:
            raise ValueError("resume needs a run dir (--run-dir) holding resume.pt")
        path = self.run_dir / "resume.pt"
        if not path.exists():
            raise ValueError(f"cannot resume: {path} does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        diff = sorted(k for k, v in state["config"].items() if asdict(self.cfg).get(k) != v and k != "device")
        if diff:
            raise ValueError(f"cannot resume: {path} was written with a different config (fields {diff})")
        self.model.load_state_dict(state["model"])
        self.pos, self.best, self.opt_state = state["pos"], state["best"], state["optimizer"]
        self.global_step, self.elapsed_before = state["global_step"], state["elapsed"]


def _init_distributed(device_arg: str):
    """(world, rank, device, owns_group). Under torchrun WORLD_SIZE > 1: gloo on CPU, nccl on CUDA."""
    device = resolve_device(device_arg)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, device, False
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type == "mps":
        raise ValueError("distributed training supports cpu (gloo) and cuda (nccl), not mps")
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size(), dist.get_rank(), device, owns


def _ddp(module: nn.Module, world: int, device: torch.device) -> nn.Module:
    if world == 1:
        return module
    ids = [device.index] if device.type == "cuda" else None  # CPU (gloo): no device_ids
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def _copy_state(module: nn.Module) -> dict:
    return {k: v.detach().clone().cpu() for k, v in module.state_dict().items()}


def _bar(total: int, initial: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, disable=not enabled, dynamic_ncols=True, leave=True)



"""The three training phases and what they share (augmentation, LR schedule, derived seeds).

Each setup_* returns a Phase: what to train, its optimizer, one step's loss and a val evaluation.
The loop (loop.py) runs any Phase the same way, so a phase reads as "data -> loss" and nothing else.
Every step's randomness comes from derive_seed(position), so a resumed run replays the same steps.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from core.model import final_sums
from core.seeds import derive_seed
from core.training.distributed import ddp

# Purposes of derived seeds: the first element of the SeedSequence spawn key, so streams never collide.
STEP, ORDER, VIEW, MINE = 0, 1, 2, 3


def augment(x: torch.Tensor, gen: torch.Generator, cfg) -> torch.Tensor:
    """Random handwriting variation of a (B, 1, 28, 28) batch, in torch: rotation, scale, shift and
    slant (one affine grid), a smooth elastic warp added to that grid, then stroke thickness and noise.
    Elastic and thickness changes matter beyond MNIST: other writers' digits differ in exactly these."""
    b = x.shape[0]

    def u(*shape):  # uniform in [-1, 1], drawn on the CPU generator for device-independent results
        return (torch.rand(*shape, generator=gen) * 2 - 1).to(x.device)

    angle = u(b) * math.radians(cfg.aug_rotate)
    scale = 1 + u(b) * cfg.aug_scale
    shift = u(b, 2) * (2 * cfg.aug_shift / 28)  # grid coordinates span 2 over 28 pixels
    shear = u(b) * cfg.aug_shear
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    # rotation @ horizontal shear [[1, shear], [0, 1]]: slanted strokes, as writers slant them
    theta = torch.stack([torch.stack([cos, cos * shear - sin, shift[:, 0]], 1),
                         torch.stack([sin, sin * shear + cos, shift[:, 1]], 1)], 1)  # fmt: skip
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    if cfg.aug_elastic:
        # Gaussian noise on a coarse 4x4 lattice, upsampled: a smooth displacement field (Simard et al.
        # 2003) at a fraction of the cost of blurring a full-resolution one.
        coarse = torch.randn(b, 2, 4, 4, generator=gen) * (cfg.aug_elastic * 2 / 28)
        field = F.interpolate(coarse, size=(28, 28), mode="bicubic", align_corners=True)
        grid = grid + field.permute(0, 2, 3, 1).to(x.device)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if cfg.aug_thickness:
        # Blend toward the 3x3 dilation (w > 0: thicker strokes) or erosion (w < 0: thinner).
        w = (u(b) * cfg.aug_thickness).view(b, 1, 1, 1)
        thick, thin = F.max_pool2d(x, 3, 1, 1), -F.max_pool2d(-x, 3, 1, 1)
        x = x + w.clamp(min=0) * (thick - x) + (-w).clamp(min=0) * (thin - x)
    if cfg.aug_noise:
        # Pixel noise on half the images (sigma up to aug_noise): photos are never clean, and a CNN
        # trained without it read only 74% of val digits under sigma-0.18 noise (MNIST-C's severity 3).
        sigma = torch.rand(b, generator=gen) * cfg.aug_noise * (torch.rand(b, generator=gen) < 0.5)
        noise = torch.randn(x.shape, generator=gen) * sigma.view(b, 1, 1, 1)
        x = (x + noise.to(x.device)).clamp_(0, 1)
    return x


def one_cycle(t: float, peak: float) -> float:
    """LR at fraction t of a phase: linear warm-up over 20%, then cosine to ~0."""
    if t < 0.2:
        return peak * (0.04 + 0.96 * t / 0.2)
    return peak * 0.5 * (1 + math.cos(math.pi * (t - 0.2) / 0.8))


def to_float(images_uint8: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    x = torch.from_numpy(np.array(images_uint8)).to(device)  # a copy: MNIST arrays may be read-only views
    return x.unsqueeze(1).float().div_(255.0)


def sum_loss(head: str, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The original design ("lstm-final") regresses with MSE. The others use a Huber loss that is L1
    beyond 0.1: the reported metrics (MAE, exact match) are L1/0-1, and under L1 an unsure digit's best
    contribution is its most likely value (an integer), not the mean, which rounds badly."""
    if head == "lstm-final":
        return F.mse_loss(pred, target)
    return F.smooth_l1_loss(pred, target, beta=0.1)


@dataclass
class Phase:
    trainable: nn.Module  # what forward/backward runs through (DDP-wrapped under torchrun)
    opt: torch.optim.Optimizer  # every param group carries "base_lr", the peak of its one-cycle
    step: Callable[[nn.Module, int, int, torch.Generator], torch.Tensor]  # (module, epoch, step, gen) -> loss
    evaluate: Callable[[], tuple[dict, float]]  # -> (val metrics, score: higher is better)
    holder: nn.Module  # whose state_dict model selection keeps


class _Members(nn.Module):
    """Exposes each ensemble member's logits through forward(), which is what DDP hooks."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn

    def forward(self, x):
        return self.cnn.member_logits(x)


# -- phase 1: the CNN on digit labels (augmented images) ---------------------------------------------
def setup_cnn(t) -> Phase:
    cfg, cnn = t.cfg, t.model.cnn
    opt = torch.optim.SGD(cnn.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay)
    opt.param_groups[0]["base_lr"] = cfg.lr
    n_mnist, n_mine = t.cnn_batch  # a step's MNIST images and collection digits, global over ranks
    per_rank = max(1, cfg.batch_size // t.world)
    orders = {}  # epoch -> the epoch's order: the same on every rank; each rank takes its share

    def step(module, epoch, step, gen):
        if epoch not in orders:
            orders.clear()
            orders[epoch] = torch.randperm(len(t.x_train), generator=torch.Generator().manual_seed(
                derive_seed(cfg.seed, ORDER, epoch)))  # fmt: skip
        idx = orders[epoch][step * n_mnist : (step + 1) * n_mnist]
        images, labels = t.x_train[idx.numpy()], t.y_train[idx]
        if n_mine:  # the collection's share: drawn at random (it is small), the same draw on every rank
            pick = torch.randint(len(t.x_mine), (n_mine,), generator=torch.Generator().manual_seed(
                derive_seed(cfg.seed, MINE, epoch, step)))  # fmt: skip
            images, labels = np.concatenate([images, t.x_mine[pick.numpy()]]), torch.cat([labels, t.y_mine[pick]])
        share = torch.arange(len(labels))[t.rank :: t.world][:per_rank]
        x = augment(to_float(images[share.numpy()], t.device), gen, cfg)
        logits = module(x).float()  # (members, b, 10)
        y = labels[share].to(t.device).repeat(logits.shape[0])
        return F.cross_entropy(logits.reshape(-1, 10), y, label_smoothing=cfg.label_smoothing)

    def evaluate():
        t.val_logits = t.logits(t.x_val)
        acc = (t.val_logits.argmax(1) == t.y_val).float().mean().item()
        return {"val_digit_acc": acc}, acc

    return Phase(ddp(_Members(cnn), t.world, t.device), opt, step, evaluate, cnn)


# -- phase 2: the head on sum labels, over CNN logits cached once per image ----------------------------
def setup_head(t) -> Phase:
    cfg, head = t.cfg, t.model.head
    t.cache_logits()
    opt = torch.optim.Adam(head.parameters(), lr=cfg.lr_head)
    opt.param_groups[0]["base_lr"] = cfg.lr_head

    def step(module, epoch, step, gen):
        # Random train sequences (lengths min_len..max_len) as cached logits, lengths and true sums.
        lengths = torch.randint(cfg.min_len, cfg.max_len + 1, (cfg.head_batch,), generator=gen)
        idx = torch.randint(0, len(t.train_logits), (cfg.head_batch, int(lengths.max())), generator=gen)
        mask = torch.arange(idx.shape[1]) < lengths[:, None]
        sums = (t.train_labels[idx] * mask).sum(1)
        running = module(t.train_logits[idx].to(t.device), lengths.to(t.device))
        return sum_loss(cfg.head, final_sums(running, lengths).float(), sums.float().to(t.device))

    def evaluate():
        metrics = t.val_metrics()
        return metrics, -metrics["val_mae"]

    return Phase(ddp(head, t.world, t.device), opt, step, evaluate, head)


# -- phase 3 (optional): CNN and head jointly, on augmented image sequences ---------------------------
def setup_joint(t) -> Phase:
    cfg, model = t.cfg, t.model
    groups = [{"params": list(model.cnn.parameters()), "lr": cfg.lr / 20, "base_lr": cfg.lr / 20}]
    if t.head_trainable():
        groups.append({"params": list(model.head.parameters()), "lr": cfg.lr_head / 10, "base_lr": cfg.lr_head / 10})
    opt = torch.optim.SGD(groups, momentum=0.9, nesterov=True)
    per_rank = max(1, cfg.joint_batch // t.world)

    def step(module, epoch, step, gen):
        lengths = torch.randint(cfg.min_len, cfg.max_len + 1, (per_rank,), generator=gen)
        idx = torch.randint(0, len(t.x_train), (per_rank, int(lengths.max())), generator=gen)
        mask = torch.arange(idx.shape[1]) < lengths[:, None]
        x = augment(to_float(t.x_train[idx.reshape(-1).numpy()], t.device), gen, cfg)
        sums, _, logits = module(x.reshape(*idx.shape, 28, 28), lengths.to(t.device))
        digits, m = t.y_train[idx].to(t.device), mask.to(t.device)
        loss = sum_loss(cfg.head, sums.float(), (digits * m).sum(1).float())
        return loss + F.cross_entropy(logits[m].float(), digits[m])  # the digit loss keeps the CNN honest

    def evaluate():
        t.val_logits = t.logits(t.x_val)
        metrics = t.val_metrics()
        return metrics, -metrics["val_mae"]

    return Phase(ddp(model, t.world, t.device), opt, step, evaluate, model)


def select_epoch(phase: str, best: dict, last: dict | None, n_val: int) -> dict:
    """The epoch a phase keeps: the best on val_select (the selection part of val), except that the
    CNN keeps its final epoch unless an earlier one beat it by more than 2 standard errors of val
    accuracy (n_val images). The reasoning, which needs no test figure: at ~99.7% the 2,500 selection
    images hold ~8 errors, a standard error of ~0.11%, so epochs differ by a few images from chance
    alone, and the maximum over a whole schedule's epochs is biased upward (the winner's curse). The
    final epoch is the one the one-cycle schedule anneals to a learning rate of ~0, so a mid-schedule
    epoch (high learning rate) is kept only when its lead is too large to be that noise."""
    if phase != "cnn" or last is None:
        return best
    p = best["score"]
    return last if last["score"] >= p - 2 * math.sqrt(max(p * (1 - p), 1e-6) / max(1, n_val)) else best


SETUPS = {"cnn": setup_cnn, "head": setup_head, "joint": setup_joint}  # in the order they run

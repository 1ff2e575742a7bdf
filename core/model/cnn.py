"""The digit encoder: a small BN CNN per image, and an ensemble that averages its members."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from core.model.model_config import ModelConfig


def _conv_bn(ci: int, co: int, k: int = 3) -> list[nn.Module]:
    return [nn.Conv2d(ci, co, k, padding=k // 2, bias=False), nn.BatchNorm2d(co), nn.ReLU(inplace=True)]


class DigitCNN(nn.Module):
    """28x28 -> 10 logits. BN conv blocks, two 2x poolings, global average pooling.

    Sized for a 2-core CPU (about 22 MMAC per image at widths 32-64-128): the cheap 5x5 stem works at
    full resolution with one input channel, and the wider 3x3 convs run at 14x14 and 7x7.
    """

    def __init__(self, widths: list[int], dropout: float):
        super().__init__()
        a, b, c = widths
        self.features = nn.Sequential(
            *_conv_bn(1, a, 5), nn.MaxPool2d(2),
            *_conv_bn(a, b), *_conv_bn(b, b), nn.MaxPool2d(2),
            *_conv_bn(b, c), *_conv_bn(c, c),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )  # fmt: skip
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(c, 10))
        self.to(memory_format=torch.channels_last)  # weights too, not just inputs: ~25% faster on CPU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


class CNNEnsemble(nn.Module):
    """Averages the calibrated probabilities of independent DigitCNN members (one member: the plain CNN).

    forward returns (B, 10) logits; for several members, log(mean_m softmax(z_m / T_m)), the log of the
    members' averaged probabilities, each member first divided by its own temperature T_m (fitted on
    val_calib by core.training.ensemble; 1 until then). Averaging probabilities rather than
    log-probabilities keeps a digit the members disagree about unsure. Training gives each member its
    own loss through member_logits (M, B, 10).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.members = nn.ModuleList(DigitCNN(cfg.widths, cfg.dropout) for _ in range(cfg.members))
        if cfg.members > 1:
            self.register_buffer("member_temperature", torch.ones(cfg.members))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.stack([m(x) for m in self.members])

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) -> (B, C * members) penultimate features (before each classifier), the members'
        side by side (each learned its own feature space, so they are not averaged): what the digit map
        (core.evaluate.embeddings) projects to 2-D."""
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"CNN input must be (B, 1, 28, 28), got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.cat([m.features(x).float() for m in self.members], dim=1)

    def fuse_for_inference(self) -> CNNEnsemble:
        """Fold each BatchNorm into the conv before it (eval mode only; idempotent): the same outputs to
        within float rounding, about 12% faster on the CPU. A fused CNN can no longer be trained."""
        for member in self.members:
            layers, fused = list(member.features), []
            for layer in layers:
                if isinstance(layer, nn.BatchNorm2d) and fused and isinstance(fused[-1], nn.Conv2d):
                    fused[-1] = fuse_conv_bn_eval(fused[-1].eval(), layer.eval())
                else:
                    fused.append(layer)
            member.features = nn.Sequential(*fused)
        return self.eval()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"CNN input must be (B, 1, 28, 28), got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last)  # faster oneDNN convs on CPU
        if len(self.members) == 1:
            return self.members[0](x)
        return self.combine(self.member_logits(x))

    def combine(self, member_logits: torch.Tensor) -> torch.Tensor:
        """(M, B, 10) raw member logits -> (B, 10) the ensemble's logits, log(mean_m softmax(z_m / T_m)):
        the one place the rule lives (one member: its own logits)."""
        if len(self.members) == 1:
            return member_logits[0]
        z = member_logits.float() / self.member_temperature.view(-1, 1, 1)
        return z.log_softmax(-1).logsumexp(0) - math.log(len(self.members))

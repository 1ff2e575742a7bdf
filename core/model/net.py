"""The digit-sum model: a CNN that reads one 28x28 digit, and a sequence head over its outputs.

Per-image work (the CNN) is kept apart from sequence work (the head) so callers can run the CNN
once per unique image and feed cached logits to the head:

    logits = model.cnn(x)                          # (B, 1, 28, 28) float in [0, 1] -> (B, 10)
    running = model.head_forward(logits3d, lengths)  # (N, L, 10), (N,) -> (N, L) float64 (float32 on MPS)

`running[i, t]` is the predicted sum of the first t+1 digits of sequence i, so the predicted sum is
`running[i, lengths[i] - 1]`. All heads are causal, which is why padding needs no packing: positions
at or after `lengths[i]` never influence earlier ones (their running values are undefined).
"""


from __future__ import annotations

import torch
import torch.nn as nn

from core.model.cnn import CNNEnsemble
from core.model.heads import final_sums, make_head
from core.model.model_config import ModelConfig


class DigitSumModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.cnn = CNNEnsemble(cfg)
        self.head = make_head(cfg)

    def head_forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(N, L, 10) logits, (N,) lengths -> (N, L) float64 (float32 on MPS) running sums (see the module docstring)."""
        if digit_logits.dim() != 3 or digit_logits.shape[-1] != 10:
            raise ValueError(f"digit_logits must be (N, L, 10), got {tuple(digit_logits.shape)}")
        return self.head(digit_logits, lengths)

    def head_outputs(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(running sums, per-step digit logits): heads that add one whole digit per step (lstm,
        argmax-sum) say which digit, as logits (N, L, 10); regression heads give None."""
        if digit_logits.dim() != 3 or digit_logits.shape[-1] != 10:
            raise ValueError(f"digit_logits must be (N, L, 10), got {tuple(digit_logits.shape)}")
        if hasattr(self.head, "outputs"):
            return self.head.outputs(digit_logits, lengths)
        return self.head(digit_logits, lengths), None

    def forward(self, images: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, L, 28, 28) float images -> (sums (N,), running (N, L), digit_logits (N, L, 10)).

        Used by joint fine-tuning, where gradients flow from the sum into the CNN.
        """
        n, length = images.shape[:2]
        logits = self.cnn(images.reshape(n * length, 1, 28, 28)).reshape(n, length, 10)
        running = self.head_forward(logits, lengths)
        return final_sums(running, lengths), running, logits


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _selftest() -> None:  # python -m core.model.net: a shape check that needs no data
    model = DigitSumModel(ModelConfig()).eval()
    x = torch.rand(6, 1, 28, 28)
    logits = model.cnn(x)
    running = model.head_forward(logits.reshape(2, 3, 10), torch.tensor([3, 2]))
    print(tuple(logits.shape), tuple(running.shape), count_parameters(model), "parameters")


if __name__ == "__main__":
    _selftest()

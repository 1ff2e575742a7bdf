"""Sequence heads: each maps per-digit logits (N, L, 10) to running sums (N, L).

Running sums are float64 where the device holds it, so a long sum of contributions cannot drift;
MPS has no float64, so there they are float32 (exact for whole-digit sums up to 2**24).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from core.model.model_config import HEADS, ModelConfig

FLOAT64_DEVICES = ("cpu", "cuda")


def sum_dtype(device: torch.device) -> torch.dtype:
    """The dtype of running sums on `device`: float64, except where the device cannot hold it."""
    return torch.float64 if torch.device(device).type in FLOAT64_DEVICES else torch.float32


class ContributionLSTMHead(nn.Module):
    """The default "lstm" head: the sum is a cumulative sum of bounded per-step contributions.

    Why this shape: an LSTM whose last hidden state is regressed to the sum (the original design)
    must squeeze an unbounded count into a tanh-bounded state, so it collapses beyond the training
    length. Here the LSTM (hidden 64) reads the per-digit log-probabilities; at each step a linear
    layer on h_t, added to the (scaled) input log-probabilities as a residual, gives logits z_t over
    the 10 digit values, and the step contributes one digit value. The running sum is the cumulative
    sum of contributions (float64 where possible), so a step's error cannot drift with the length of the sequence.
    hard=True (default): the contribution is the value of argmax z_t — an exact integer — trained with
    a straight-through estimator (softmax gradient). We measured the alternative, the expectation
    sum_d d * softmax(z_t)_d (hard=False): an unsure digit then adds a fraction, and fractions from
    many steps add up and break exact-match on long sequences, while hedging lowered MAE very little.
    Initialisation: the readout starts at zero, so an untrained head is exactly the CNN's argmax sum
    and training (with model selection on val, which includes the untrained head) can only move away
    from it where that helps; a negative forget-gate bias gives the state a short memory, so it
    settles to a stationary regime within the training lengths instead of wandering beyond them.
    """

    has_distribution = True  # each step adds one digit value: the sum's distribution is their convolution

    def __init__(self, hidden: int, hard: bool = True):
        super().__init__()
        self.hard = hard
        self.lstm = nn.LSTM(10, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 10)
        # Inverse temperature of the residual: lets a soft head sharpen a label-smoothed CNN (whose softmax
        # tops out near 0.9, pulling expectations towards 4.5); for a hard head it only shapes the gradient.
        self.sharpness = nn.Parameter(torch.tensor(1.0 if hard else 16.0))
        nn.init.zeros_(self.readout.weight)
        nn.init.zeros_(self.readout.bias)
        with torch.no_grad():  # PyTorch gate order: input, forget, cell, output
            for bias in (self.lstm.bias_ih_l0, self.lstm.bias_hh_l0):
                bias[hidden : 2 * hidden].fill_(-1.0)
        self.register_buffer("values", torch.arange(10, dtype=torch.float32), persistent=False)

    def outputs(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(running sums, z): z (N, L, 10) are the per-step logits over the digit each step adds."""
        logp = digit_logits.float().log_softmax(-1)
        h, _ = self.lstm(logp)
        z = self.sharpness * logp + self.readout(h).float()
        contrib = (z.softmax(-1) * self.values).sum(-1)
        if self.hard:  # straight-through: the value of the argmax, the gradient of the expectation (x - x == 0)
            contrib = z.argmax(-1).to(contrib.dtype) + (contrib - contrib.detach())
        return contrib.to(sum_dtype(contrib.device)).cumsum(1), z

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.outputs(digit_logits, lengths)[0]


class FinalStateLSTMHead(nn.Module):
    """"lstm-final": the original design — LSTM(128) over the 10 logits, last hidden state -> Linear."""

    has_distribution = False  # regresses a number

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(10, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(digit_logits.float())
        out = self.readout(h).squeeze(-1)  # the same readout at every step
        return out.to(sum_dtype(out.device))


class DeepSetsHead(nn.Module):
    """"deepsets": rho(sum_t phi(p_t)) with a linear rho; running = rho of the cumulative pooled sum.

    phi reads the digit probabilities p_t (bounded, unlike log-probabilities, so the MLP trains quickly).
    """

    has_distribution = False  # regresses a number

    def __init__(self, embed: int):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(10, embed), nn.ReLU(), nn.Linear(embed, embed), nn.ReLU())
        self.rho = nn.Linear(embed, 1)

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        dtype = sum_dtype(digit_logits.device)
        pooled = self.phi(digit_logits.float().softmax(-1)).to(dtype).cumsum(1)
        return (pooled @ self.rho.weight.to(dtype).t()).squeeze(-1) + self.rho.bias.to(dtype)


class ArgmaxSumHead(nn.Module):
    """"argmax-sum": the sum of the CNN's argmax digits; nothing to train."""

    has_distribution = True  # each step adds the CNN's reading of its digit

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return digit_logits.argmax(-1).to(sum_dtype(digit_logits.device)).cumsum(1)

    def outputs(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(running sums, the CNN's logits): each step adds the CNN's reading of its digit."""
        return self.forward(digit_logits, lengths), digit_logits.float()


HEAD_CLASSES = {"lstm": ContributionLSTMHead, "lstm-final": FinalStateLSTMHead, "deepsets": DeepSetsHead,
                "argmax-sum": ArgmaxSumHead}
assert tuple(HEAD_CLASSES) == HEADS


def has_distribution(head: str) -> bool:
    """Whether the head named `head` gives a distribution over the sum (its class's has_distribution)."""
    return HEAD_CLASSES[head].has_distribution


def make_head(cfg: ModelConfig) -> nn.Module:
    if cfg.head == "lstm":
        return ContributionLSTMHead(cfg.hidden, cfg.hard)
    if cfg.head == "lstm-final":
        return FinalStateLSTMHead(cfg.final_hidden)
    if cfg.head == "deepsets":
        return DeepSetsHead(cfg.embed)
    return ArgmaxSumHead()


def final_sums(running: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """running[i, lengths[i] - 1] for every sequence."""
    return running.gather(1, (lengths.to(running.device) - 1).unsqueeze(1)).squeeze(1)


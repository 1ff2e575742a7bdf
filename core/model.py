"""The digit-sum model: a CNN that reads one 28x28 digit, and a sequence head over its outputs.

Per-image work (the CNN) is kept apart from sequence work (the head) so callers can run the CNN
once per unique image and feed cached logits to the head:

    logits = model.cnn(x)                          # (B, 1, 28, 28) float in [0, 1] -> (B, 10)
    running = model.head_forward(logits3d, lengths)  # (N, L, 10), (N,) -> (N, L) float64

`running[i, t]` is the predicted sum of the first t+1 digits of sequence i, so the predicted sum is
`running[i, lengths[i] - 1]`. All heads are causal, which is why padding needs no packing: positions
at or after `lengths[i]` never influence earlier ones (their running values are undefined).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch
import torch.nn as nn

HEADS = ("lstm", "lstm-final", "deepsets", "argmax-sum")
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str = "auto") -> torch.device:
    """"auto" picks cuda, then mps, then cpu; an explicit choice that is unavailable is an error."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    has_mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if (device == "cuda" and not torch.cuda.is_available()) or (device == "mps" and not has_mps):
        raise ValueError(f"device {device!r} was requested but is not available on this machine")
    return torch.device(device)


@dataclass
class ModelConfig:
    head: str = "lstm"  # one of HEADS
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # CNN channels per stage
    members: int = 1  # CNN ensemble size: the members' log-probabilities are averaged
    dropout: float = 0.1  # before the CNN's classifier
    hidden: int = 64  # "lstm" head
    hard: bool = True  # "lstm" head: integer (argmax) contributions; False: expected digit values
    final_hidden: int = 128  # "lstm-final" head (the original design)
    embed: int = 64  # "deepsets" head: width of phi

    def __post_init__(self):
        if self.head not in HEADS:
            raise ValueError(f"ModelConfig.head must be one of {HEADS}, got {self.head!r}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ValueError(f"ModelConfig.widths must be 3 positive ints, got {self.widths!r}")
        if not 1 <= self.members <= 16:
            raise ValueError(f"ModelConfig.members must be in 1..16, got {self.members}")
        self.widths = [int(w) for w in self.widths]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        return cls(**d)


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
    """Averages the log-probabilities of independent DigitCNN members (a single member is the plain CNN).

    forward returns (B, 10) logits (for several members: the averaged log-probabilities, which are
    valid logits). Training gives each member its own loss through member_logits (M, B, 10).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.members = nn.ModuleList(DigitCNN(cfg.widths, cfg.dropout) for _ in range(cfg.members))

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        x = x.contiguous(memory_format=torch.channels_last)
        return torch.stack([m(x) for m in self.members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"CNN input must be (B, 1, 28, 28), got {tuple(x.shape)}")
        x = x.contiguous(memory_format=torch.channels_last)  # faster oneDNN convs on CPU
        if len(self.members) == 1:
            return self.members[0](x)
        return self.member_logits(x).float().log_softmax(-1).mean(0)


class ContributionLSTMHead(nn.Module):
    """The default "lstm" head: the sum is a cumulative sum of bounded per-step contributions.

    Why this shape: an LSTM whose last hidden state is regressed to the sum (the original design)
    must squeeze an unbounded count into a tanh-bounded state, so it collapses beyond the training
    length. Here the LSTM (hidden 64) reads the per-digit log-probabilities; at each step a linear
    layer on h_t, added to the (scaled) input log-probabilities as a residual, gives logits z_t over
    the 10 digit values, and the step contributes one digit value. The running sum is the cumulative
    sum of contributions (float64), so a step's error cannot drift with the length of the sequence.
    hard=True (default): the contribution is the value of argmax z_t — an exact integer — trained with
    a straight-through estimator (softmax gradient). We measured the alternative, the expectation
    sum_d d * softmax(z_t)_d (hard=False): an unsure digit then adds a fraction, and fractions from
    many steps add up and break exact-match on long sequences, while hedging lowered MAE very little.
    Initialisation: the readout starts at zero, so an untrained head is exactly the CNN's argmax sum
    and training (with model selection on val, which includes the untrained head) can only move away
    from it where that helps; a negative forget-gate bias gives the state a short memory, so it
    settles to a stationary regime within the training lengths instead of wandering beyond them.
    """

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

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        logp = digit_logits.float().log_softmax(-1)
        h, _ = self.lstm(logp)
        z = self.sharpness * logp + self.readout(h).float()
        contrib = (z.softmax(-1) * self.values).sum(-1)
        if self.hard:  # straight-through: the value of the argmax, the gradient of the expectation (x - x == 0)
            contrib = z.argmax(-1).to(contrib.dtype) + (contrib - contrib.detach())
        return contrib.double().cumsum(1)


class FinalStateLSTMHead(nn.Module):
    """"lstm-final": the original design — LSTM(128) over the 10 logits, last hidden state -> Linear."""

    def __init__(self, hidden: int):
        super().__init__()
        self.lstm = nn.LSTM(10, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, 1)

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(digit_logits.float())
        return self.readout(h).squeeze(-1).double()  # the same readout at every step


class DeepSetsHead(nn.Module):
    """"deepsets": rho(sum_t phi(p_t)) with a linear rho; running = rho of the cumulative pooled sum.

    phi reads the digit probabilities p_t (bounded, unlike log-probabilities, so the MLP trains quickly).
    """

    def __init__(self, embed: int):
        super().__init__()
        self.phi = nn.Sequential(nn.Linear(10, embed), nn.ReLU(), nn.Linear(embed, embed), nn.ReLU())
        self.rho = nn.Linear(embed, 1)

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled = self.phi(digit_logits.float().softmax(-1)).double().cumsum(1)
        return (pooled @ self.rho.weight.double().t()).squeeze(-1) + self.rho.bias.double()


class ArgmaxSumHead(nn.Module):
    """"argmax-sum": the sum of the CNN's argmax digits; nothing to train."""

    def forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return digit_logits.argmax(-1).double().cumsum(1)


def make_head(cfg: ModelConfig) -> nn.Module:
    if cfg.head == "lstm":
        return ContributionLSTMHead(cfg.hidden, cfg.hard)
    if cfg.head == "lstm-final":
        return FinalStateLSTMHead(cfg.final_hidden)
    if cfg.head == "deepsets":
        return DeepSetsHead(cfg.embed)
    return ArgmaxSumHead()


class DigitSumModel(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        self.cnn = CNNEnsemble(cfg)
        self.head = make_head(cfg)

    def head_forward(self, digit_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(N, L, 10) logits, (N,) lengths -> (N, L) float64 running sums (see the module docstring)."""
        if digit_logits.dim() != 3 or digit_logits.shape[-1] != 10:
            raise ValueError(f"digit_logits must be (N, L, 10), got {tuple(digit_logits.shape)}")
        return self.head(digit_logits, lengths)

    def forward(self, images: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, L, 28, 28) float images -> (sums (N,), running (N, L), digit_logits (N, L, 10)).

        Used by joint fine-tuning, where gradients flow from the sum into the CNN.
        """
        n, length = images.shape[:2]
        logits = self.cnn(images.reshape(n * length, 1, 28, 28)).reshape(n, length, 10)
        running = self.head_forward(logits, lengths)
        return final_sums(running, lengths), running, logits


def final_sums(running: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """running[i, lengths[i] - 1] for every sequence."""
    return running.gather(1, (lengths.to(running.device) - 1).unsqueeze(1)).squeeze(1)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _selftest() -> None:  # python -m core.model: a shape check that needs no data
    model = DigitSumModel(ModelConfig()).eval()
    x = torch.rand(6, 1, 28, 28)
    logits = model.cnn(x)
    running = model.head_forward(logits.reshape(2, 3, 10), torch.tensor([3, 2]))
    print(tuple(logits.shape), tuple(running.shape), count_parameters(model), "parameters")


if __name__ == "__main__":
    _selftest()

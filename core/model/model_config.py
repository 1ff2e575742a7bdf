"""Model configuration: the heads, the devices, and ModelConfig (stored in every checkpoint)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

import torch

from core.constants import DEVICES

HEADS = ("lstm", "lstm-final", "deepsets", "argmax-sum")


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
    members: int = 1  # CNN ensemble size: the members' calibrated probabilities are averaged (cnn.py)
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


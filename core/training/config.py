"""Training configuration, presets and the entry point `train()`; the loop lives in core/trainer.py.

Phase 1 trains the CNN on digit labels, phase 2 the sequence head on sum labels, phase 3 (optional)
both jointly; model selection on val. `python -m scripts.train` is a thin CLI over make_config + train.
"""

from __future__ import annotations

import signal
import threading
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from core.model import DEVICES, HEADS, ModelConfig
from core.training.loop import Trainer, TrainingInterrupted

__all__ = ["OVERRIDES", "OVERRIDE_FIELDS", "Override", "PRESETS", "TrainConfig", "TrainingInterrupted", "add_override_flags",
           "flag", "make_config", "override_argv", "overrides_from_args", "train"]


@dataclass
class TrainConfig:
    preset: str = "default"
    head: str = "lstm"
    epochs_cnn: int = 15
    epochs_head: int = 4
    epochs_joint: int = 0
    min_len: int = 1  # training sequence lengths, inclusive; recorded in the checkpoint
    max_len: int = 10
    lr: float = 0.1  # peak LR of the CNN (SGD + Nesterov, one-cycle); the joint phase uses lr / 20
    batch_size: int = 128  # CNN images per step, global over DDP ranks
    device: str = "auto"
    seed: int = 0
    lr_head: float = 3e-3  # Adam LR of the head, cosine-decayed
    head_batch: int = 256  # sequences per head step
    head_steps: int = 300  # head steps per epoch
    joint_batch: int = 32  # sequences per joint step
    joint_steps: int = 200
    train_subset: int = 0  # 0: the whole train split (55,000 images); else a seeded subset
    val_subset: int = 0  # 0: the whole val split (5,000 images)
    val_sequences: int = 2000  # val sequences (lengths min_len..max_len) for val MAE
    # The head learns from cached logits of the clean train images plus this many augmented views of
    # each: on clean train images the CNN is almost never wrong or unsure, so without harder views the
    # head would never see the uncertain digits it must weigh on test images.
    head_views: int = 1
    # Start from the CNN of an existing checkpoint (same widths/members), e.g. to train another head on
    # the shipped CNN with epochs_cnn=0 instead of retraining it: "" = train the CNN from scratch.
    init_cnn: str = ""
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    members: int = 1  # CNN ensemble size
    label_smoothing: float = 0.1
    weight_decay: float = 5e-4
    aug_rotate: float = 10.0  # degrees, uniform +-
    aug_scale: float = 0.1  # relative, uniform +-
    aug_shift: float = 2.5  # pixels, uniform +-

    def validate(self) -> None:
        def check(ok: bool, name: str, allowed: str):
            if not ok:
                raise ValueError(f"TrainConfig.{name} must be {allowed}, got {getattr(self, name)!r}")

        check(self.preset in PRESETS, "preset", f"one of {sorted(PRESETS)}")
        check(self.head in HEADS, "head", f"one of {HEADS}")
        check(self.device in DEVICES, "device", f"one of {DEVICES}")
        for name in ("epochs_cnn", "epochs_head", "epochs_joint"):
            check(isinstance(getattr(self, name), int) and 0 <= getattr(self, name) <= 1000, name, "an int in 0..1000")
        check(isinstance(self.min_len, int) and 1 <= self.min_len <= 1000, "min_len", "an int in 1..1000")
        check(isinstance(self.max_len, int) and self.min_len <= self.max_len <= 1000, "max_len", "an int in min_len..1000")
        for name in ("lr", "lr_head"):
            check(0 < getattr(self, name) <= 1, name, "a float in (0, 1]")
        for name in ("batch_size", "head_batch", "joint_batch"):
            check(isinstance(getattr(self, name), int) and 1 <= getattr(self, name) <= 65536, name, "an int in 1..65536")
        for name in ("head_steps", "joint_steps", "val_sequences"):
            check(isinstance(getattr(self, name), int) and getattr(self, name) >= 1, name, "an int >= 1")
        check(isinstance(self.seed, int) and 0 <= self.seed < 2**31, "seed", "an int in 0..2^31-1")
        check(isinstance(self.members, int) and 1 <= self.members <= 16, "members", "an int in 1..16")
        check(self.train_subset >= 0 and self.val_subset >= 0, "train_subset", "0 (all) or a positive count")
        check(isinstance(self.head_views, int) and 0 <= self.head_views <= 16, "head_views", "an int in 0..16")

    def model_config(self) -> ModelConfig:
        return ModelConfig(head=self.head, widths=list(self.widths), members=self.members)


PRESETS: dict[str, TrainConfig] = {
    # Tests: well under 60 s on a 2-core CPU. Learns enough to beat a constant predictor by far.
    "smoke": TrainConfig(preset="smoke", epochs_cnn=1, epochs_head=2, head_steps=60, head_batch=128, batch_size=64,
                         train_subset=6000, val_subset=1000, val_sequences=500, widths=[16, 32, 64]),
    # The shipped checkpoint: at most 15 minutes wall-clock on the 2-core CPU, everything included.
    "default": TrainConfig(preset="default"),
    # Best quality, meant for a GPU: longer CNN schedule, a 3-member ensemble, joint fine-tuning.
    "full": TrainConfig(preset="full", epochs_cnn=40, epochs_head=8, epochs_joint=2, batch_size=256, lr=0.2,
                        members=3, head_steps=500),
}  # fmt: skip


@dataclass(frozen=True)
class Override:
    """A TrainConfig field that a user may set from a CLI or the UI: `--epochs-cnn 3`."""

    field: str
    type: type
    help: str
    choices: tuple | None = None

    @property
    def flag(self) -> str:
        return "--" + self.field.replace("_", "-")


# The one list of overridable fields. scripts.train, scripts.runs, run launch validation and the
# supervisor's command line are all derived from it.
OVERRIDES: tuple[Override, ...] = (
    Override("head", str, "sequence head (default: the preset's, lstm)", HEADS),
    Override("epochs_cnn", int, "phase 1 epochs: the CNN on digit labels"),
    Override("epochs_head", int, "phase 2 epochs: the head on sum labels (cached CNN logits)"),
    Override("epochs_joint", int, "phase 3 epochs: CNN and head fine-tuned jointly"),
    Override("min_len", int, "shortest training sequence (default 1)"),
    Override("max_len", int, "longest training sequence (default 10)"),
    Override("lr", float, "peak learning rate of the CNN (one-cycle)"),
    Override("batch_size", int, "CNN images per step (global across DDP ranks)"),
    Override("device", str, "auto: cuda, then mps, then cpu", DEVICES),
    Override("seed", int, "random seed (the whole run is reproducible from it)"),
    Override("init_cnn", str, "start from this checkpoint's CNN (with --epochs-cnn 0: train only a head)"),
)
OVERRIDE_FIELDS = tuple(o.field for o in OVERRIDES)


def flag(field_name: str) -> str:
    """The CLI flag of a TrainConfig field: epochs_cnn -> --epochs-cnn (how errors name a setting)."""
    return "--" + field_name.replace("_", "-")


def add_override_flags(parser) -> None:
    """Add one argparse flag per OVERRIDES entry (default None: keep the preset's value)."""
    for o in OVERRIDES:
        parser.add_argument(o.flag, dest=o.field, type=o.type, choices=o.choices, default=None, help=o.help)


def overrides_from_args(args) -> dict:
    """The overrides an argparse namespace sets (flags left out are not included)."""
    return {o.field: getattr(args, o.field) for o in OVERRIDES if getattr(args, o.field, None) is not None}


def override_argv(overrides: dict) -> list[str]:
    """Overrides back to flags, for a trainer started as a subprocess: {"lr": 0.1} -> ["--lr", "0.1"]."""
    unknown = sorted(set(overrides) - set(OVERRIDE_FIELDS))
    if unknown:
        raise ValueError(f"unknown training option(s) {unknown}; expected any of {list(OVERRIDE_FIELDS)}")
    return [arg for name, value in overrides.items() if value is not None for arg in (flag(name), str(value))]


def make_config(preset: str, **overrides) -> TrainConfig:
    """A validated copy of a preset with overrides (None values are ignored, as argparse leaves them)."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
    config = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    config.validate()
    return config


def train(config: TrainConfig, *, out_path, run_dir=None, progress=None, resume: bool = False,
          show_progress: bool = False) -> dict:  # fmt: skip
    """Train per `config`, write the best checkpoint to out_path (rank 0), return the final val metrics.

    run_dir: where metrics.jsonl and resume.pt go (rank 0 only); needed for --resume and for SIGTERM to
    leave a resumable state. progress(record) is called with each metrics record (format in the contract).
    Raises TrainingInterrupted on SIGTERM (after writing resume.pt), ValueError on a bad config.
    """
    config.validate()
    trainer = Trainer(config, out_path=Path(out_path), run_dir=Path(run_dir) if run_dir else None,
                      progress=progress, show_progress=show_progress)  # fmt: skip
    in_main = threading.current_thread() is threading.main_thread()  # signals can only be set there
    previous = signal.signal(signal.SIGTERM, trainer.request_stop) if in_main else None
    try:
        if resume:
            trainer.load_resume()
        return trainer.run()
    finally:
        if in_main:
            signal.signal(signal.SIGTERM, previous)
        trainer.close()

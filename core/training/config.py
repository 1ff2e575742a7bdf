"""What a training run is: TrainConfig, the presets, and OVERRIDES, the one list of settings a user
may change. scripts.train, scripts.runs, run validation and the supervisor derive their flags from it,
and errors name those flags, so a message reads the way the user typed the setting."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from core.model import DEVICES, HEADS, ModelConfig

__all__ = ["MAX_COLLECTION_WEIGHT", "OVERRIDES", "OVERRIDE_FIELDS", "Override", "PRESETS", "TrainConfig",
           "add_override_flags", "default_parent", "flag", "make_config", "override_argv", "overrides_from_args"]

MAX_COLLECTION_WEIGHT = 0.9  # every CNN batch keeps some MNIST: the model must still read MNIST


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
    val_subset: int = 0  # 0: the whole selection part of val (val_select, 2,500 images)
    val_sequences: int = 2000  # val sequences (lengths min_len..max_len) for val MAE
    # The head learns from cached logits of the clean train images plus this many augmented views of
    # each: on clean train images the CNN is almost never wrong or unsure, so without harder views the
    # head would never see the uncertain digits it must weigh on test images.
    head_views: int = 1
    # Start from the CNN of an existing checkpoint (same widths/members), e.g. to train another head on
    # the shipped CNN with epochs_cnn=0 instead of retraining it: "" = train the CNN from scratch.
    init_cnn: str = ""
    # Start from a whole model, CNN and head, taking its shape (head, widths, members) too: "" = none.
    # The `personal` preset defaults it to the active default model (default_parent).
    init_from: str = ""
    # The share of each CNN batch drawn from the collection's train part (core.collection.training_digits:
    # the user's own digits, label decisions applied), augmented as MNIST is; 0: MNIST only.
    collection_weight: float = 0.0
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])
    members: int = 1  # CNN ensemble size
    label_smoothing: float = 0.1
    weight_decay: float = 5e-4
    aug_rotate: float = 10.0  # degrees, uniform +-
    aug_scale: float = 0.1  # relative, uniform +-
    aug_shift: float = 2.5  # pixels, uniform +-
    aug_shear: float = 0.25  # horizontal slant, uniform +- (0.25: about 14 degrees)
    aug_elastic: float = 1.0  # std of the smooth elastic displacement, pixels (0: off)
    aug_thickness: float = 0.5  # blend toward a 3x3 dilation or erosion, uniform +- (0: off)
    aug_noise: float = 0.25  # Gaussian pixel noise on half the images, sigma uniform in [0, this] (0: off)

    def validate(self) -> None:
        """Raise ValueError naming the setting as a user types it: `--lr must be in (0, 1], got -1`."""

        def check(ok: bool, name: str, allowed: str):
            if not ok:
                label = flag(name) if name in OVERRIDE_FIELDS else name
                raise ValueError(f"{label} must be {allowed}, got {getattr(self, name)!r}")

        def is_int(name, lo, hi=None):
            v = getattr(self, name)
            return isinstance(v, int) and not isinstance(v, bool) and lo <= v and (hi is None or v <= hi)

        def is_rate(name):
            v = getattr(self, name)
            return isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= 1

        check(self.preset in PRESETS, "preset", f"one of {sorted(PRESETS)}")
        check(self.head in HEADS, "head", f"one of {HEADS}")
        check(self.device in DEVICES, "device", f"one of {DEVICES}")
        for name in ("epochs_cnn", "epochs_head", "epochs_joint"):
            check(is_int(name, 0, 1000), name, "an int in 0..1000")
        check(is_int("min_len", 1, 1000), "min_len", "an int in 1..1000")
        check(is_int("max_len", self.min_len, 1000), "max_len", f"an int in {self.min_len}..1000 (>= {flag('min_len')})")
        for name in ("lr", "lr_head"):
            check(is_rate(name), name, "in (0, 1]")
        for name in ("batch_size", "head_batch", "joint_batch"):
            check(is_int(name, 1, 65536), name, "an int in 1..65536")
        for name in ("head_steps", "joint_steps", "val_sequences"):
            check(is_int(name, 1), name, "an int >= 1")
        check(is_int("seed", 0, 2**31 - 1), "seed", "an int in 0..2^31-1")
        check(is_int("members", 1, 16), "members", "an int in 1..16")
        for name in ("train_subset", "val_subset"):
            check(is_int(name, 0), name, "0 (all) or a positive count")
        check(is_int("head_views", 0, 16), "head_views", "an int in 0..16")
        check(isinstance(self.label_smoothing, (int, float)) and not isinstance(self.label_smoothing, bool)
              and 0 <= self.label_smoothing < 1, "label_smoothing", "in [0, 1)")
        for name, hi in (("aug_rotate", 180), ("aug_scale", 0.5), ("aug_shift", 14), ("aug_shear", 1), ("aug_elastic", 5),
                         ("aug_thickness", 1), ("aug_noise", 1)):
            check(isinstance(getattr(self, name), (int, float)) and 0 <= getattr(self, name) <= hi, name, f"in [0, {hi}]")
        check(isinstance(self.init_cnn, str), "init_cnn", "a checkpoint path or empty")
        check(not self.init_cnn or Path(self.init_cnn).is_file(), "init_cnn", "an existing checkpoint file")
        check(isinstance(self.init_from, str), "init_from", "a checkpoint path or empty")
        check(not self.init_from or Path(self.init_from).is_file(), "init_from", "an existing checkpoint file")
        check(not (self.init_from and self.init_cnn), "init_from", f"empty when {flag('init_cnn')} is set (one start)")
        check(isinstance(self.collection_weight, (int, float)) and not isinstance(self.collection_weight, bool)
              and 0 <= self.collection_weight <= MAX_COLLECTION_WEIGHT, "collection_weight",
              f"in [0, {MAX_COLLECTION_WEIGHT}] (0: MNIST only)")

    def model_config(self) -> ModelConfig:
        return ModelConfig(head=self.head, widths=list(self.widths), members=self.members)


PRESETS: dict[str, TrainConfig] = {
    # Tests: well under 60 s on a 2-core CPU. Learns enough to beat a constant predictor by far.
    "smoke": TrainConfig(preset="smoke", epochs_cnn=1, epochs_head=2, head_steps=60, head_batch=128, batch_size=64,
                         train_subset=6000, val_subset=1000, val_sequences=500, widths=[16, 32, 64]),
    # The shipped checkpoint: at most 30 minutes wall-clock on the 2-core CPU, everything included.
    "default": TrainConfig(preset="default", epochs_cnn=24),
    # Best quality, meant for a GPU: longer CNN schedule, a 3-member ensemble, joint fine-tuning.
    "full": TrainConfig(preset="full", epochs_cnn=40, epochs_head=8, epochs_joint=2, batch_size=256, lr=0.2,
                        members=3, head_steps=500),
    # A model of the user's own handwriting, within 5 minutes on the 2-core CPU: one short epoch of the
    # CNN from --init-from (default: the active default model) on MNIST train with the collection's train
    # part mixed into every batch, the head kept as it is; the temperature is refitted on val_calib.
    "personal": TrainConfig(preset="personal", epochs_cnn=1, epochs_head=0, lr=0.01, train_subset=38400,
                            collection_weight=0.5, val_sequences=1000),
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
    Override("init_from", str, "start from this whole model, CNN and head (personal: default the active default)"),
    Override("collection_weight", float, "share of each CNN batch from your collection's train part (0: off)"),
    Override("train_subset", int, "MNIST train images the CNN sees (0: all 55,000; a quick check takes a few)"),
    Override("members", int, "CNNs that read each digit (scripts.train: side by side on the same batches, default 1; "
                             "scripts.train_ensemble: apart, with their own seeds, default 3)"),
    Override("label_smoothing", float, "label smoothing of the CNN's loss (default 0.1; 0: plain cross-entropy)"),
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
        raise ValueError(f"--preset must be one of {sorted(PRESETS)}, got {preset!r} (unknown preset)")
    known = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown TrainConfig fields: {sorted(unknown)}")
    base = PRESETS[preset]
    config = replace(base, widths=list(base.widths), **{k: v for k, v in overrides.items() if v is not None})
    if config.preset == "personal" and not config.init_from and not config.init_cnn:
        config.init_from = default_parent()
    config.validate()
    if config.init_from:
        _take_parent_shape(config, explicit_head=overrides.get("head"))
    return config


def default_parent() -> str:
    """The model the personal preset starts from without --init-from: the active default model."""
    try:
        from core.promotion import active_default
    except ImportError:  # a checkout without promotion: the shipped default is the only default
        from core.paths import DEFAULT_CHECKPOINT

        return str(DEFAULT_CHECKPOINT)
    return str(active_default().path)


def _take_parent_shape(config: TrainConfig, explicit_head: str | None) -> None:
    """A whole model is continued as it is: its head, widths and members become the config's."""
    from core.model.checkpoint import CheckpointError, read_metadata

    try:
        shape = ModelConfig.from_dict(read_metadata(config.init_from)["model_config"])
    except (CheckpointError, TypeError, ValueError) as e:
        raise ValueError(f"{flag('init_from')}: {e}") from e
    if explicit_head not in (None, shape.head):
        raise ValueError(f"{flag('head')} {explicit_head} differs from the {flag('init_from')} model's head "
                         f"({shape.head}); leave {flag('head')} out")
    config.head, config.widths, config.members = shape.head, list(shape.widths), shape.members

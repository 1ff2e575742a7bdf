"""Training: the config, presets and overridable fields (config), the loop and its phases, the
metrics records that runs and the UI read."""

from core.training.config import (
    OVERRIDE_FIELDS,
    OVERRIDES,
    PRESETS,
    TrainConfig,
    TrainingInterrupted,
    add_override_flags,
    flag,
    make_config,
    override_argv,
    overrides_from_args,
    train,
)

__all__ = ["OVERRIDES", "OVERRIDE_FIELDS", "PRESETS", "TrainConfig", "TrainingInterrupted", "add_override_flags",
           "flag", "make_config", "override_argv", "overrides_from_args", "train"]

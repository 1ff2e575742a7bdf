"""Training, as a package: what a run is (config), how it runs (loop, phases, distributed) and what it
records (records), so core.runs and the dashboard depend on names here, not on the loop's insides."""

from core.training.config import (
    OVERRIDE_FIELDS,
    OVERRIDES,
    PRESETS,
    Override,
    TrainConfig,
    add_override_flags,
    flag,
    make_config,
    override_argv,
    overrides_from_args,
)
from core.training.loop import TrainingInterrupted, train

__all__ = ["OVERRIDES", "OVERRIDE_FIELDS", "Override", "PRESETS", "TrainConfig", "TrainingInterrupted",
           "add_override_flags", "flag", "make_config", "override_argv", "overrides_from_args", "train"]

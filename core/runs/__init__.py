"""Training runs launched from the UI or the CLI, as background processes tracked in SQLite.

`from core import runs; runs.launch({"preset": "smoke"})`. Modules: api (the functions below),
registry (the SQLite table and state machine), process (process identity and signals), reconcile
(registry vs. processes, shared by the API and the supervisor), supervisor (the detached queue runner).
"""
from core.runs.api import (
    DEFAULT_GRACE_S,
    DEVICES,
    LIVE,
    QUEUES,
    STATUSES,
    TERMINAL,
    TRANSITIONS,
    Run,
    RunError,
    TransitionError,
    cancel,
    check_transition,
    detect_gpus,
    ensure_supervisors,
    get,
    heads,
    launch,
    list_checkpoints,
    list_runs,
    log_tail,
    presets,
    read_metrics,
    reconcile,
    resume,
    runs_dir,
    validate_config,
    wait,
)

__all__ = ["DEFAULT_GRACE_S", "DEVICES", "LIVE", "QUEUES", "STATUSES", "TERMINAL", "TRANSITIONS", "Run", "RunError",
           "TransitionError", "cancel", "check_transition", "detect_gpus", "ensure_supervisors", "get", "heads",
           "launch", "list_checkpoints", "list_runs", "log_tail", "presets", "read_metrics", "reconcile", "resume",
           "runs_dir", "validate_config", "wait"]

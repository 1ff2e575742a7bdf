"""Training runs launched from the UI or the CLI, as background processes tracked in SQLite.

`from core import runs; runs.launch({"preset": "smoke"})`. Modules: api (the functions below),
registry (the SQLite table and state machine), process (process identity and signals), reconcile
(registry vs. processes, shared by the API and the supervisor), supervisor (the detached queue runner).
"""
from core.runs.api import *  # noqa: F403  (the public API, listed in api.__all__)
from core.runs.api import __all__  # noqa: F401

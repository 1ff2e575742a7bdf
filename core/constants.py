"""Facts that many layers need, in one torch-free place (core.runs and the CLIs import it without
loading torch): the devices, the run statuses, the suspect count and the original protocol."""

VERSION = "0.1.0"  # the package version (core.__version__), stored in checkpoints with the git commit

DEVICES = ("auto", "cpu", "cuda", "mps")  # "auto": cuda, then mps, then cpu
QUEUES = DEVICES[1:]  # the concrete devices: one run queue each

STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")  # a training run's life

SUSPECT_K = 30  # how many of the most suspect test images "set aside" removes by default

ORIGINAL_MAE = 0.838  # the original project: test MAE on the protocol below
ORIGINAL_PROTOCOL = {"length": 10, "count": 20_000, "seed": 0}

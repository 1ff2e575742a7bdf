"""Thread count for small, sequential torch work on the CPU."""

from __future__ import annotations

import contextlib
import threading

import torch

_threads_lock = threading.Lock()
_single_threaded = [0, 1]  # [callers inside one_thread, torch's thread count to restore]


@contextlib.contextmanager
def one_thread(device: torch.device):
    """Run the sequence head on one CPU thread: its steps are tiny matmuls (batch x 74 x 256), where
    OpenMP's hand-offs cost more than the work — up to 50x slower with two threads on a busy 2-core CPU
    (a length-1000 LSTM pass: 7 s instead of 0.1 s). Same results (checked bit for bit). Reentrant and
    thread-safe: torch's count is restored when the last caller leaves."""
    if device.type != "cpu":
        yield
        return
    with _threads_lock:
        if _single_threaded[0] == 0:
            _single_threaded[1] = torch.get_num_threads()
            torch.set_num_threads(1)
        _single_threaded[0] += 1
    try:
        yield
    finally:
        with _threads_lock:
            _single_threaded[0] -= 1
            if _single_threaded[0] == 0:
                torch.set_num_threads(_single_threaded[1])

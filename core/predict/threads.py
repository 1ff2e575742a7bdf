"""Torch's CPU thread count is one setting for the whole process, so the torch work of a predictor
(the CNN on all threads, a sequence head on one) runs one section at a time: a head's one-thread
section can never slow down a CNN pass of another session (Streamlit serves sessions from threads).
On a 2-core CPU two CNN passes side by side gain nothing anyway; on a GPU nothing is serialised."""

from __future__ import annotations

import contextlib
import threading

import torch

_torch_lock = threading.RLock()  # reentrant: a section may call another (a head inside a predict call)


@contextlib.contextmanager
def torch_section(device: torch.device, threads: int | None = None):
    """Run CPU torch work alone in this process, with `threads` threads (None: torch's own count),
    restoring the count afterwards."""
    if device.type != "cpu":
        yield
        return
    with _torch_lock:
        before = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)


def one_thread(device: torch.device):
    """The sequence head's section: its steps are tiny matmuls (batch x 74 x 256), where OpenMP's
    hand-offs cost more than the work — up to 50x slower with two threads on a busy 2-core CPU (a
    length-1000 LSTM pass: 7 s instead of 0.1 s). Same results (checked bit for bit)."""
    return torch_section(device, threads=1)

"""Derived seeds, in one place: one seeded whole (a training run, an evaluation set) hands each part
its own stream. numpy's SeedSequence hashes (seed, *path), so neighbouring parts get unrelated streams,
where seed + index would make (seed, index + 1) and (seed + 1, index) the same one."""

from __future__ import annotations

import numpy as np


def derive_seed(seed: int, *path: int) -> int:
    """A 63-bit seed (fits numpy and torch.Generator.manual_seed) for the part `path` of `seed`."""
    state = np.random.SeedSequence(int(seed), spawn_key=tuple(int(p) for p in path)).generate_state(1, np.uint64)[0]
    return int(state) & 0x7FFF_FFFF_FFFF_FFFF

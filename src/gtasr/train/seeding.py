"""Seeds derived from (run seed, purpose, rank, step): randomness as a function of position.

Every random draw of a training step (which crops, the degradation, n, eps,
dropout) comes from a generator seeded by where it happens in the run, not by
how the run got there. Resuming from a checkpoint, or computing a batch in a
different loader worker, therefore reproduces the same numbers bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

PURPOSES = {"data": 1, "degrade": 2, "objective": 3, "dropout": 4, "init": 5}


def derive_seed(seed: int, purpose: str, *parts: int) -> int:
    """A 63-bit seed that depends on the run seed, a named purpose and integer parts."""
    entropy = [int(seed) & 0xFFFFFFFF, PURPOSES[purpose], *(int(p) for p in parts)]
    state = np.random.SeedSequence(entropy).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A torch generator on ``device`` seeded with ``seed``."""
    return torch.Generator(device=device).manual_seed(seed)

"""Deterministic, collision-free seeds from (experiment name, repetition, iteration)."""
from __future__ import annotations

import hashlib
import random
import sys


def seed_for(experiment: str, rep: int, iteration: int | None = None, rank: int = 0) -> int:
    """A 32-bit seed (valid for numpy) that differs for every (experiment, rep, iteration, group rank).

    A cryptographic hash, unlike Python's `hash` or the original's sums of small numbers, gives the same
    seed in every process and on every rerun, and makes collisions as unlikely as 32 bits allow. Rank 0
    (and a run without MPI groups) has the key without a rank, so its seeds do not depend on the backend.
    """
    key = f"{experiment}\x00{rep}\x00{'reset' if iteration is None else iteration}"
    if rank:
        key += f"\x00rank {rank}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=4).digest(), "little")


def seed_global_generators(seed: int) -> None:
    """Seed `random` and, if the experiment uses it, numpy's global generator."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)

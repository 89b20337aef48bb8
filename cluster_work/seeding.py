"""Deterministic, collision-free seeds from (experiment name, repetition, iteration)."""
from __future__ import annotations

import hashlib
import random
import sys


def seed_for(experiment: str, rep: int, iteration: int | None = None) -> int:
    """A 32-bit seed (valid for numpy) that differs for every (experiment, rep, iteration).

    A cryptographic hash, unlike Python's `hash` or the original's sums of small numbers, gives the same
    seed in every process and on every rerun, and makes collisions as unlikely as 32 bits allow.
    """
    key = f"{experiment}\x00{rep}\x00{'reset' if iteration is None else iteration}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=4).digest(), "little")


def seed_global_generators(seed: int) -> None:
    """Seed `random` and, if the experiment uses it, numpy's global generator."""
    random.seed(seed)
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(seed)

"""Deterministic, collision-free seeds from (experiment name, repetition, iteration), and the seeding of
Python's and numpy's global generators with them.

Seeding the global generators costs ~9 us (Python's `random.seed` alone ~5: three passes over the
Mersenne Twister's 624 words), more than a walker's whole segment in many weighted ensembles. So the
walkers of a block are seeded lazily (`LazySeeding`): a segment runs without the seeding, and a look at
the generators' raw states (a memory compare, ~0.3 us) tells whether it drew from them; only one that did
is run again, from its state, with the generators seeded, so its results are exactly those of an always
seeded run, and from then on every segment of that class in this process is seeded first.
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import random
import struct
import sys
import weakref
from typing import Any

MT_WORDS = 624  # the Mersenne Twister's state: 624 32-bit words and a position (both generators use it)


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


Region = tuple[int, int]  # (address, bytes) of a generator's raw state in memory
PROBE_SEED = 20261201


@functools.lru_cache(maxsize=1)
def _python_random_region() -> Region | None:
    """Where `random`'s global generator keeps its position and 624 words (CPython's RandomObject: an int,
    then the words), found by looking for the words it holds after a known seed, and checked: a draw must
    change the bytes, the same seed must give them back. None where that does not hold (another Python)."""
    if sys.implementation.name != "cpython":
        return None
    generator = random._inst  # the instance behind random.random() and the rest
    saved = generator.getstate()
    try:
        generator.seed(PROBE_SEED)
        words = generator.getstate()[1][:MT_WORDS]
        memory = ctypes.string_at(id(generator), type(generator).__basicsize__)
        offset = memory.find(struct.pack(f"={MT_WORDS}I", *words))
        position = struct.pack("=i", MT_WORDS)  # a seeded generator draws its next word at position 624
        if offset < len(position) or memory[offset - len(position):offset] != position:
            return None
        region = (id(generator) + offset - len(position), len(position) + 4 * MT_WORDS)
        seeded = ctypes.string_at(*region)
        generator.random()
        drawn = ctypes.string_at(*region)
        generator.seed(PROBE_SEED)
        return region if drawn != seeded and ctypes.string_at(*region) == seeded else None
    finally:
        generator.setstate(saved)


def _numpy_region(numpy: Any) -> Region | None:
    """Where numpy's global MT19937 keeps its 624 words and position (its public `ctypes.state_address`),
    checked as `_python_random_region` is; None for another bit generator, or an older numpy."""
    get_bit_generator = getattr(numpy.random, "get_bit_generator", None)  # numpy >= 1.25
    if get_bit_generator is None:
        return None
    bit_generator = get_bit_generator()
    if type(bit_generator).__name__ != "MT19937":
        return None
    return _checked_numpy_region(numpy, bit_generator.ctypes.state_address)


@functools.lru_cache(maxsize=4)
def _checked_numpy_region(numpy: Any, address: int) -> Region | None:
    region = (address, 4 * MT_WORDS + 4)
    saved = numpy.random.get_state()
    try:
        numpy.random.seed(PROBE_SEED)
        seeded = ctypes.string_at(*region)
        expected = numpy.random.get_state()[1].astype("=u4").tobytes() + struct.pack("=i", MT_WORDS)
        numpy.random.random_sample()
        drawn = ctypes.string_at(*region)
        numpy.random.seed(PROBE_SEED)
        return region if seeded == expected != drawn and ctypes.string_at(*region) == seeded else None
    finally:
        numpy.random.set_state(saved)


def _view(region: Region) -> Any:
    """The bytes of `region`, read again at each `.raw` (0.1 us for a generator's 2,500)."""
    return (ctypes.c_char * region[1]).from_address(region[0])


_DRAWS_FROM_GLOBALS: weakref.WeakSet[type] = weakref.WeakSet()  # classes seen drawing: seeded eagerly here


class LazySeeding:
    """The seeding of the global generators for the walker segments of one block (see the module docstring).

    `seed(s)` seeds them where this block is eager, and only before its first segment where it is lazy;
    after each segment, `clean()` says whether the segment may stand: True if the block is eager or the
    generators are untouched since that seeding; False if a lazy segment drew from them, and then the block
    turns eager, so the caller runs that segment again (from its state) and `seed` seeds from then on.

    Lazy only where every look is possible (CPython, numpy's default global generator) and `allowed`: not
    in an MPI group, whose ranks must run the same segments (a segment may hold collectives). Its invariant:
    while lazy, the generators are as that first seeding left them (which also cleared their cached
    Gaussians), so a segment that leaves their raw states unchanged did not draw from them. (A segment that
    draws and then puts the very state back, with `setstate`, is not seen; its draws are not reproducible.)
    """

    def __init__(self, experiment_class: type, allowed: bool = True):
        self._class = experiment_class
        self._numpy = sys.modules.get("numpy")
        self._views: list[Any] | None = None  # None: eager
        if allowed and experiment_class not in _DRAWS_FROM_GLOBALS:
            regions = [_python_random_region(), _numpy_region(self._numpy) if self._numpy else None]
            if regions[0] is not None and (self._numpy is None or regions[1] is not None):
                # numpy's bit generator held for the block, so the memory looked at stays its own
                self._bit_generator = self._numpy.random.get_bit_generator() if self._numpy else None
                self._views = [_view(region) for region in regions if region is not None]
        self._seeded: list[bytes] = []

    @property
    def eager(self) -> bool:
        return self._views is None

    def seed(self, seed: int) -> None:
        if self._views is None:
            seed_global_generators(seed)
        elif not self._seeded:  # the first segment of a lazy block: seeded once, its state remembered
            seed_global_generators(seed)
            self._seeded = [view.raw for view in self._views]

    def clean(self) -> bool:
        if self._views is None or ([view.raw for view in self._views] == self._seeded
                                   and sys.modules.get("numpy") is self._numpy):
            return True
        _DRAWS_FROM_GLOBALS.add(self._class)
        self._views = None
        return False

"""Python's cyclic garbage collector around bulk reads and huge indexes (10^5 - 10^6 objects, none in a cycle).

Making that many objects triggers the collector's passes, each walking every object still alive: 30 - 40% of a
bulk read (`compact_bulk`, `load_results`) and ~1.3 s of planning a half-done 10^6-point sweep from its folder
index. A read pauses it (`paused`); an index kept for the rest of a command-line process is frozen out of its
passes (`freeze_large`), only where that process opted in (`allow_freezing`).
"""
from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

FROZEN_FROM = 100_000  # experiments of an index past which its objects are left out of the collector's passes
_freezing = False  # set by the command line only (`allow_freezing`): a library user's process keeps its collector as is


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The collector off while a bulk read makes its objects; as it was afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def allow_freezing() -> None:
    """Let this process freeze a large index's objects out of the collector (`gc.freeze`, for the process's life).
    Only a command-line process opts in: it ends with its command, while in a long-lived one (a notebook) the
    freeze would also keep any object then alive from ever being collected as part of a cycle."""
    global _freezing
    _freezing = True


def freeze_large(experiments: int) -> None:
    """Freeze every object now alive (an index of `experiments` just read among them) out of the collector's
    passes, where the process allowed it and the index is large: its passes over it would cost as much again as
    the work it serves."""
    if _freezing and experiments > FROZEN_FROM:
        gc.freeze()

"""Counting finished iterations where they happen, for the live display on rank 0 / the main process.

The runner calls `iteration_done()` after each saved row. What that does depends on where it runs:
in the main process it adds to a counter; in a local worker process it adds to a counter shared with
the parent; on an MPI worker it sends rank 0 a small message at most twice a second.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

_sink: Callable[[int], None] | None = None


def iteration_done() -> None:
    if _sink is not None:
        _sink(1)


def report_to(sink: Callable[[int], None] | None) -> None:
    """Send this process's iteration counts to `sink` (None: nowhere)."""
    global _sink
    _sink = sink


class Counter:
    """A thread-safe count of iterations: the main process's sink, read by the display."""

    def __init__(self) -> None:
        self._value = 0
        self._lock = threading.Lock()

    def add(self, count: int) -> None:
        with self._lock:
            self._value += count

    @property
    def value(self) -> int:
        return self._value

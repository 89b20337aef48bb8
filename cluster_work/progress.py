"""Counting saved iterations for the live display, in the process that shows it.

Each backend hands its items a `TaskContext.iteration_done` that ends up here: in this process directly,
from local worker processes through a shared value, from MPI workers through a small message to rank 0
at most twice a second.
"""
from __future__ import annotations

import threading


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

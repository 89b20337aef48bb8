"""Graceful stop on SIGINT/SIGTERM: finish or discard the iteration in flight, then stop.

The first signal sets a flag that the runner checks between iterations; a second one in the
process that installed `handle_stop_signals(hard_second=True)` stops at once.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

_stop = threading.Event()
_shared_stop: Any = None  # a multiprocessing.Event set by the parent of local worker processes


def stop_requested() -> bool:
    return _stop.is_set() or (_shared_stop is not None and _shared_stop.is_set())


def follow_shared_stop(event: Any) -> None:
    """In a worker process: also stop when the parent sets `event` (no signal needed)."""
    global _shared_stop
    _shared_stop = event


def request_stop() -> None:
    _stop.set()


def handle_stop_signals(hard_second: bool, on_first: Callable[[], None] | None = None) -> None:
    """Install handlers for SIGINT, SIGTERM and SIGUSR1 (Slurm's warning before a time limit, which
    mpiexec forwards to every rank); only possible in the main thread."""
    def handler(signum: int, frame: object) -> None:
        if _stop.is_set() and hard_second:
            raise KeyboardInterrupt
        first = not _stop.is_set()
        request_stop()
        if first and on_first is not None:
            on_first()

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1):
        signal.signal(signum, handler)

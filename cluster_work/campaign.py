"""The campaign loop on rank 0: keep the executor just busy with what a driver hands out, and give the
driver every outcome. The driver alone decides (what runs next, what is cancelled); this loop only moves
items and outcomes, so a plain sweep, a steered campaign and a weighted ensemble share it.

A driver's decisions must depend only on outcomes, never on the order they arrive in (the executor's
order is whatever finished first): it decides at points it defines itself (an iteration's last block
back, a rung complete), so a campaign makes the same decisions on every backend and after a restart.
"""
from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from .backends.base import Executor
from .stopping import request_stop, stop_requested
from .vocabulary import OutcomeKind


class Driver(Protocol):
    """What decides a campaign (see the module docstring)."""

    def start(self) -> Iterable[Any]:
        """The first items (may be lazy: a sweep of 10^6 segments is made as workers free up)."""
        ...

    def on_outcome(self, outcome: Any) -> Iterable[Any]:
        """Take one outcome; return the items it makes ready to run."""
        ...

    def cancellations(self) -> list[int]:
        """Items (by index) to cancel now: a running one stops after its current iteration."""
        ...


class PlainSweep:
    """A fixed list of segments, run once each: the driver of a sweep without steering."""

    def __init__(self, segments: Iterable[Any]):
        self._segments = segments

    def start(self) -> Iterable[Any]:
        return self._segments

    def on_outcome(self, outcome: Any) -> Iterable[Any]:
        return ()

    def cancellations(self) -> list[int]:
        return []


def drive(driver: Driver, executor: Executor, on_outcome: Callable[[Any], None] = lambda o: None) -> None:
    """Run `driver`'s campaign on `executor` until nothing is ready and nothing is in flight, or the run
    stops (then the items in flight end as interrupted). A store failure (full disk...) stops it at once."""
    ready: collections.deque[Iterator[Any]] = collections.deque([iter(driver.start())])
    while True:
        while ready and not stop_requested() and executor.has_capacity():
            item = next(ready[0], None)
            if item is None:
                ready.popleft()
            else:
                executor.submit(item)
        if not executor.in_flight():
            return
        outcome = executor.next_outcome()
        on_outcome(outcome)
        ready.append(iter(driver.on_outcome(outcome)))
        for index in driver.cancellations():
            executor.cancel(index)
        if getattr(outcome, "kind", None) == OutcomeKind.STORE_FAILURE and not stop_requested():
            request_stop()
            executor.forward_stop()

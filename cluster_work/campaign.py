"""The campaign loop on rank 0: keep the executor just busy with what a driver hands out, and give the
driver every outcome. The driver alone decides (what runs next, what is cancelled, whether its own store
failed: one `vocabulary.Step` per outcome); this loop only moves items and outcomes, so a plain sweep, a
steered campaign and a weighted ensemble share it. Outcomes are never rewritten on the way.

A driver's decisions must depend only on outcomes, never on the order they arrive in (the executor's
order is whatever finished first): it decides at points it defines itself (an iteration's last block
back, a rung complete), so a campaign makes the same decisions on every backend and after a restart.
"""
from __future__ import annotations

import collections
import dataclasses
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from .backends.base import Executor
from .vocabulary import Outcome, OutcomeKind, Segment, Step, WorkItem


class Driver(Protocol):
    """What decides a campaign (see the module docstring)."""

    def start(self) -> Iterable[WorkItem]:
        """The first items (may be lazy: a sweep of 10^6 segments is made as workers free up)."""
        ...

    def on_outcome(self, outcome: Outcome) -> Step:
        """Take one outcome (never change it); return what it leads to: the items it makes ready to run, the
        driver's items to cancel now, whether the driver's own store failed."""
        ...


NOTHING = Step()  # an outcome that leads to nothing


class PlainSweep:
    """A fixed list of segments, run once each: the driver of a sweep without steering. `ended` sees
    each of its outcomes (the summary counts these, not a campaign's)."""

    def __init__(self, segments: Iterable[WorkItem], ended: Callable[[Outcome], None] = lambda outcome: None):
        self._segments, self._ended = segments, ended

    def start(self) -> Iterable[WorkItem]:
        return self._segments

    def on_outcome(self, outcome: Outcome) -> Step:
        self._ended(outcome)
        return NOTHING


def drive(driver: Driver, executor: Executor) -> None:
    """Run `driver`'s campaign on `executor` until nothing is ready and nothing is in flight, or the run
    stops (then the items in flight end as interrupted). A store failure (full disk...) stops it at once: a
    segment's, or a driver's own (`Step.store_failed`)."""
    ready: collections.deque[Iterator[WorkItem]] = collections.deque([iter(driver.start())])
    while True:
        while ready and not executor.stop.requested() and executor.has_capacity():
            item = next(ready[0], None)
            if item is None:
                ready.popleft()
            else:
                executor.submit(item)
        if not executor.in_flight():
            return
        outcome = executor.next_outcome()
        step = driver.on_outcome(outcome)
        if not isinstance(step.run, (list, tuple)) or step.run:  # no empty one per outcome queued behind a huge sweep
            ready.append(iter(step.run))
        for index in step.cancel:
            executor.cancel(index)
        if (outcome.kind == OutcomeKind.STORE_FAILURE or step.store_failed) and not executor.stop.requested():
            executor.request_stop()


class Composite:
    """Several drivers in one run (a sweep's plain experiments, its ensembles, its steered searches):
    their items run side by side on one executor. Indices are renumbered on the way out, so that every
    item in flight has its own, and restored on the way back (in a copy: the executor's outcome stays as it
came), so that each driver sees its own. Segments
    are stamped with the run's id on the way out (`run_id`: what their attempts are recorded under)."""

    def __init__(self, drivers: Iterable[Driver], run_id: str = ""):
        self.drivers = list(drivers)
        self._stamp = {"run_id": run_id} if run_id else {}
        self._owner: dict[int, tuple[Driver, int]] = {}  # index in flight -> (driver, its own index)
        self._own: dict[tuple[int, int], int] = {}  # (driver number, its own index) -> index in flight
        self._next = 0

    def _renumbered(self, number: int, items: Iterable[WorkItem]) -> Iterator[WorkItem]:
        driver = self.drivers[number]
        for item in items:
            index = self._next
            self._next += 1
            self._owner[index] = (driver, item.index)
            self._own[number, item.index] = index
            yield dataclasses.replace(item, index=index, **(self._stamp if isinstance(item, Segment) else {}))

    def start(self) -> Iterable[WorkItem]:
        return itertools.chain.from_iterable(self._renumbered(n, d.start()) for n, d in enumerate(self.drivers))

    def on_outcome(self, outcome: Outcome) -> Step:
        """The step of the driver the outcome is for (a driver decides only on its own outcomes), in the
        run's indices: its items renumbered, its cancels of items still in flight."""
        driver, own = self._owner.pop(outcome.index)
        number = self.drivers.index(driver)
        del self._own[number, own]
        step = driver.on_outcome(dataclasses.replace(outcome, index=own))
        renumbered = self._renumbered(number, step.run)
        cancel = tuple(self._own[number, index] for index in step.cancel if (number, index) in self._own)
        return Step(list(renumbered) if isinstance(step.run, (list, tuple)) else renumbered, cancel, step.store_failed)

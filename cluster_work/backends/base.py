"""The executor interface: submit work, receive outcomes as work ends, cancel one running item.

An executor knows nothing of experiments or policies. It is built with one *task* (`task_context.Task`:
a picklable callable `task(item, context) -> outcome` that also says what an item whose worker died
ended as; in practice `runner.ExperimentTask`) and runs items with it: `vocabulary.WorkItem`s, a
`Segment` or a campaign kind's own item (a weighted ensemble's block of walkers), each with an integer
`index` unique among the items in flight. Its lifecycle is its own business:
`with executor:` starts what it needs (worker processes, MPI workers serving) and releases everything
on the way out, whatever happened in between.

Invariants every backend keeps (tests/test_backends.py checks them against each one):
- every submitted item yields exactly one outcome from `next_outcome`, always: an item that a stop or
  a cancel reaches before it starts is still handed to the task, whose context then says so at once
  (the task, not the backend, knows what such an outcome looks like);
- `cancel(index)`: a running item stops after its current iteration, and its outcome says how far it
  got; cancelling an item that already ended does nothing;
- outcomes come in the order items end, which a caller must never let decide anything (see campaign).

The stop flag an executor obeys is its collaborator (`stop`, given to its constructor; by default this
process's, which its signal handlers set): its items see it through their context, and `request_stop`
sets it and tells the workers.

What an executor shows of itself (its iterations done, busy and stalled workers for the live display; its
description and hosts for the run's record) is apart from that interface, in its `figures`.
"""
from __future__ import annotations

import abc
import collections
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from ..liveness import Silence
from ..stopping import PROCESS_STOP, StopFlag
from ..task_context import RunItem, Task, TaskContext
from ..vocabulary import Outcome, WorkItem

__all__ = ["Executor", "Figures", "RunItem", "Task", "TaskContext"]


def _this_host() -> list[str]:
    return [socket.gethostname()]


@dataclass(frozen=True)
class Figures:
    """What an executor shows of itself, read by the live display (from its own thread: any thread may ask)
    and by the run's provenance record; nothing here changes what the executor does."""

    iterations_done: Callable[[], int]  # iterations saved so far by the executor's items
    busy_seconds: Callable[[], float]  # worker-seconds busy so far (a `busy.BusyClock`'s): a worker counts from
    # the hand-out of its first item to the outcome of its last; the live display averages it over a while
    describe: Callable[[], str]  # its workers, in words ("2 local worker processes ...")
    stalled: Callable[[], list[Silence]] = list  # workers stalled as last seen (see `Executor.watch_stalls`)
    hosts: Callable[[], list[str]] = _this_host  # the host of every process that runs items


class Executor(abc.ABC):
    """Runs items with its task on its workers; see the module docstring for the contract."""

    workers: int = 1
    _task: RunItem  # what every backend runs its items with (set by each backend's constructor)
    figures: Figures  # what it shows of itself (set by each backend's constructor)
    stop: StopFlag = PROCESS_STOP  # the run's stop flag (given to each backend's constructor)

    def __enter__(self) -> Executor | None:
        """Start what it needs; the executor to submit to, or None in a process that served as one of its
        workers until it was released (an MPI worker rank: see `backends.mpi`)."""
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    @abc.abstractmethod
    def submit(self, item: WorkItem) -> None:
        """Queue `item` (it starts when a worker is free)."""

    @abc.abstractmethod
    def next_outcome(self) -> Outcome:
        """Wait for the next item to end and return its outcome; an error if nothing is in flight."""

    @abc.abstractmethod
    def in_flight(self) -> int:
        """Items submitted whose outcome has not been returned yet (queued or running)."""

    @abc.abstractmethod
    def cancel(self, index: int) -> None:
        """Cancel item `index`: not started if queued; stopped after its current iteration if running."""

    def _cancel_queued(self, queue: collections.deque[WorkItem], ready: collections.deque[Outcome], index: int) -> bool:
        """If item `index` still waits in `queue` (not handed to a worker), take it out and put its outcome
        in `ready` at once: the task, told it is cancelled, answers without touching any file."""
        for item in queue:
            if item.index == index:
                queue.remove(item)
                ready.append(self._cancelled_outcome(item))
                return True
        return False

    def _cancelled_outcome(self, item: WorkItem) -> Outcome:
        """The outcome of `item` cancelled before it started: the task, told so, answers without touching a file."""
        return self._task(item, TaskContext(cancelled=lambda: True))

    def has_capacity(self) -> bool:
        """Whether a submitted item would start at once (keep at most a few queued per worker)."""
        return self.in_flight() < 2 * self.workers

    def forward_stop(self) -> None:
        """Pass a stop request on to workers that did not get the signal themselves."""

    def request_stop(self) -> None:
        """Stop the run (a store failure, the failure limit): set its flag and tell the workers."""
        self.stop.request()
        self.forward_stop()

    def shutdown(self) -> None:
        """Release the workers."""

    def terminate(self) -> None:
        """Stop at once (a second Ctrl-C): in-flight iterations are lost, saved rows stay."""

    def watch_stalls(self, limit: float | None, on_change: Callable[[list[Silence]], None] | None = None) -> None:
        """Workers silent for long (see `liveness`): with `limit` (seconds), the run ends once one is silent
        longer (next_outcome raises `liveness.Stalled`); `on_change` hears the list of stalled workers
        whenever it changes (`figures.stalled` says it too). Only MPI workers can fall silent unseen: the
        others do nothing here."""

    def abandon(self, status: int) -> NoReturn:
        """End the whole run now with exit `status`, not waiting for workers that stopped answering."""
        self.terminate()
        raise SystemExit(status)

    def ending(self, status: int) -> None:
        """The exit status the run ends with, told before leaving `with executor:` (an MPI executor that
        cannot finalize MPI ends the process with it)."""

    def stop_hint(self) -> str | None:
        """A line worth adding when the run is told to stop (what might have caused it), or None."""
        return None

    def world_size(self) -> int | None:
        """The number of MPI ranks, or None without MPI."""
        return None

"""The executor interface: submit work, receive outcomes as work ends, cancel one running item.

An executor knows nothing of experiments or policies. It is built with one *task* (a picklable
callable `task(item, context) -> outcome`, in practice `runner.execute` bound to the experiment class)
and runs items with it: a `Segment`, or any other picklable object with an integer `index` unique among
the items in flight (a weighted ensemble's block of walkers, say). Its lifecycle is its own business:
`with executor:` starts what it needs (worker processes, MPI workers serving) and releases everything
on the way out, whatever happened in between.

Invariants every backend keeps (tests/test_backends.py checks them against each one):
- every submitted item yields exactly one outcome from `next_outcome`, always: an item that a stop or
  a cancel reaches before it starts is still handed to the task, whose context then says so at once
  (the task, not the backend, knows what such an outcome looks like);
- `cancel(index)`: a running item stops after its current iteration, and its outcome says how far it
  got; cancelling an item that already ended does nothing;
- outcomes come in the order items end, which a caller must never let decide anything (see campaign).
"""
from __future__ import annotations

import abc
import socket
from collections.abc import Callable
from typing import Any, NoReturn

from ..liveness import Silence
from ..task_context import TaskContext

Task = Callable[[Any, TaskContext], Any]


class Executor(abc.ABC):
    """Runs items with its task on its workers; see the module docstring for the contract."""

    workers: int = 1
    _task: Task  # what every backend runs its items with (set by each backend's constructor)

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    @abc.abstractmethod
    def submit(self, item: Any) -> None:
        """Queue `item` (it starts when a worker is free)."""

    @abc.abstractmethod
    def next_outcome(self) -> Any:
        """Wait for the next item to end and return its outcome; an error if nothing is in flight."""

    @abc.abstractmethod
    def in_flight(self) -> int:
        """Items submitted whose outcome has not been returned yet (queued or running)."""

    @abc.abstractmethod
    def cancel(self, index: int) -> None:
        """Cancel item `index`: not started if queued; stopped after its current iteration if running."""

    def _cancel_queued(self, queue: Any, ready: Any, index: int) -> bool:
        """If item `index` still waits in `queue` (not handed to a worker), take it out and put its outcome
        in `ready` at once: the task, told it is cancelled, answers without touching any file."""
        for item in queue:
            if item.index == index:
                queue.remove(item)
                ready.append(self._cancelled_outcome(item))
                return True
        return False

    def _cancelled_outcome(self, item: Any) -> Any:
        """The outcome of `item` cancelled before it started: the task, told so, answers without touching a file."""
        return self._task(item, TaskContext(cancelled=lambda: True))

    def has_capacity(self) -> bool:
        """Whether a submitted item would start at once (keep at most a few queued per worker)."""
        return self.in_flight() < 2 * self.workers

    def forward_stop(self) -> None:
        """Pass a stop request on to workers that did not get the signal themselves."""

    def shutdown(self) -> None:
        """Release the workers."""

    def terminate(self) -> None:
        """Stop at once (a second Ctrl-C): in-flight iterations are lost, saved rows stay."""

    def watch_stalls(self, limit: float | None, on_change: Callable[[list[Silence]], None] | None = None) -> None:
        """Workers silent for long (see `liveness`): with `limit` (seconds), the run ends once one is silent
        longer (next_outcome raises `liveness.Stalled`); `on_change` hears the list of stalled workers
        whenever it changes. Only MPI workers can fall silent unseen: the others do nothing here."""

    def stalled(self) -> list[Silence]:
        """The workers stalled as last seen (any thread may ask)."""
        return []

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

    def describe(self) -> str:
        return f"{self.workers} worker(s)"

    def hosts(self) -> list[str]:
        """The host of every process that runs items (for the run's provenance record)."""
        return [socket.gethostname()]

    def world_size(self) -> int | None:
        """The number of MPI ranks, or None without MPI."""
        return None

    @abc.abstractmethod
    def iterations_done(self) -> int:
        """Iterations saved so far by this executor's items (read by the live display)."""

    @abc.abstractmethod
    def busy(self) -> int:
        """Workers running an item right now."""

    @abc.abstractmethod
    def busy_seconds(self) -> float:
        """Worker-seconds spent busy so far (a `busy.BusyClock`'s): a worker counts from the hand-out of its
        first item to the outcome of its last. The live display shows its average over a while, which a
        snapshot of `busy` misses when items take microseconds."""

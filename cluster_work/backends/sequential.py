"""The in-process backend: every item runs in this process, one after the other, when its outcome is
asked for (breakpoints and prints just work)."""
from __future__ import annotations

import collections
from typing import Any

from ..busy import BusyClock
from ..progress import Counter
from ..stopping import PROCESS_STOP, StopFlag
from ..vocabulary import Outcome, WorkItem
from .base import Executor, Figures, RunItem, TaskContext


class SequentialExecutor(Executor):
    """Runs each submitted item in this process when `next_outcome` is called, in submission order."""

    def __init__(self, task: RunItem, comm: Any = None, stop: StopFlag = PROCESS_STOP):
        self._task, self.stop = task, stop
        self._comm = comm  # what the experiment sees as self._COMM (COMM_SELF on a lone MPI rank 0)
        self._queue: collections.deque[WorkItem] = collections.deque()
        self._cancelled: set[int] = set()
        self._counter = Counter()
        self._running = False
        self._busy = BusyClock()
        self.figures = Figures(iterations_done=lambda: self._counter.value, busy_seconds=self._busy.seconds,
                               describe=lambda: "this process")

    def submit(self, item: WorkItem) -> None:
        self._queue.append(item)

    def in_flight(self) -> int:
        return len(self._queue)

    def has_capacity(self) -> bool:
        return not self._queue  # nothing runs ahead of its outcome: keep the campaign's choices open

    def cancel(self, index: int) -> None:
        if any(item.index == index for item in self._queue):
            self._cancelled.add(index)

    def next_outcome(self) -> Outcome:
        item = self._queue.popleft()
        self._running = True
        self._busy.change(+1)
        try:
            return self.run(item)
        finally:
            self._running = False
            self._busy.change(-1)
            self._cancelled.discard(item.index)

    def run(self, item: WorkItem, comm: Any = None) -> Outcome:
        """Run one item here at once (the MPI backend's rank 0 runs its own items through this)."""
        context = TaskContext(comm=comm if comm is not None else self._comm, stop_requested=self.stop.requested,
                              cancelled=lambda: item.index in self._cancelled,
                              iteration_done=lambda: self._counter.add(1))
        return self._task(item, context)

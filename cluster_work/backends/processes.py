"""Local worker processes (no MPI): `-n N` runs items in N processes; a worker that dies fails only its
own item.

The task and the items travel with cloudpickle, so experiment classes defined in a script's `__main__`
work under every start method. What the parent and its workers share: a stop event, the count of
saved iterations (for the live display) and a small ring of cancelled item indices with their count,
which a worker's `cancelled()` reads between iterations (the ring only once the count moved).
"""
from __future__ import annotations

import collections
import concurrent.futures as futures
import contextlib
import multiprocessing
import multiprocessing.util
import os
import signal
from collections.abc import Iterator
from typing import Any

from .. import stopping
from ..durability import committer
from ..orphans import exit_when_orphaned
from .base import Executor, Task, TaskContext

CANCEL_RING = 256  # the most recent cancels a worker can see; far more than items in flight (2 per worker)
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}

_worker: dict[str, Any] = {}  # in a worker process: its task and what it shares with the parent


def _init_worker(pickled_task: bytes, stop_event: Any, iterations: Any, cancelled: Any, cancels: Any,
                 main_pid: int) -> None:
    import cloudpickle

    exit_when_orphaned(f"worker process {os.getpid()}", pid=main_pid)  # a kill -9 of the run ends its workers
    stopping.handle_stop_signals(hard_second=False)  # a signal only asks to stop after the iteration
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked since the spawn: see _spawning
    multiprocessing.util.Finalize(None, committer.commit, exitpriority=10)  # durable before the worker leaves

    def count() -> None:
        with iterations.get_lock():
            iterations.value += 1

    _worker.update(task=cloudpickle.loads(pickled_task), stop=stop_event, count=count, cancelled=cancelled,
                   cancels=cancels)


class _Cancelled:
    """A worker's `cancelled()` for item `index`: reads the parent's count of cancels each time (one
    shared integer), and looks through the ring of cancelled indices only when that count moved."""

    def __init__(self, index: int):
        self.index, self.seen, self.found = index, -1, False

    def __call__(self) -> bool:
        count = _worker["cancels"].value
        if count != self.seen and not self.found:
            self.seen, self.found = count, self.index in _worker["cancelled"][:]
        return self.found


def _run_in_worker(pickled_item: bytes) -> Any:
    import cloudpickle

    item = cloudpickle.loads(pickled_item)
    stop = _worker["stop"]
    context = TaskContext(stop_requested=lambda: stop.is_set() or stopping.stop_requested(),
                          cancelled=_Cancelled(item.index), iteration_done=_worker["count"])
    return _worker["task"](item, context)


@contextlib.contextmanager
def _spawning() -> Iterator[None]:
    """Block SIGINT/SIGTERM while the pool may start processes: they inherit the blocked mask (through
    the forkserver too) and unblock it once their handler is installed, so a Ctrl-C that reaches a
    worker still importing is delivered to that handler instead of killing it with a traceback."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class LocalProcessExecutor(Executor):
    """Runs items in `workers` local processes, at most two per worker handed to the pool at a time
    (the rest wait here, where a cancel can still take them back)."""

    def __init__(self, task: Task, workers: int, mp_context: str | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._task = task
        self._context_name = mp_context
        self._context = multiprocessing.get_context(mp_context)
        # made with the first pool, not here: they start multiprocessing's resource tracker, and until
        # jobs start a stop signal ends the run at once (see stopping.stop_signals_handled)
        self._shared: tuple[Any, Any, Any, Any] | None = None  # stop, iterations, cancel ring, its count
        self._queue: collections.deque[Any] = collections.deque()
        self._pending: dict[futures.Future[Any], Any] = {}
        self._ready: collections.deque[Any] = collections.deque()
        self._pool: futures.ProcessPoolExecutor | None = None
        self._pickled_task: bytes | None = None

    def describe(self) -> str:
        return f"{self.workers} local worker processes ({self._context_name or 'default'} start)"

    def submit(self, item: Any) -> None:
        self._queue.append(item)
        self._fill()

    def in_flight(self) -> int:
        return len(self._queue) + len(self._pending) + len(self._ready)

    def cancel(self, index: int) -> None:
        if self._cancel_queued(self._queue, self._ready, index):
            return
        if self._shared is not None and any(item.index == index for item in self._pending.values()):
            ring, count = self._shared[2], self._shared[3]
            ring[count.value % CANCEL_RING] = index  # the entry first, then the count a worker watches
            count.value += 1

    def next_outcome(self) -> Any:
        while not self._ready:
            if not self._pending:
                raise RuntimeError("next_outcome() with nothing in flight")
            done, _ = futures.wait(self._pending, return_when=futures.FIRST_COMPLETED)
            broken = False
            for future in done:
                item = self._pending.pop(future)
                try:
                    self._ready.append(future.result())
                except futures.process.BrokenProcessPool:
                    broken = True
                    self._ready.append(self._task.lost(item, stopping.stop_requested()))  # type: ignore[attr-defined]
            if broken:  # every item still in the pool lost its worker too: report, go on with a new pool
                for item in self._pending.values():
                    self._ready.append(self._task.lost(item, stopping.stop_requested()))  # type: ignore[attr-defined]
                self._pending.clear()
                assert self._pool is not None
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = None
            self._fill()
        return self._ready.popleft()

    def _fill(self) -> None:
        """Hand queued items to the pool, keeping two per worker there."""
        import cloudpickle

        while self._queue and len(self._pending) < 2 * self.workers:
            item = self._queue.popleft()
            pool = self._pool or self._new_pool()
            with _spawning():  # submit starts worker processes on demand
                self._pending[pool.submit(_run_in_worker, cloudpickle.dumps(item))] = item

    def _new_pool(self) -> futures.ProcessPoolExecutor:
        import cloudpickle

        if self._shared is None:
            self._shared = (self._context.Event(), self._context.Value("q", 0),
                            self._context.Array("q", [-1] * CANCEL_RING, lock=False),
                            self._context.Value("q", 0, lock=False))
        if self._pickled_task is None:
            self._pickled_task = cloudpickle.dumps(self._task)
        self._pool = futures.ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_init_worker,
                                                 initargs=(self._pickled_task, *self._shared, os.getpid()))
        return self._pool

    def iterations_done(self) -> int:
        return int(self._shared[1].value) if self._shared is not None else 0

    def busy(self) -> int:
        # the pool marks items waiting in its call queue as running too
        return min(self.workers, sum(1 for future in list(self._pending) if future.running()))

    def forward_stop(self) -> None:
        if self._shared is not None:  # before the first pool, the workers check this process's flag
            self._shared[0].set()

    def terminate(self) -> None:
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            process.kill()
        self.shutdown()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

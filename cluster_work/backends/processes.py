"""Local worker processes (no MPI): `-n N` runs items in N processes; a worker that dies fails only the
item it was running.

Each worker has a connection of its own (`process_worker` is its side). This process hands an item to an
idle worker, and one more to a busy one (read the moment it finishes, instead of a round trip later);
the rest wait here, where a cancel can still take them back. So can an item a worker holds but has not
begun (`process_worker.Claims`): a cancel answers it at once, and at a sweep's end an idle worker takes
it over, so that it never waits behind a long item. A worker marks which item it began, so when one
dies (a segmentation fault in a C extension, the OOM killer's SIGKILL, `abort()`, `exit()`), this
process knows exactly what it ran: that item fails, named with the signal or exit status
(`deaths.describe_death`), and is recorded as failed in its repetition's status; the item the worker
had not begun goes back to the queue; a new worker takes over when there is work for it. A pool that
cannot keep a worker alive long enough to begin anything (a native crash at import, say) is an error.

The task and the items travel with cloudpickle, so experiment classes defined in a script's `__main__`
work under every start method (forkserver by default, see ClusterWork._MP_CONTEXT).
"""
from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
from collections.abc import Iterator
from typing import Any

from ..busy import BusyClock
from ..deaths import describe_death
from ..errors import ClusterWorkError
from ..stopping import PROCESS_STOP, StopFlag
from ..vocabulary import Outcome, WorkItem
from .base import Executor, Figures, Task
from .process_worker import CANCEL_RING, DONE, STOP_SIGNALS, TOKEN_BYTES, Claims, serve, unpickled_exception

log = logging.getLogger("cluster_work")

PREFETCH_BYTES = 64 * 1024  # a bigger item waits here for an idle worker: a send to a busy one could block us
LOOK_EVERY = 1.0  # seconds: how often a quiet pool checks that its workers live
DEATHS_AT_START = 3  # workers in a row that die before beginning anything: the pool cannot run, stop


@contextlib.contextmanager
def _spawning() -> Iterator[None]:
    """Block SIGINT/SIGTERM while starting a process: it inherits the blocked mask (through the
    forkserver too) and unblocks it once its handler is installed, so a Ctrl-C that reaches a worker
    still importing is delivered to that handler instead of killing it with a traceback."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class _Worker:
    """One worker process as this process sees it: its slot (in the shared `Claims`), and the items sent to
    it, in order, each with its token. `eof`: its connection is closed (it is dying: its sentinel says when
    it is dead)."""

    def __init__(self, process: Any, connection: Any, slot: int):
        self.process, self.connection, self.slot = process, connection, slot
        self.items: collections.deque[tuple[int, WorkItem]] = collections.deque()
        self.eof = False


class LocalProcessExecutor(Executor):
    """Runs items in up to `workers` local processes, started as work comes, at most two items per worker
    handed out at a time (see the module docstring)."""

    _task: Task  # its `lost` answers for an item whose worker died

    def __init__(self, task: Task, workers: int, mp_context: str | None = None, stop: StopFlag = PROCESS_STOP):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._task, self.stop = task, stop
        self._context_name = mp_context
        self._context = multiprocessing.get_context(mp_context)
        # made with the first worker, not here: they start multiprocessing's resource tracker, and until
        # jobs start a stop signal ends the run at once (see stopping.stop_signals_handled)
        self._shared: tuple[Any, Any, Any, Any] | None = None  # stop, iterations, cancel ring, its count
        self._claims: Claims | None = None  # per worker slot: the item it began, the item withdrawn from it
        self._pickled_task: bytes | None = None
        self._queue: collections.deque[WorkItem] = collections.deque()
        self._ready: collections.deque[Outcome] = collections.deque()
        self._running: list[_Worker] = []
        self._tokens = itertools.count()
        self._big: tuple[WorkItem, bytes] | None = None  # the queue's first item, pickled, when too big to prefetch
        self._deaths_at_start = 0
        self._busy = BusyClock()  # workers holding an item, over time
        self.figures = Figures(iterations_done=self._iterations_done, busy_seconds=self._busy.seconds,
                               describe=self._describe)

    def _describe(self) -> str:
        return f"{self.workers} local worker processes ({self._context_name or 'default'} start)"

    def submit(self, item: WorkItem) -> None:
        self._queue.append(item)
        self._fill()

    def in_flight(self) -> int:
        return len(self._queue) + sum(len(worker.items) for worker in self._running) + len(self._ready)

    def cancel(self, index: int) -> None:
        if self._cancel_queued(self._queue, self._ready, index):
            return
        for worker in self._running:
            held = next((item for _, item in worker.items if item.index == index), None)
            if held is not None:
                if worker.items[-1][1].index == index and (item := self._withdraw(worker)) is not None:
                    self._ready.append(self._cancelled_outcome(item))  # it had not begun it: answered here
                    return
                assert self._shared is not None
                ring, count = self._shared[2], self._shared[3]
                ring[count.value % CANCEL_RING] = index  # the entry first, then the count a worker watches
                count.value += 1
                log.debug("%s: cancelled; worker process %s stops it after its current iteration", held.label,
                          worker.process.pid)
                return

    def next_outcome(self) -> Outcome:
        while not self._ready:
            if not any(worker.items for worker in self._running):
                raise RuntimeError("next_outcome() with nothing in flight")
            watched: dict[Any, _Worker] = {}
            for worker in self._running:
                watched[worker.process.sentinel] = worker
                if not worker.eof:
                    watched[worker.connection] = worker
            ready = multiprocessing.connection.wait(list(watched), timeout=LOOK_EVERY)
            # after a quiet while, look at every worker: under the fork start method a child the experiment
            # forked holds the sentinel of a worker that died open
            for worker in dict.fromkeys([watched[handle] for handle in ready] or self._running):
                self._receive(worker)
            self._fill()
        return self._ready.popleft()

    def _receive(self, worker: _Worker) -> None:
        """Read what `worker` sent; if it is dead, what it ran fails and what it had not begun goes back."""
        while not worker.eof:
            try:
                if not worker.connection.poll():
                    break
                message = worker.connection.recv_bytes()
            except (EOFError, OSError):
                worker.eof = True  # it closed its end by dying; the sentinel fires once it is dead
                break
            worker.items.popleft()
            if not worker.items:
                self._busy.change(-1)
            self._deaths_at_start = 0
            if message[:1] != DONE:
                raise unpickled_exception(message[1:])
            self._ready.append(pickle.loads(message[1:]))
        if worker.process.exitcode is not None:
            self._bury(worker)

    def _has_begun(self, worker: _Worker) -> bool:
        """Whether `worker` began the first item it holds."""
        return bool(worker.items) and self._claims is not None and self._claims.began[worker.slot] == worker.items[0][0]

    def _withdraw(self, worker: _Worker) -> WorkItem | None:
        """Take back the last item sent to `worker`, unless it began it; the item, or None."""
        assert self._claims is not None
        if worker.eof or not self._claims.withdraw(worker.slot, worker.items[-1][0]):
            return None
        item = worker.items.pop()[1]
        if not worker.items:
            self._busy.change(-1)
        return item

    def _bury(self, worker: _Worker) -> None:
        process = worker.process
        process.join()
        cause = f"worker process {process.pid} {describe_death(process.exitcode)}"
        self._running.remove(worker)
        worker.connection.close()
        process.close()
        assert self._claims is not None
        began, served = self._has_begun(worker), self._claims.began[worker.slot] != -1
        items = collections.deque(item for _, item in worker.items)
        if items:
            self._busy.change(-1)
        if began:
            self._ready.append(self._task.lost(items.popleft(), self.stop.requested(), cause))
        self._queue.extendleft(reversed(items))  # not begun: innocent, first in line again
        if began:
            return
        log.warning("%s while running nothing; %s", cause, "a new one takes its work" if items else "not replaced yet")
        if not served:
            self._deaths_at_start += 1
            if self._deaths_at_start >= DEATHS_AT_START:
                raise ClusterWorkError(f"{self._deaths_at_start} local worker processes in a row died before running "
                                       f"anything, the last: {cause}; see their output above")

    def _fill(self) -> None:
        """Hand queued items out: one to each idle worker (starting workers up to `workers`), then one more
        to each busy one, if small (see PREFETCH_BYTES). With nothing queued, an idle worker takes the item
        a busy one holds but has not begun (the end of a sweep: it would wait behind a long item)."""
        if not self._queue:
            self._rebalance()
        for depth in (0, 1):
            for worker in self._running:
                if not self._queue:
                    return
                if len(worker.items) == depth and not worker.eof:
                    data = self._pickled(self._queue[0])
                    if depth and len(data) > PREFETCH_BYTES:
                        return
                    self._send(worker, self._queue.popleft(), data)
            while not depth and self._queue and len(self._running) < self.workers:
                data = self._pickled(self._queue[0])
                self._send(self._start_worker(), self._queue.popleft(), data)

    def _rebalance(self) -> None:
        for idle in [worker for worker in self._running if not worker.items and not worker.eof]:
            for holder in self._running:
                if len(holder.items) == 2 and (item := self._withdraw(holder)) is not None:
                    self._send(idle, item, self._pickled(item))
                    break

    def _pickled(self, item: WorkItem) -> bytes:
        """`item` pickled; kept while it is too big to prefetch, so that waiting costs no pickling."""
        import cloudpickle

        if self._big is not None and self._big[0] is item:
            return self._big[1]
        data = cloudpickle.dumps(item)
        self._big = (item, data) if len(data) > PREFETCH_BYTES else None
        return data

    def _send(self, worker: _Worker, item: WorkItem, data: bytes) -> None:
        """Send `item`, pickled as `data`, to `worker`, behind a token of its own."""
        token = next(self._tokens)
        worker.items.append((token, item))
        if len(worker.items) == 1:
            self._busy.change(+1)
        self._big = None
        try:
            worker.connection.send_bytes(token.to_bytes(TOKEN_BYTES, "little") + data)
        except OSError:  # it died while idle: its sentinel fires, and the item goes back then
            worker.eof = True

    def _start_worker(self) -> _Worker:
        import cloudpickle

        if self._shared is None:
            self._shared = (self._context.Event(), self._context.Value("q", 0),
                            self._context.Array("q", [-1] * CANCEL_RING, lock=False),
                            self._context.Value("q", 0, lock=False))
            self._claims = Claims(self._context, self.workers)
        if self._pickled_task is None:
            self._pickled_task = cloudpickle.dumps(self._task)
        slot = min(set(range(self.workers)) - {worker.slot for worker in self._running})
        assert self._claims is not None
        self._claims.reset(slot)  # perhaps the slot of a dead worker
        ours, theirs = self._context.Pipe()
        process = self._context.Process(target=serve, name="cluster_work worker",  # type: ignore[attr-defined]
                                        args=(theirs, slot, self._pickled_task, *self._shared, self._claims,
                                              os.getpid()))
        with _spawning():
            process.start()
        theirs.close()
        worker = _Worker(process, ours, slot)
        self._running.append(worker)
        return worker

    def _iterations_done(self) -> int:
        return int(self._shared[1].value) if self._shared is not None else 0

    def forward_stop(self) -> None:
        if self._shared is not None:  # before the first worker, the workers check this process's flag
            self._shared[0].set()

    def terminate(self) -> None:
        for worker in self._running:
            worker.process.kill()
        self.shutdown()

    def shutdown(self) -> None:
        """Tell every worker to leave after what it was sent (the run is over or stopping) and wait until they
        are gone, reading (and dropping) what they still send, so that none blocks on a full connection."""
        for worker in self._running:
            with contextlib.suppress(OSError):
                worker.connection.send_bytes(b"")
        while self._running:
            multiprocessing.connection.wait([handle for worker in self._running for handle in
                                             (worker.process.sentinel, *(() if worker.eof else (worker.connection,)))],
                                            timeout=LOOK_EVERY)
            for worker in list(self._running):
                try:
                    while not worker.eof and worker.connection.poll():
                        worker.connection.recv_bytes()
                except (EOFError, OSError):
                    worker.eof = True
                if worker.process.exitcode is not None:
                    self._running.remove(worker)
                    worker.connection.close()
                    worker.process.close()

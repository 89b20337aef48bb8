"""Where jobs run: in this process, in local worker processes, or on MPI ranks.

Every backend takes the same task (a picklable callable Job -> Outcome, in practice
`runner.run_job` bound to the experiment class) and yields Outcomes as jobs end, in any order.
Backends know nothing about experiments, and the runner knows nothing about backends.
"""
from __future__ import annotations

import abc
import concurrent.futures as futures
import contextlib
import logging
import multiprocessing
import os
import signal
import socket
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import progress
from .orphans import exit_when_orphaned
from .runner import FAILED_JOB, STOPPED, Job, Outcome
from .stopping import follow_shared_stop, handle_stop_signals, stop_requested

log = logging.getLogger("cluster_work")
Task = Callable[[Job], Outcome]


class Executor(abc.ABC):
    """Runs jobs and yields their outcomes; stops taking new jobs once a stop is requested."""

    workers: int = 1

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()

    @abc.abstractmethod
    def map_unordered(self, task: Task, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Run `task(job)` for each job; yield outcomes as they come."""

    def forward_stop(self) -> None:
        """Pass a stop request on to workers that did not get the signal themselves."""

    def shutdown(self) -> None:
        """Release the workers."""

    def terminate(self) -> None:
        """Stop at once (a second Ctrl-C): in-flight iterations are lost, saved rows stay."""

    def describe(self) -> str:
        return f"{self.workers} worker(s)"

    def hosts(self) -> list[str]:
        """The host of every process that runs jobs (for the run's provenance record)."""
        return [socket.gethostname()]

    def world_size(self) -> int | None:
        """The number of MPI ranks, or None without MPI."""
        return None

    @abc.abstractmethod
    def iterations_done(self) -> int:
        """Iterations saved so far by this executor's jobs (read by the live display)."""

    @abc.abstractmethod
    def busy(self) -> int:
        """Workers running a job right now."""


class SequentialExecutor(Executor):
    """Runs every job in this process, one after the other (breakpoints and prints just work)."""

    def __init__(self) -> None:
        self._counter = progress.Counter()
        self._running = False

    def describe(self) -> str:
        return "this process"

    def iterations_done(self) -> int:
        return self._counter.value

    def busy(self) -> int:
        return int(self._running)

    def map_unordered(self, task: Task, jobs: Iterable[Job]) -> Iterator[Outcome]:
        progress.report_to(self._counter.add)
        try:
            for job in jobs:
                if stop_requested():
                    return
                self._running = True
                outcome = task(job)
                self._running = False
                yield outcome
        finally:
            self._running = False
            progress.report_to(None)


# --- local worker processes --------------------------------------------------------------------

_worker_task: Task | None = None


def _init_worker(pickled_task: bytes, stop_event: Any, iterations: Any, main_pid: int) -> None:
    import cloudpickle

    global _worker_task
    exit_when_orphaned(f"worker process {os.getpid()}", pid=main_pid)  # a kill -9 of the run ends its workers
    handle_stop_signals(hard_second=False)  # a signal only asks to stop after the iteration
    follow_shared_stop(stop_event)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked since the spawn: see _spawning

    def count(done: int) -> None:
        with iterations.get_lock():
            iterations.value += done

    progress.report_to(count)
    _worker_task = cloudpickle.loads(pickled_task)


def _run_in_worker(pickled_job: bytes) -> Outcome:
    import cloudpickle

    assert _worker_task is not None
    return _worker_task(cloudpickle.loads(pickled_job))


_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


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


def _lost_worker(job: Job) -> Outcome:
    """A worker died under a job: a failure, unless a stop was requested (Ctrl-C reaches workers too)."""
    if stop_requested():
        return Outcome(job.index, job.label, STOPPED)
    return Outcome(job.index, job.label, FAILED_JOB, error="its worker process died (killed, or out of memory?)")


class LocalProcessExecutor(Executor):
    """Runs jobs in `workers` local processes (no MPI); a worker that dies fails only its own job.

    Task and jobs travel with cloudpickle, so experiment classes defined in a script's `__main__`
    work under every start method.
    """

    def __init__(self, workers: int, mp_context: str | None = None):
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.workers = workers
        self._context_name = mp_context
        self._context = multiprocessing.get_context(mp_context)
        # made with the first pool, not here: they start multiprocessing's resource tracker, and until
        # jobs start a stop signal ends the run at once (see stopping.stop_signals_handled)
        self._stop_event: Any = None
        self._iterations: Any = None
        self._pending: dict[futures.Future[Outcome], Job] = {}
        self._pool: futures.ProcessPoolExecutor | None = None

    def iterations_done(self) -> int:
        return int(self._iterations.value) if self._iterations is not None else 0

    def busy(self) -> int:
        # the pool marks jobs waiting in its call queue as running too
        return min(self.workers, sum(1 for future in list(self._pending) if future.running()))

    def _new_pool(self, pickled_task: bytes) -> futures.ProcessPoolExecutor:
        if self._stop_event is None:
            self._stop_event, self._iterations = self._context.Event(), self._context.Value("q", 0)
        return futures.ProcessPoolExecutor(self.workers, mp_context=self._context, initializer=_init_worker,
                                           initargs=(pickled_task, self._stop_event, self._iterations, os.getpid()))

    def map_unordered(self, task: Task, jobs: Iterable[Job]) -> Iterator[Outcome]:
        import cloudpickle

        pickled_task = cloudpickle.dumps(task)
        self._pool = self._new_pool(pickled_task)
        pending = self._pending
        queue = iter(jobs)
        while True:
            # keep every worker busy, holding only a couple of jobs per worker in memory
            while not stop_requested() and len(pending) < 2 * self.workers:
                job = next(queue, None)
                if job is None:
                    break
                with _spawning():  # submit starts worker processes on demand
                    pending[self._pool.submit(_run_in_worker, cloudpickle.dumps(job))] = job
            if not pending:
                return
            done, _ = futures.wait(pending, return_when=futures.FIRST_COMPLETED)
            broken = False
            for future in done:
                job = pending.pop(future)
                try:
                    yield future.result()
                except futures.process.BrokenProcessPool:
                    broken = True
                    yield _lost_worker(job)
            if broken:  # every job still pending lost its worker too: report and go on with a new pool
                for job in pending.values():
                    yield _lost_worker(job)
                pending.clear()
                self._pool.shutdown(wait=False, cancel_futures=True)
                self._pool = self._new_pool(pickled_task)

    def describe(self) -> str:
        return f"{self.workers} local worker processes ({self._context_name or 'default'} start)"

    def forward_stop(self) -> None:
        if self._stop_event is not None:  # before the first pool, the workers check this process's flag
            self._stop_event.set()

    def terminate(self) -> None:
        for process in list((getattr(self._pool, "_processes", None) or {}).values()):
            process.kill()
        self.shutdown()

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(workers: int, cluster: bool, mp_context: str | None, groups: int | None = None,
                  group_size: int | None = None) -> Executor:
    """The backend the command line asks for: MPI with -c (in `groups` groups or groups of `group_size`
    ranks, see mpi_layout), local processes with -n N > 1."""
    if cluster:
        from .mpi_executor import MPIExecutor

        return MPIExecutor(groups, group_size)
    if workers > 1:
        return LocalProcessExecutor(workers, mp_context)
    return SequentialExecutor()

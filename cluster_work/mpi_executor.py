"""Running jobs on MPI ranks: rank 0 plans and hands out jobs, the other ranks run them.

Every rank runs the same script (`mpiexec -n N python -m mpi4py my_exp.py config.yml -c`). Rank 0 keeps
a set of idle workers, sends each a job (a few hundred bytes), and receives back a small Outcome;
results never pass through rank 0. With groups (`-g G`) the workers are split into groups of G ranks;
the group's first rank (its leader) talks to rank 0 and forwards the job to the others, and all of
them run the repetition with the group's communicator as `self._COMM`; only the leader writes.

Nobody waits in a blocking call, which Open MPI implements by spinning a core. Waits poll with `Iprobe`
and sleep for a twentieth of the time waited so far (at most `MAX_POLL_SLEEP`): a short job's reply is
seen within a few percent of its length, and a rank idle for long wakes at most 100 times a second.
Sends are non-blocking (`isend`): with Open MPI's shared-memory transport a blocking send waits, spinning,
until the receiver next enters MPI, which for a sleeping receiver is up to a poll interval.
"""
from __future__ import annotations

import functools
import logging
import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import progress
from .errors import ClusterWorkError
from .executors import Executor, SequentialExecutor, Task
from .runner import Job, Outcome
from .stopping import follow_shared_stop, handle_stop_signals, stop_requested

log = logging.getLogger("cluster_work")

TAG_JOB, TAG_OUTCOME, TAG_STOP, TAG_PROGRESS = 11, 12, 13, 14
PROGRESS_EVERY = 0.5  # s: a worker tells rank 0 its iteration count at most this often
MAX_POLL_SLEEP = 0.01  # s: an idle rank wakes at most 100 times a second
MAX_OUTCOME_POLL_SLEEP = 0.002  # s: rank 0 notices a finished job within 2 ms (a few % CPU at most)
MIN_POLL_SLEEP = 1e-5
POLL_FRACTION = 0.05  # sleep this share of the time waited so far


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise ClusterWorkError("-c/--cluster needs mpi4py and an MPI runtime: "
                               "pip install 'cluster_work[mpi]' (or mpi4py with your system's MPI)") from None
    return MPI


def poll_until(ready: Any, max_sleep: float = MAX_POLL_SLEEP) -> None:
    """Call `ready()` until it returns true, sleeping in between in proportion to the time waited."""
    if ready():
        return
    started = time.perf_counter()
    while True:
        waited = time.perf_counter() - started
        time.sleep(min(max_sleep, max(MIN_POLL_SLEEP, waited * POLL_FRACTION)))
        if ready():
            return


def wait_for_message(comm: Any, source: int, tag: int, status: Any = None,
                     max_sleep: float = MAX_POLL_SLEEP) -> None:
    """Return once a message matching (source, tag) has arrived, without spinning a core."""
    poll_until(lambda: comm.Iprobe(source=source, tag=tag, status=status), max_sleep)


class _Sends:
    """Non-blocking sends kept alive until complete (MPI progresses them while we poll)."""

    def __init__(self) -> None:
        self._requests: list[Any] = []

    def send(self, comm: Any, message: Any, dest: int, tag: int) -> None:
        self._requests = [r for r in self._requests if not r.Test()]
        self._requests.append(comm.isend(message, dest=dest, tag=tag))

    def complete(self) -> None:
        for request in self._requests:
            poll_until(request.Test)
        self._requests = []


def quiet_barrier(comm: Any) -> None:
    """A barrier that sleeps instead of spinning: every rank leaves the sweep together, so that a
    non-zero exit of rank 0 does not make mpiexec kill workers that are still on their way out."""
    request = comm.Ibarrier()
    poll_until(request.Test)


def finalize_mpi() -> None:
    """Finalize MPI once every rank is done, so that a non-zero exit status is a plain exit:
    `python -m mpi4py` turns a non-zero SystemExit of an unfinalized MPI into MPI_Abort."""
    from mpi4py import MPI

    if MPI.Is_initialized() and not MPI.Is_finalized():
        sys.stdout.flush()
        sys.stderr.flush()
        MPI.Finalize()


ORPHAN_CHECK_SECONDS = 1.0
EXIT_ORPHANED = 4
_world_hosts: list[str] = []  # every rank's host, gathered on rank 0 by serve_jobs
_orphan_watch: list[threading.Thread] = []  # at most one watchdog per process


def exit_when_orphaned(rank: int, check_every: float = ORPHAN_CHECK_SECONDS) -> None:
    """Exit this rank (as a kill would) once the MPI launcher that started it is gone.

    When `mpiexec` dies, Open MPI may leave ranks running, and a rank busy in Python would notice only
    at its next MPI call. A daemon thread watches the parent process instead; exiting mid-iteration
    is as safe as kill -9 (rows are whole or absent) and drops the repetition's lock at once.
    """
    if _orphan_watch:
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(check_every)
        log.error("rank %d: the MPI launcher (pid %d) is gone; exiting", rank, parent)
        logging.shutdown()
        os._exit(EXIT_ORPHANED)

    _orphan_watch.append(threading.Thread(target=watch, name="cluster_work-orphan-watch", daemon=True))
    _orphan_watch[0].start()


def worker_layout(world_size: int, group_size: int) -> tuple[list[list[int]], list[int]]:
    """Split ranks 1..size-1 into groups of `group_size`; ranks left over idle. Returns (groups, idle)."""
    if group_size < 1:
        raise ClusterWorkError(f"-g/--mpi_groups must be at least 1, got {group_size}")
    workers = list(range(1, world_size))
    count = len(workers) // group_size
    groups = [workers[i * group_size:(i + 1) * group_size] for i in range(count)]
    return groups, workers[count * group_size:]


def pickle_job(job: Job) -> bytes:
    """Plain pickle (fast; every rank runs the same script, so classes in __main__ resolve), and
    cloudpickle for what it cannot carry, such as lambdas in params."""
    try:
        return pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(job)


class _ProgressMessages:
    """A worker's iteration sink: adds up iterations and sends the count to rank 0 now and then."""

    def __init__(self, comm: Any, sends: _Sends):
        self._comm, self._sends = comm, sends
        self._count, self._last = 0, time.monotonic()

    def __call__(self, done: int) -> None:
        self._count += done
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY:
            self._sends.send(self._comm, self._count, 0, TAG_PROGRESS)
            self._count, self._last = 0, now


class _StopMessage:
    """A worker's stop flag: set once rank 0 has sent TAG_STOP (checked between iterations)."""

    def __init__(self, comm: Any):
        self._comm, self._set = comm, False

    def is_set(self) -> bool:
        if not self._set:
            self._set = self._comm.Iprobe(source=0, tag=TAG_STOP)
        return self._set


def serve_if_worker(experiment_class: type, group_size: int, settings: Any) -> int | None:
    """On ranks other than 0: run repetitions of `experiment_class` until rank 0 says stop, then
    return exit status 0. On rank 0 return None (rank 0 goes on to plan and schedule)."""
    from .runner import run_job

    return serve_jobs(functools.partial(run_job, experiment_class, settings=settings), group_size)


def serve_jobs(task: Callable[..., Outcome], group_size: int) -> int | None:
    """The worker loop: `task(job, comm=group communicator, write=is group leader)` for each job received.

    Every rank must call it (it splits COMM_WORLD into groups); rank 0 gets None back at once.
    """
    MPI = _mpi()
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    if size > 1:
        exit_when_orphaned(rank)
    groups, idle = worker_layout(size, group_size)
    group_of = {r: g for g in groups for r in g}
    color = groups.index(group_of[rank]) if rank in group_of else MPI.UNDEFINED
    group_comm = world.Split(color, rank)  # collective: every rank, rank 0 included, takes part
    hosts = world.gather(socket.gethostname(), root=0)
    if rank == 0:
        _world_hosts[:] = hosts
        return None
    if rank in idle:
        wait_for_message(world, 0, TAG_JOB)
        world.recv(source=0, tag=TAG_JOB)
        quiet_barrier(world)
        return 0
    leader = group_of[rank][0] == rank
    handle_stop_signals(hard_second=False)  # SIGTERM from mpiexec or Slurm: finish the iteration
    if leader:
        follow_shared_stop(_StopMessage(world))
    sends = _Sends()
    if leader:
        progress.report_to(_ProgressMessages(world, sends))
    while True:
        if leader:
            wait_for_message(world, 0, TAG_JOB)
            payload = world.recv(source=0, tag=TAG_JOB)
            for member in range(1, group_comm.Get_size()):
                sends.send(group_comm, payload, member, TAG_JOB)
        else:
            wait_for_message(group_comm, 0, TAG_JOB)
            payload = group_comm.recv(source=0, tag=TAG_JOB)
        if payload is None:
            break
        outcome = task(pickle.loads(payload), comm=group_comm, write=leader)
        if leader:
            sends.send(world, outcome, 0, TAG_OUTCOME)
    sends.complete()
    if leader and world.Iprobe(source=0, tag=TAG_STOP):
        world.recv(source=0, tag=TAG_STOP)
    quiet_barrier(world)
    return 0


class MPIExecutor(Executor):
    """Rank 0's side: hands jobs to idle group leaders one at a time (dynamic load balancing)."""

    def __init__(self, group_size: int = 1):
        MPI = _mpi()
        self._MPI = MPI
        self._world = MPI.COMM_WORLD
        self._groups, self._idle_ranks = worker_layout(self._world.Get_size(), group_size)
        self.workers = len(self._groups)
        self._group_size = group_size
        self._stop_sent = False
        self._released = False
        self._sends = _Sends()
        self._iterations = 0
        self._busy: dict[int, Job] = {}
        self._local = SequentialExecutor()  # runs the jobs when there are no worker ranks
        if self._idle_ranks and self._groups:
            log.warning("%d MPI rank(s) (%s) idle: %d workers do not split into groups of %d",
                        len(self._idle_ranks), ", ".join(map(str, self._idle_ranks)),
                        self._world.Get_size() - 1, group_size)
        if not self._groups:
            log.warning("only %d MPI rank(s) for groups of %d: running every job on rank 0 "
                        "(start more ranks with mpiexec -n)", self._world.Get_size(), group_size)

    def describe(self) -> str:
        size = self._world.Get_size()
        if not self._groups:
            return "MPI rank 0 alone"
        groups = f" in groups of {self._group_size}" if self._group_size > 1 else ""
        return f"{self.workers} MPI workers{groups} ({size} ranks)"

    def map_unordered(self, task: Task, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Jobs go to the workers, which run the task they were started with (`serve_jobs`): every rank
        runs the same script, so only the jobs travel. `task` runs here only without workers."""
        if not self._groups:
            yield from self._local.map_unordered(task, jobs)
            return
        idle = [group[0] for group in self._groups]
        busy = self._busy
        reported: dict[int, int] = {}  # iterations a busy worker has reported for its current job
        queue = iter(jobs)
        status = self._MPI.Status()
        while True:
            while idle and not stop_requested():
                job = next(queue, None)
                if job is None:
                    break
                leader = idle.pop()
                self._sends.send(self._world, pickle_job(job), leader, TAG_JOB)
                busy[leader] = job
            if not busy:
                return
            wait_for_message(self._world, self._MPI.ANY_SOURCE, self._MPI.ANY_TAG, status, MAX_OUTCOME_POLL_SLEEP)
            source, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_PROGRESS:
                done = self._world.recv(source=source, tag=TAG_PROGRESS)
                reported[source] = reported.get(source, 0) + done
                self._iterations += done
                continue
            outcome = self._world.recv(source=source, tag=TAG_OUTCOME)
            self._iterations += outcome.iterations_run - reported.pop(source, 0)
            del busy[source]
            idle.append(source)
            yield outcome

    def hosts(self) -> list[str]:
        return list(_world_hosts) or super().hosts()

    def world_size(self) -> int:
        return int(self._world.Get_size())

    def iterations_done(self) -> int:
        return self._iterations + self._local.iterations_done()

    def busy(self) -> int:
        return len(self._busy) + self._local.busy()

    def forward_stop(self) -> None:
        if self._stop_sent:
            return
        self._stop_sent = True
        for group in self._groups:
            self._sends.send(self._world, None, group[0], TAG_STOP)

    def terminate(self) -> None:
        log.warning("stopping at once: aborting every MPI rank")
        sys.stderr.flush()
        self._world.Abort(130)

    def shutdown(self) -> None:
        """Release every worker rank; after this all ranks leave their loops and exit cleanly."""
        for rank in [group[0] for group in self._groups] + self._idle_ranks:
            self._sends.send(self._world, None, rank, TAG_JOB)
        self._sends.complete()
        if self._world.Get_size() > 1 and not self._released:
            quiet_barrier(self._world)
        self._groups, self._idle_ranks, self._released = [], [], True

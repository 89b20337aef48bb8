"""Running jobs on MPI ranks: rank 0 plans and hands out jobs, the other ranks run them.

Every rank runs the same script (`mpiexec -n N python -m mpi4py my_exp.py config.yml -c`). Rank 0 keeps
a set of idle workers, sends each a job (a few hundred bytes), and receives back a small Outcome;
results never pass through rank 0. By default each worker runs a repetition alone, with COMM_SELF as
`self._COMM` (the original's value). With groups (`-g G` groups, or `--group_size S` ranks each; see
`mpi_layout`) the group's first rank (its leader) talks to rank 0 and forwards the job to the others, and
all of them run the repetition with the group's communicator as `self._COMM`; only the leader writes.
With `-g 1` the one group is every rank and rank 0 leads it: it runs the jobs itself, one after the other.

Under MPI the console is the launcher's: once it is gone (kill -9 of mpiexec), a print fails with
EIO or EPIPE. Every rank's console is guarded (`logs.console_guard`): such a failure stops the run at the
next iteration boundary, leaving the repetitions resumable, instead of failing them.

Nobody waits in a blocking call, which Open MPI implements by spinning a core. Waits poll with `Iprobe`
and sleep for a twentieth of the time waited so far (at most `MAX_POLL_SLEEP`): a short job's reply is
seen within a few percent of its length, and a rank idle for long wakes at most 100 times a second.
Sends are non-blocking (`isend`): with Open MPI's shared-memory transport a blocking send waits, spinning,
until the receiver next enters MPI, which for a sleeping receiver is up to a poll interval.
"""
from __future__ import annotations

import contextlib
import functools
import logging
import os
import pickle
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from . import progress
from .errors import ClusterWorkError
from .executors import Executor, SequentialExecutor, Task
from .logs import console_guard
from .mpi_layout import SELF, SPLIT, WORLD, Layout, mpi_layout
from .orphans import EXIT_ORPHANED, exit_when_orphaned
from .runner import Job, Outcome
from .stopping import follow_shared_stop, handle_stop_signals, stop_requested
from .sweep import EXIT_USAGE

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
    `python -m mpi4py` turns a non-zero SystemExit of an unfinalized MPI into MPI_Abort. Without the
    launcher (killed with -9) MPI cannot finalize: the process exits at once, as an orphaned rank does."""
    MPI = sys.modules.get("mpi4py.MPI")  # not imported: nothing to finalize
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # the console may be gone with the launcher
                stream.flush()
        try:
            MPI.Finalize()
        except MPI.Exception as exc:
            log.error("MPI cannot finalize (%s): the MPI launcher is gone; exiting", exc)
            logging.shutdown()
            os._exit(EXIT_ORPHANED)


_world_hosts: list[str] = []  # every rank's host, gathered on rank 0 by serve_jobs


def _group_communicator(MPI: Any, layout: Layout, rank: int) -> Any:
    """This rank's `self._COMM` (COMM_NULL outside a group); collective under SPLIT: every rank calls it."""
    if layout.comm == SELF:
        return MPI.COMM_SELF
    if layout.comm == WORLD:
        return MPI.COMM_WORLD
    group = layout.group_of(rank)
    color = layout.groups.index(group) if group is not None else MPI.UNDEFINED
    comm = MPI.COMM_WORLD.Split(color, rank)
    if group is not None:
        comm.Set_name(f"comm_group_{color}")  # the original's name
    return comm


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


def serve_if_worker(experiment_class: type, settings: Any, *, groups: int | None = None,
                    group_size: int | None = None) -> int | None:
    """On ranks other than 0: run repetitions of `experiment_class` until rank 0 says stop, then
    return the exit status. On rank 0 return None (rank 0 goes on to plan and schedule)."""
    from .runner import run_job

    return serve_jobs(functools.partial(run_job, experiment_class, settings=settings), groups=groups,
                      group_size=group_size)


def serve_jobs(task: Callable[..., Outcome], *, groups: int | None = None,
               group_size: int | None = None) -> int | None:
    """The worker loop: `task(job, comm=group communicator, write=is group leader)` for each job received.

    Every rank must call it (it may split COMM_WORLD into groups); rank 0 gets None back at once. A bad
    `groups` or `group_size` raises ClusterWorkError on rank 0, which reports it, and returns 2 elsewhere.
    """
    MPI = _mpi()
    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    try:
        layout = mpi_layout(size, groups, group_size)
    except ClusterWorkError:
        if rank == 0:
            raise
        return EXIT_USAGE
    if size > 1:
        exit_when_orphaned(rank)
    group_comm = _group_communicator(MPI, layout, rank)
    hosts = world.gather(socket.gethostname(), root=0)
    if rank == 0:
        _world_hosts[:] = hosts
        return None
    group = layout.group_of(rank)
    if group is None:
        wait_for_message(world, 0, TAG_JOB)
        world.recv(source=0, tag=TAG_JOB)
    else:
        with console_guard():  # a dead launcher's console stops the run instead of failing a print
            _follow_jobs(task, world, group_comm, leader=group[0] == rank)
    quiet_barrier(world)
    return 0


def _follow_jobs(task: Callable[..., Outcome], world: Any, group_comm: Any, leader: bool) -> None:
    """A worker's jobs until the None that ends them: a leader gets each from rank 0 and passes it on to
    its group; a member gets it from its group's rank 0 (world rank 0 itself under `-g 1`)."""
    handle_stop_signals(hard_second=False)  # SIGTERM from mpiexec or Slurm: finish the iteration
    sends = _Sends()
    if leader:
        follow_shared_stop(_StopMessage(world))
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


class MPIExecutor(Executor):
    """Rank 0's side: hands jobs to idle group leaders one at a time (dynamic load balancing), or, when
    it leads the one group (`-g 1`) or there are no workers, runs them itself."""

    def __init__(self, groups: int | None = None, group_size: int | None = None):
        MPI = _mpi()
        self._MPI = MPI
        self._world = MPI.COMM_WORLD
        size = self._world.Get_size()
        self._layout = mpi_layout(size, groups, group_size)
        self._leaders = [group[0] for group in self._layout.groups if group[0] != 0]
        self.workers = max(1, len(self._layout.groups))
        self._stop_sent = False
        self._released = False
        self._sends = _Sends()
        self._iterations = 0
        self._busy: dict[int, Job] = {}
        self._local = SequentialExecutor()  # for the jobs rank 0 runs itself
        self._console = contextlib.ExitStack()
        idle, blocks = self._layout.idle, self._layout.groups
        if idle and blocks:
            log.warning("%d MPI rank(s) (%s) idle: %d workers make %d groups of %d", len(idle),
                        ", ".join(map(str, idle)), size - 1, len(blocks), len(blocks[0]))
        if not blocks:
            log.warning("only %d MPI rank(s) for groups of %d: running every job on rank 0 "
                        "(start more ranks with mpiexec -n)", size, group_size or 1)

    def __enter__(self) -> MPIExecutor:
        self._console.enter_context(console_guard())  # the launcher's console may go away mid-run
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            self.shutdown()
        finally:
            self._console.close()

    def describe(self) -> str:
        size, groups = self._world.Get_size(), self._layout.groups
        if not groups or size == 1:
            return "MPI rank 0 alone"
        if self._layout.rank0_leads:
            return f"all {size} MPI ranks together, rank 0 leading (one job at a time)"
        if self._layout.comm == SPLIT:
            return f"{len(groups)} MPI groups of {len(groups[0])} ranks ({size} ranks in all)"
        return f"{self.workers} MPI workers ({size} ranks)"

    def map_unordered(self, task: Task, jobs: Iterable[Job]) -> Iterator[Outcome]:
        """Jobs go to the workers, which run the task they were started with (`serve_jobs`): every rank
        runs the same script, so only the jobs travel. `task` runs here when rank 0 runs the jobs itself."""
        if self._layout.rank0_leads or not self._leaders:
            yield from self._local.map_unordered(self._run_here(task), jobs)
            return
        idle = list(self._leaders)
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

    def _run_here(self, task: Task) -> Task:
        """`task` as rank 0 runs it: alone with COMM_SELF, or under `-g 1` as the leader of every rank,
        with COMM_WORLD, after handing each the job to follow."""
        comm = self._world if self._layout.rank0_leads else self._MPI.COMM_SELF
        members = self._layout.contacts() if self._layout.rank0_leads else []
        run: Callable[..., Outcome] = task

        def lead(job: Job) -> Outcome:
            payload = pickle_job(job)
            for member in members:
                self._sends.send(self._world, payload, member, TAG_JOB)
            return run(job, comm=comm, write=True)

        return lead

    def hosts(self) -> list[str]:
        return list(_world_hosts) or super().hosts()

    def world_size(self) -> int:
        return int(self._world.Get_size())

    def iterations_done(self) -> int:
        return self._iterations + self._local.iterations_done()

    def busy(self) -> int:
        return len(self._busy) + self._local.busy()

    def forward_stop(self) -> None:
        """Tell the group leaders; rank 0's own group follows its decision (the runner's broadcast)."""
        if self._stop_sent:
            return
        self._stop_sent = True
        for leader in self._leaders:
            self._sends.send(self._world, None, leader, TAG_STOP)

    def terminate(self) -> None:
        log.warning("stopping at once: aborting every MPI rank")
        sys.stderr.flush()
        self._world.Abort(130)

    def shutdown(self) -> None:
        """Release every worker rank; after this all ranks leave their loops and exit cleanly."""
        if self._released:
            return
        self._released = True
        for rank in self._layout.contacts():
            self._sends.send(self._world, None, rank, TAG_JOB)
        self._sends.complete()
        if self._world.Get_size() > 1:
            quiet_barrier(self._world)

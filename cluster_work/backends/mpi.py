"""Running items on MPI ranks: rank 0 decides and hands out items, the other ranks run them.

Every rank runs the same script (`mpiexec -n N python -m mpi4py my_exp.py config.yml -c`). The executor
owns the whole MPI lifecycle, in the style of `mpi4py.futures.MPICommExecutor`: `with executor as
running:` makes the group communicators on every rank, then on rank 0 returns the executor, and on
every other rank serves items until rank 0 releases it and returns None (`worker_status` says how it
ended); leaving the block releases the workers, commits what was written and finalizes MPI.

Rank 0 keeps a set of idle group leaders, sends each an item (a few hundred bytes), and receives back a
small outcome; results never pass through rank 0. By default each worker runs an item alone, with
COMM_SELF as `self._COMM` (the original's value). With groups (`-g G` groups, or `--group_size S` ranks
each; see `mpi_layout`) the group's first rank (its leader) talks to rank 0 and forwards the item to the
others, and all of them run it with the group's communicator as `self._COMM`; only the leader writes.
With `-g 1` the one group is every rank and rank 0 leads it: it runs the items itself, one at a time.
A cancel reaches a running item's leader as a message, which it reads between iterations.

Under MPI the console is the launcher's: once it is gone (kill -9 of mpiexec), a print fails with
EIO or EPIPE. Every rank's console is guarded (`logs.console_guard`): such a failure stops the run at the
next iteration boundary, leaving the repetitions resumable, instead of failing them.

Nobody spins a core while waiting: see `mpi_messages`.
"""
from __future__ import annotations

import collections
import contextlib
import logging
import os
import pickle
import socket
import sys
from typing import Any

from .. import stopping
from ..durability import committer
from ..errors import ClusterWorkError
from ..exit_codes import EXIT_ORPHANED, EXIT_USAGE
from ..logs import console_guard
from ..orphans import exit_when_orphaned
from .base import Executor, Task, TaskContext
from .mpi_layout import SELF, SPLIT, WORLD, Layout, mpi_layout
from .mpi_messages import (
    MAX_OUTCOME_POLL_SLEEP,
    TAG_CANCEL,
    TAG_JOB,
    TAG_OUTCOME,
    TAG_PROGRESS,
    TAG_STOP,
    CancelMessages,
    ProgressMessages,
    Sends,
    StopMessage,
    pickle_item,
    quiet_barrier,
    wait_for_message,
)
from .sequential import SequentialExecutor

log = logging.getLogger("cluster_work")

PREFETCH = 1  # items a busy leader holds beyond the one it runs (see MPIExecutor._dispatch)


def _mpi() -> Any:
    try:
        from mpi4py import MPI
    except ImportError:
        raise ClusterWorkError("-c/--cluster needs mpi4py and an MPI runtime: "
                               "pip install 'cluster_work[mpi]' (or mpi4py with your system's MPI)") from None
    return MPI


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


def _worker_context(index: int, group_comm: Any, leader: bool, stop: StopMessage | None,
                    cancels: CancelMessages | None, progress: Any) -> TaskContext:
    """What an item learns on a worker rank: stops and cancels from rank 0 (the leader reads them; the
    runner broadcasts the leader's answer to its group)."""
    return TaskContext(comm=group_comm, write=leader,
                       stop_requested=lambda: stopping.stop_requested() or (stop is not None and stop.is_set()),
                       cancelled=lambda: cancels is not None and cancels.has(index), iteration_done=progress)


def _serve(task: Task, world: Any, group_comm: Any, leader: bool) -> None:
    """A worker's items until the None that ends them: a leader gets each from rank 0 and passes it on to
    its group; a member gets it from its group's rank 0 (world rank 0 itself under `-g 1`)."""
    stopping.handle_stop_signals(hard_second=False)  # SIGTERM from mpiexec or Slurm: finish the iteration
    sends = Sends()
    stop = StopMessage(world) if leader else None
    cancels = CancelMessages(world) if leader else None
    progress = ProgressMessages(world, sends) if leader else (lambda: None)
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
        item = pickle.loads(payload)
        outcome = task(item, _worker_context(item.index, group_comm, leader, stop, cancels, progress))
        if leader:
            sends.send(world, outcome, 0, TAG_OUTCOME)
    sends.complete()
    if leader and world.Iprobe(source=0, tag=TAG_STOP):
        world.recv(source=0, tag=TAG_STOP)


class MPIExecutor(Executor):
    """Rank 0's side: hands items to idle group leaders one at a time (dynamic load balancing), or, when
    it leads the one group (`-g 1`) or there are no workers, runs them itself. See the module docstring
    for the lifecycle; nothing collective happens before `__enter__`."""

    def __init__(self, task: Task, groups: int | None = None, group_size: int | None = None, finalize: bool = True):
        self._MPI = _mpi()
        self._finalize = finalize  # False: MPI stays usable after the block (a benchmark's next phase)
        self._task = task
        self._world = self._MPI.COMM_WORLD
        self._requested = (groups, group_size)
        self.worker_status: int | None = None  # on a worker rank, once it has served
        self._entered = self._released = self._stop_sent = False
        self._hosts: list[str] = []
        self._sends = Sends()
        self._iterations = 0
        self._queue: collections.deque[Any] = collections.deque()
        self._held: dict[int, collections.deque[Any]] = {}  # leader -> items sent to it, the running one first
        self._reported: dict[int, int] = {}  # iterations a busy leader has reported for its current item
        self._ready: collections.deque[Any] = collections.deque()
        self._console = contextlib.ExitStack()

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> MPIExecutor | None:  # type: ignore[override]
        world = self._world
        rank, size = world.Get_rank(), world.Get_size()
        try:
            self._layout = mpi_layout(size, *self._requested)
        except ClusterWorkError:
            if rank == 0:
                self._finalize_mpi()  # a plain exit 2 on every rank, not MPI_Abort
                raise
            self.worker_status = EXIT_USAGE
            self._finalize_mpi()
            return None
        if size > 1:
            exit_when_orphaned(rank)
        group_comm = _group_communicator(self._MPI, self._layout, rank)
        hosts = world.gather(socket.gethostname(), root=0)
        self._entered = True
        if rank != 0:
            self._serve_as_worker(group_comm)
            return None
        self._hosts = hosts
        self._leaders = [group[0] for group in self._layout.groups if group[0] != 0]
        self.workers = max(1, len(self._layout.groups))
        self._held = {leader: collections.deque() for leader in self._leaders}
        own_comm = self._world if self._layout.rank0_leads else self._MPI.COMM_SELF
        self._local = SequentialExecutor(self._lead_task(), own_comm)
        self._console.enter_context(console_guard())  # the launcher's console may go away mid-run
        self._warn_about_layout(size)
        return self

    def _serve_as_worker(self, group_comm: Any) -> None:
        group = self._layout.group_of(self._world.Get_rank())
        if group is None:  # an idle rank: wait for the release
            wait_for_message(self._world, 0, TAG_JOB)
            self._world.recv(source=0, tag=TAG_JOB)
        else:
            with console_guard():  # a dead launcher's console stops the run instead of failing a print
                _serve(self._task, self._world, group_comm, leader=group[0] == self._world.Get_rank())
        committer.commit()
        quiet_barrier(self._world)
        self.worker_status = 0
        self._finalize_mpi()

    def __exit__(self, *exc: Any) -> None:
        if self.worker_status is not None:  # a worker: it finished in __enter__
            return
        try:
            self.shutdown()
        finally:
            self._console.close()
            committer.commit()
            self._finalize_mpi()

    def _finalize_mpi(self) -> None:
        if self._finalize:
            finalize_mpi()

    def _warn_about_layout(self, size: int) -> None:
        idle, blocks = self._layout.idle, self._layout.groups
        if idle and blocks:
            log.warning("%d MPI rank(s) (%s) idle: %d workers make %d groups of %d", len(idle),
                        ", ".join(map(str, idle)), size - 1, len(blocks), len(blocks[0]))
        if not blocks:
            log.warning("only %d MPI rank(s) for groups of %d: running every job on rank 0 "
                        "(start more ranks with mpiexec -n)", size, self._requested[1] or 1)

    def _runs_here(self) -> bool:
        return self._layout.rank0_leads or not self._leaders

    def _lead_task(self) -> Task:
        """The task as rank 0 runs it: alone with COMM_SELF, or under `-g 1` as the leader of every rank,
        with COMM_WORLD, after handing each the item to follow."""
        members = self._layout.contacts() if self._layout.rank0_leads else []

        def lead(item: Any, context: TaskContext) -> Any:
            payload = pickle_item(item)
            for member in members:
                self._sends.send(self._world, payload, member, TAG_JOB)
            return self._task(item, context)

        return lead

    # --- the executor interface on rank 0 -------------------------------------------------------------

    def describe(self) -> str:
        size, groups = self._world.Get_size(), self._layout.groups
        if not groups or size == 1:
            return "MPI rank 0 alone"
        if self._layout.rank0_leads:
            return f"all {size} MPI ranks together, rank 0 leading (one job at a time)"
        if self._layout.comm == SPLIT:
            return f"{len(groups)} MPI groups of {len(groups[0])} ranks ({size} ranks in all)"
        return f"{self.workers} MPI workers ({size} ranks)"

    def submit(self, item: Any) -> None:
        if self._runs_here():
            self._local.submit(item)
            return
        self._queue.append(item)
        self._dispatch()

    def in_flight(self) -> int:
        if self._runs_here():
            return self._local.in_flight()
        return len(self._queue) + sum(map(len, self._held.values())) + len(self._ready)

    def has_capacity(self) -> bool:
        return self._local.has_capacity() if self._runs_here() else super().has_capacity()

    def cancel(self, index: int) -> None:
        if self._runs_here():
            self._local.cancel(index)
            return
        if self._cancel_queued(self._queue, self._ready, index):
            return
        for leader, items in self._held.items():  # running, or waiting at its leader: it stops there
            if any(item.index == index for item in items):
                self._sends.send(self._world, index, leader, TAG_CANCEL)

    def next_outcome(self) -> Any:
        if self._runs_here():
            return self._local.next_outcome()
        status = self._MPI.Status()
        while not self._ready:
            if not any(self._held.values()):
                raise RuntimeError("next_outcome() with nothing in flight")
            wait_for_message(self._world, self._MPI.ANY_SOURCE, self._MPI.ANY_TAG, status, MAX_OUTCOME_POLL_SLEEP)
            source, tag = status.Get_source(), status.Get_tag()
            if tag == TAG_PROGRESS:
                done = self._world.recv(source=source, tag=TAG_PROGRESS)
                self._reported[source] = self._reported.get(source, 0) + done
                self._iterations += done
                continue
            outcome = self._world.recv(source=source, tag=TAG_OUTCOME)
            self._iterations += getattr(outcome, "iterations_run", 0) - self._reported.pop(source, 0)
            self._held[source].popleft()
            self._ready.append(outcome)
            self._dispatch()
        return self._ready.popleft()

    def _dispatch(self) -> None:
        """Hand queued items out: first one to each idle leader, then one more to each leader that runs
        one, so that it starts its next item the moment it sends the outcome of this one, instead of a
        round trip to rank 0 later (a few ms each time on a loaded node: 8% of 20 ms jobs). Only while items
        are queued here: at a sweep's end nobody holds more than it runs."""
        for depth in range(1 + PREFETCH):
            for leader, items in self._held.items():
                if not self._queue:
                    return
                if len(items) == depth:
                    item = self._queue.popleft()
                    self._sends.send(self._world, pickle_item(item), leader, TAG_JOB)
                    items.append(item)

    def hosts(self) -> list[str]:
        return list(self._hosts) or super().hosts()

    def world_size(self) -> int:
        return int(self._world.Get_size())

    def iterations_done(self) -> int:
        return self._iterations + self._local.iterations_done()

    def busy(self) -> int:
        return sum(1 for items in self._held.values() if items) + self._local.busy()

    def forward_stop(self) -> None:
        """Tell the group leaders; rank 0's own group follows its decision (the runner's broadcast)."""
        if self._stop_sent or not self._entered:
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
        if self._released or not self._entered:
            return
        self._released = True
        for rank in self._layout.contacts():
            self._sends.send(self._world, None, rank, TAG_JOB)
        self._sends.complete()
        if self._world.Get_size() > 1:
            quiet_barrier(self._world)

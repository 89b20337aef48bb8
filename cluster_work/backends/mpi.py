"""Running items on MPI ranks: rank 0 decides and hands out items, the other ranks run them.

Every rank runs the same script (`mpiexec -n N python -m mpi4py my_exp.py config.yml -c`). The executor
owns the whole MPI lifecycle, in the style of `mpi4py.futures.MPICommExecutor`: `with executor as
running:` makes the group communicators on every rank, then on rank 0 returns the executor, and on
every other rank serves items until rank 0 releases it and returns None (`worker_status` says how it
ended); leaving the block releases the workers, commits what was written and finalizes MPI.

Rank 0 keeps a set of idle group leaders, sends each an item (a few hundred bytes), and receives back a
small outcome (`mpi_dispatch`; short items go and come back several to a message: `mpi_reports`); results
never pass through rank 0. By default each worker runs an item
alone, with COMM_SELF as `self._COMM` (the original's value). With groups (`-g G` groups, or `--group_size S` ranks
each; see `mpi_layout`) the group's first rank (its leader) talks to rank 0 and forwards the item to the
others, and all of them run it with the group's communicator as `self._COMM`; only the leader writes.
With `-g 1` the one group is every rank and rank 0 leads it: it runs the items itself, one at a time.
A cancel reaches a running item's leader as a message, which it reads between iterations.

Under MPI the console is the launcher's: once it is gone (kill -9 of mpiexec), a print fails with
EIO or EPIPE. Every rank's console is guarded (`logs.console_guard`): such a failure stops the run at the
next iteration boundary, leaving the repetitions resumable, instead of failing them.

A rank that dies ends the whole job, unless the job was launched with ULFM (`mpiexec --with-ft ulfm`,
see `mpi_ft`): then only the item it ran fails, rank 0 goes on with the survivors (`mpi_roster` keeps
who holds what), and a group that lost a member retires. Rank 0 also watches for workers that go silent
(`liveness`): they show in the display and the log, and, past `--stall-timeout`, end the run.

Nobody spins a core while waiting: see `mpi_messages`. The worker ranks' side is in `mpi_worker`; getting MPI,
the group communicators and leaving (finalized or not) in `mpi_runtime`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

from ..durability import GroupCommit, committer
from ..errors import ClusterWorkError
from ..exit_codes import EXIT_ORPHANED, EXIT_USAGE
from ..liveness import STALL_FLOOR, Liveness, Silence
from ..logs import console_guard
from ..orphans import exit_when_orphaned
from ..stopping import PROCESS_STOP, StopFlag
from ..vocabulary import Outcome, WorkItem
from .base import Executor, Figures, RunItem, Task, TaskContext
from .mpi_dispatch import Dispatcher
from .mpi_ft import (
    LAUNCH_HINT,
    agree_on_failures,
    quiet_agreement,
    ulfm_enabled,
)
from .mpi_launcher import kill_launchers
from .mpi_layout import SPLIT, Layout, mpi_layout
from .mpi_messages import (
    TAG_JOB,
    TAG_STOP,
    Sends,
    peer_failed,
    pickle_item,
    quiet_barrier,
    wait_for_message,
)
from .mpi_roster import Roster
from .mpi_runtime import finalize_mpi, flush_console, group_communicator, leave, mpi_module
from .mpi_worker import serve
from .sequential import SequentialExecutor

log = logging.getLogger("cluster_work")

LAST_WORDS = 1.0  # s: what an abandoning rank 0 waits for its launcher to pass its last lines on
STALL_FLOOR_VARIABLE = "CLUSTER_WORK_STALL_FLOOR"  # s: lowers the 60 s floor (for tests: a stall in seconds)


class MPIExecutor(Executor):
    """Rank 0's side: hands items to idle group leaders one at a time (dynamic load balancing), or, when
    it leads the one group (`-g 1`) or there are no workers, runs them itself. See the module docstring
    for the lifecycle; nothing collective happens before `__enter__`."""

    _task: Task  # its `lost` answers for an item whose rank died

    def __init__(self, task: Task, groups: int | None = None, group_size: int | None = None, finalize: bool = True,
                 stop: StopFlag = PROCESS_STOP, commits: GroupCommit = committer):
        self._MPI = mpi_module()
        self._commits = commits  # this process's group commit (what the store notes its writes in): made durable
        # before the process leaves the run
        self._finalize = finalize  # False: MPI stays usable after the block (a benchmark's next phase)
        self._task, self.stop = task, stop
        self._world = self._MPI.COMM_WORLD
        self._requested = (groups, group_size)
        self._ulfm = ulfm_enabled()
        self.worker_status: int | None = None  # on a worker rank, once it has served
        self._entered = self._released = self._stop_sent = False
        self._hosts: list[str] = []
        self._sends = Sends()
        # rank 0's, made in __enter__ (this one, with no leaders, only answers a question asked too early)
        self._dispatcher = Dispatcher(self._MPI, task, Layout(()), Roster([]), self._sends, self._ulfm, stop)
        self._console = contextlib.ExitStack()
        self._world_broken = False  # under -g 1: the one group lost a rank
        self._rank_died = False  # under ULFM: the survivors agreed at the end that a rank died
        self._exit_status = 1  # rank 0's, as the command line tells it (`ending`)
        self.figures = Figures(iterations_done=self._iterations_done, busy_seconds=self._busy_seconds,
                               describe=self._describe, stalled=lambda: self._dispatcher.stalled(),
                               hosts=self._all_hosts)

    # --- lifecycle ------------------------------------------------------------------------------------

    def __enter__(self) -> MPIExecutor | None:
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
        if self._ulfm:  # a dead rank raises instead of aborting the job (before the split: groups inherit it)
            world.Set_errhandler(self._MPI.ERRORS_RETURN)
        group_comm = group_communicator(self._MPI, self._layout, rank, self._ulfm)
        hosts = world.gather(socket.gethostname(), root=0)
        self._entered = True
        if rank != 0:
            self._serve_as_worker(group_comm)
            return None
        self._hosts = hosts
        leaders = [group[0] for group in self._layout.groups if group[0] != 0]
        roster = Roster(leaders, hosts, Liveness(_stall_floor()))
        self._dispatcher = Dispatcher(self._MPI, self._task, self._layout, roster, self._sends, self._ulfm, self.stop)
        self.workers = max(1, len(self._layout.groups))
        self._here = self._layout.rank0_leads or not leaders  # rank 0 runs the items itself
        own_comm = self._world if self._layout.rank0_leads else self._MPI.COMM_SELF
        self._local = SequentialExecutor(self._lead_task(), own_comm, self.stop)
        self._console.enter_context(console_guard())  # the launcher's console may go away mid-run
        self._warn_about_layout(size)
        return self

    def _serve_as_worker(self, group_comm: Any) -> None:
        rank = self._world.Get_rank()
        group = self._layout.group_of(rank)
        lost: list[int] | None = None
        try:
            if group is None:  # an idle rank: wait for the release
                wait_for_message(self._world, 0, TAG_JOB)
                self._world.recv(source=0, tag=TAG_JOB)
            else:
                with console_guard():  # a dead launcher's console stops the run instead of failing a print
                    lost = serve(self._MPI, self._task, self._world, group_comm, group[0] == rank, self._ulfm)
        except Exception as exc:
            if not peer_failed(exc):
                raise
            lost = [0]
        if lost is not None and 0 in lost:  # under ULFM: the job goes on, but the run is over
            log.error("MPI rank %d: rank 0, which schedules the run, is gone; exiting", rank)
            self._commits.commit()
            leave(EXIT_ORPHANED)
        self._commits.commit()
        self._last_barrier(lost is not None)
        self.worker_status = 0
        self._finalize_mpi(0)

    def _last_barrier(self, failed_here: bool) -> None:
        """Every live rank leaves the run together (see `quiet_barrier`); under ULFM only the survivors, who
        also agree whether a rank died (`failed_here`: this rank knows one did)."""
        if self._world.Get_size() > 1:
            if self._ulfm:
                self._rank_died = quiet_agreement(self._world, failed_here)
            else:
                quiet_barrier(self._world)

    def __exit__(self, *exc: Any) -> None:
        if self.worker_status is not None:  # a worker: it finished in __enter__
            return
        try:
            self.shutdown()
        finally:
            self._console.close()
            self._commits.commit()
            self._finalize_mpi(self._exit_status)

    def ending(self, status: int) -> None:
        self._exit_status = status

    def _finalize_mpi(self, status: int = EXIT_USAGE) -> None:
        """Finalize MPI (see `finalize_mpi`); but once a rank died (ULFM), end the process with `status`
        instead: Open MPI's MPI_Finalize may then wait forever for the dead rank in its closing fence (seen
        here now and then; open-mpi/ompi#11404). Every rank has committed its writes and passed the last
        agreement, so no message is left in flight; the launcher exits with rank 0's status."""
        if not self._finalize:
            return
        if not self._rank_died:
            finalize_mpi()
            return
        log.debug("leaving without MPI_Finalize, since a rank died")
        leave(status)

    def _warn_about_layout(self, size: int) -> None:
        idle, blocks = self._layout.idle, self._layout.groups
        if idle and blocks:
            log.warning("%d MPI rank(s) (%s) idle: %d workers make %d groups of %d", len(idle),
                        ", ".join(map(str, idle)), size - 1, len(blocks), len(blocks[0]))
        if not blocks:
            log.warning("only %d MPI rank(s) for groups of %d: running every job on rank 0 "
                        "(start more ranks with mpiexec -n)", size, self._requested[1] or 1)

    def _runs_here(self) -> bool:
        return self._here

    def _lead_task(self) -> RunItem:
        """The task as rank 0 runs it: alone with COMM_SELF, or under `-g 1` as the leader of every rank,
        with COMM_WORLD, after handing each the item to follow. Under ULFM the ranks agree after each item
        whether one died (as `mpi_worker.serve` does); if one did, the item fails and nothing more runs."""
        members = self._layout.contacts() if self._layout.rank0_leads else []
        group_ulfm = self._ulfm and bool(members)

        def lead(item: WorkItem, context: TaskContext) -> Outcome:
            if self._world_broken:  # the one group lost a rank: nothing can run any more
                return self._task(item, TaskContext(stop_requested=lambda: True))
            payload = pickle_item(item)
            for member in members:
                self._sends.send(self._world, payload, member, TAG_JOB)
            try:
                outcome = self._task(item, context)
            except Exception as exc:
                if not (group_ulfm and peer_failed(exc)):
                    raise
                outcome = None
            lost = agree_on_failures(self._MPI, self._world, self._world) if group_ulfm else []
            if not lost and outcome is not None:
                return outcome
            self._world_broken = True
            outcome = self._dispatcher.group_lost(item, outcome, lost, 0)
            log.error("the one group of every MPI rank (-g 1) lost a rank: the run stops; run the same command to "
                      "run the rest with the ranks it is given")
            self.stop.request()
            return outcome

        return lead

    # --- the executor interface on rank 0 -------------------------------------------------------------

    def _describe(self) -> str:
        size, groups = self._world.Get_size(), self._layout.groups
        if not groups or size == 1:
            return "MPI rank 0 alone"
        if self._layout.rank0_leads:
            return f"all {size} MPI ranks together, rank 0 leading (one job at a time)"
        if self._layout.comm == SPLIT:
            return f"{len(groups)} MPI groups of {len(groups[0])} ranks ({size} ranks in all)"
        return f"{self.workers} MPI workers ({size} ranks)"

    def submit(self, item: WorkItem) -> None:
        if self._runs_here():
            self._local.submit(item)
        else:
            self._dispatcher.submit(item)

    def in_flight(self) -> int:
        return self._local.in_flight() if self._runs_here() else self._dispatcher.in_flight()

    def has_capacity(self) -> bool:
        return self._local.has_capacity() if self._runs_here() else self._dispatcher.has_capacity()

    def cancel(self, index: int) -> None:
        if self._runs_here():
            self._local.cancel(index)
        else:
            self._dispatcher.cancel(index, self._cancel_queued)

    def next_outcome(self) -> Outcome:
        return self._local.next_outcome() if self._runs_here() else self._dispatcher.next_outcome()

    def watch_stalls(self, limit: float | None, on_change: Callable[[list[Silence]], None] | None = None) -> None:
        self._dispatcher.watch_stalls(limit, on_change)

    def abandon(self, status: int) -> NoReturn:
        """End the run now, launcher included (it may wait forever for an unreachable host): SIGKILL the
        launcher above rank 0, or, under a launcher that is not one (srun), abort through MPI."""
        flush_console()
        time.sleep(LAST_WORDS)  # the launcher forwards what rank 0 printed last
        if not kill_launchers():
            self._world.Abort(status)
        leave(status)

    def stop_hint(self) -> str | None:
        if self._ulfm or self._world.Get_size() == 1 or "open mpi" not in self._MPI.Get_library_version().lower():
            return None
        return (f"if the MPI launcher reported a rank that died, that ends every rank of the run: {LAUNCH_HINT}")

    # --- the rest of the interface --------------------------------------------------------------------

    def _all_hosts(self) -> list[str]:
        return list(self._hosts) or [socket.gethostname()]

    def world_size(self) -> int:
        return int(self._world.Get_size())

    def _iterations_done(self) -> int:
        return self._dispatcher.iterations + self._local.figures.iterations_done()

    def _busy_seconds(self) -> float:
        return self._dispatcher.roster.busy_clock.seconds() + self._local.figures.busy_seconds()

    def job_messages(self) -> int:
        """Messages of items sent to leaders so far (for tests and benchmarks: short items go in batches)."""
        return self._dispatcher.job_messages

    def outcome_messages(self) -> int:
        """Messages of outcomes received from leaders so far (for tests and benchmarks: see `mpi_reports`)."""
        return self._dispatcher.outcome_messages

    def forward_stop(self) -> None:
        """Tell the group leaders; rank 0's own group follows its decision (the runner's broadcast)."""
        if self._stop_sent or not self._entered:
            return
        self._stop_sent = True
        for leader in self._dispatcher.roster.serving:
            self._sends.send(self._world, None, leader, TAG_STOP, now=True)

    def terminate(self) -> None:
        log.warning("stopping at once: aborting every MPI rank")
        sys.stderr.flush()
        self._world.Abort(130)

    def shutdown(self) -> None:
        """Release every worker rank; after this all ranks leave their loops and exit cleanly. Under ULFM,
        only the live ones, and under `-g 1` only if the one group is whole (else its ranks have retired)."""
        if self._released or not self._entered:
            return
        self._released = True
        if not self._world_broken:
            for rank in self._dispatcher.roster.releasable(self._layout.contacts()):
                self._sends.send(self._world, None, rank, TAG_JOB)
            if self._layout.rank0_leads and self._ulfm and self._world.Get_size() > 1:
                agree_on_failures(self._MPI, self._world, self._world)  # as every member does after its None
        self._sends.complete()
        lost = self._dispatcher.roster.lost_line()
        if lost:
            log.warning("%s", lost)
        self._last_barrier(bool(self._dispatcher.roster.dead) or self._world_broken)


def _stall_floor() -> float:
    """The least silence that counts as a stall: 60 s, or what $CLUSTER_WORK_STALL_FLOOR says (tests)."""
    try:
        return float(os.environ.get(STALL_FLOOR_VARIABLE, STALL_FLOOR))
    except ValueError:
        return STALL_FLOOR

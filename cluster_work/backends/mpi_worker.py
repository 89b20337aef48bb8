"""A worker rank's side of the MPI backend: serve items from rank 0 until it releases the rank.

A group's leader gets its items from rank 0 (several at once when they are short: see `mpi_dispatch`), keeps
them in its `Inbox` with rank 0's other messages, and passes each on to its group as it starts it; a member
gets it from its group's rank 0 (world rank 0 itself under `-g 1`). Under ULFM (see `mpi_ft`) the group
agrees after each item whether it lost a member: if it did, the leader tells rank 0 (`GroupBroken`) instead
of sending the bare outcome, and every survivor of the group retires, since the group cannot run a
collective again.
"""
from __future__ import annotations

import logging
import pickle
from typing import Any

from .. import stopping
from .base import Task, TaskContext
from .mpi_ft import agree_on_failures
from .mpi_messages import (
    START_GAP,
    TAG_JOB,
    GroupBroken,
    Inbox,
    Sends,
    peer_failed,
    pickle_item,
    wait_for_message,
)
from .mpi_reports import Reports

log = logging.getLogger("cluster_work")


def _worker_context(index: int, group_comm: Any, inbox: Inbox | None, progress: Any) -> TaskContext:
    """What an item learns on a worker rank: stops and cancels from rank 0 (the leader reads them in its
    inbox; the runner broadcasts the leader's answer to its group). Before the item's first iteration the
    leader looks at MPI only every START_GAP (a run of short items asks twice per item, each time just
    after the last: a stop rank 0 sent then lets at most START_GAP of them start), after it at every
    question (a stop or cancel sent while an iteration runs is seen after it)."""
    if inbox is None:
        return TaskContext(comm=group_comm, write=False, stop_requested=stopping.stop_requested,
                           iteration_done=progress)
    ran = 0

    def done() -> None:
        nonlocal ran
        ran += 1
        progress()

    def gap() -> float:
        return 0.0 if ran else START_GAP

    return TaskContext(comm=group_comm, write=True,
                       stop_requested=lambda: stopping.stop_requested() or inbox.stopped(gap()),
                       cancelled=lambda: inbox.cancelled(index, gap()), iteration_done=done)


def _nothing() -> None:
    pass


def serve(MPI: Any, task: Task, world: Any, group_comm: Any, leader: bool, ulfm: bool) -> list[int] | None:
    """A worker's items until the None that ends them (then return None), or until its group breaks under
    ULFM (then return the world ranks it lost, as far as known).

    Under ULFM, with a group of more than one rank, every survivor of the group reaches the agreement
    after each message from the group's rank 0 exactly once, whatever failed in between: a failure
    revokes the group's communicator (see `mpi_ft.revoking_errhandler`), so that no survivor waits for
    the dead elsewhere. A failure talking to world rank 0 is not caught here: rank 0 is gone."""
    stopping.handle_stop_signals(hard_second=False)  # SIGTERM from mpiexec or Slurm: finish the iteration
    sends = Sends()
    inbox = Inbox(MPI, world) if leader else None
    reports = Reports(world, sends, batching=not ulfm) if leader else None  # see mpi_reports: kept outcomes die
    # with their leader, which under ULFM rank 0 outlives
    members = group_comm.Get_size() - 1  # the other ranks of its group (a leader passes each item on to them)
    group_ulfm = ulfm and members > 0
    prepare = getattr(task, "prepare", None)  # what the task does for a batch before its items run
    while True:
        item, outcome, broken = None, None, False
        if inbox is not None:
            item = inbox.next_item()
            new = inbox.take_new()
            if new and prepare is not None and not inbox.stopped(START_GAP):
                prepare(new)
        try:
            if leader:
                payload = pickle_item(item) if item is not None and members else None
                for member in range(1, members + 1):
                    sends.send(group_comm, payload, member, TAG_JOB)
            else:
                wait_for_message(group_comm, 0, TAG_JOB)
                payload = group_comm.recv(source=0, tag=TAG_JOB)
                item = pickle.loads(payload) if payload is not None else None
            if item is not None:
                if reports is not None:
                    reports.item_started(item)
                outcome = task(item, _worker_context(item.index, group_comm, inbox,
                                                     reports.iteration_done if reports is not None else _nothing))
        except Exception as exc:
            if not (group_ulfm and peer_failed(exc)):
                raise
            broken = True
        lost = agree_on_failures(MPI, group_comm, world) if group_ulfm else []
        if reports is not None and inbox is not None and item is not None:
            if lost or broken:
                reports.broken(GroupBroken(None if broken else outcome, lost))
            elif outcome is not None:
                reports.ended(outcome, inbox.held())
        if lost or broken:
            log.warning("MPI rank %d: its group lost rank(s) %s; it runs nothing more", world.Get_rank(),
                        ", ".join(map(str, lost)) or "?")
            if inbox is not None and item is not None:
                inbox.await_release()  # a retired leader: the items it holds are run elsewhere
            break
        if item is None:
            break
    if reports is not None:
        reports.flush()  # nothing kept: it sent what it kept when it ran out of items
    sends.complete()  # rank 0 sent nothing after the release: the inbox holds no stop or cancel unread
    return lost if lost or broken else None

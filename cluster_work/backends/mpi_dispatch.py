"""Rank 0's side of the MPI backend: hand items to the group leaders, take what they send back, notice which of
them died (under ULFM) or went silent.

Rank 0 keeps a queue of items, gives each idle leader one, tops up busy leaders in batches (see
`Dispatcher.dispatch`), and receives back small messages: progress counts and outcomes, those of short items
several to a message (`mpi_reports`).
Under ULFM (`mpi_ft`) a rank's death is noticed while rank 0 waits: the dead rank's last messages are taken
first (a matched probe still receives them), then the item it was running fails, recorded as lost
(`ExperimentTask.lost`), and what it held beyond that goes back to the queue (`mpi_roster`). A group that
lost a member says so through its leader (`GroupBroken`), which retires. Every second of waiting, the
workers' silences are checked (`liveness`): a stall is logged and recorded, and past the run's limit ends it
(`liveness.Stalled`).
"""
from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from ..liveness import Silence, Stalled
from ..stopping import PROCESS_STOP, StopFlag
from ..vocabulary import Outcome, OutcomeKind, WorkItem
from .base import Task, TaskContext
from .mpi_ft import failed_ranks, known_failures
from .mpi_layout import Layout
from .mpi_messages import (
    MAX_OUTCOME_POLL_SLEEP,
    TAG_CANCEL,
    TAG_JOB,
    TAG_PROGRESS,
    GroupBroken,
    Sends,
    peer_failed,
    pickle_item,
    poll_until,
)
from .mpi_roster import Roster

log = logging.getLogger("cluster_work")

HOLD_SECONDS = 0.04  # s of work a busy leader holds, its running item included (see batch_depth)
MAX_DEPTH = 64  # items a leader holds at most
SHORT_SECONDS = 0.005  # s: items shorter than this go in batches
TYPICAL_WEIGHT = 0.2  # the weight of the latest outcome in the typical item's seconds (a moving average)
CHECK_EVERY = 1.0  # s: how often rank 0 looks for stalled workers while it waits


def batch_depth(typical: float | None) -> int:
    """How many items a busy leader holds (the running one first), for items of `typical` seconds (None:
    not known yet): 2, one prefetched, so that it starts its next item the moment it sends the outcome of
    this one instead of a round trip to rank 0 later (a few ms each time on a loaded node, 8% of 20 ms
    items); for items shorter than SHORT_SECONDS, about HOLD_SECONDS of them, at most MAX_DEPTH: a leader
    is topped up once a quarter of that has run, in one message, so rank 0 (descheduled for tens of ms on a
    loaded node) has three quarters of HOLD_SECONDS to answer before the leader waits. A sweep's tail is
    then uneven by up to about HOLD_SECONDS; longer items keep the tail of a heterogeneous sweep even (a
    leader that holds a long item while another idles costs more than a round trip saves)."""
    if typical is None or typical >= SHORT_SECONDS:
        return 2
    return max(2, min(MAX_DEPTH, int(HOLD_SECONDS / max(typical, 1e-6))))


class Dispatcher:
    """Rank 0's items in flight on the group leaders of `roster` (see the module docstring)."""

    def __init__(self, MPI: Any, task: Task, layout: Layout, roster: Roster, sends: Sends, ulfm: bool,
                 stop: StopFlag = PROCESS_STOP):
        self._MPI, self._task, self._layout, self.roster, self._sends = MPI, task, layout, roster, sends
        self._stop = stop
        self._world, self._ulfm = MPI.COMM_WORLD, ulfm
        self._queue: collections.deque[WorkItem] = collections.deque()
        self._ready: collections.deque[Outcome] = collections.deque()
        self._reported: dict[int, int] = {}  # iterations a busy leader has reported for its current item
        self.iterations = 0
        self._status = MPI.Status()
        self._deaths_pending = False
        self._buried = 0  # world ranks known dead and dealt with
        self._stall_limit: float | None = None
        self._on_stall: Callable[[list[Silence]], None] = lambda silences: None
        self._stalled: list[Silence] = []
        self._checked = time.monotonic()
        self._typical: float | None = None  # s, a moving average of the items' own seconds (their outcomes')
        self._depth = batch_depth(None)  # batch_depth(self._typical), kept (asked several times per item)
        self.job_messages = 0  # messages of items sent (for tests and benchmarks: batches make them fewer)
        self.outcome_messages = 0  # messages of outcomes received (likewise: see mpi_reports)

    def submit(self, item: WorkItem) -> None:
        self._queue.append(item)
        self.dispatch(idle_only=True)  # a busy leader's next batch is sent when its holding runs low

    def depth(self) -> int:
        return self._depth

    def has_capacity(self) -> bool:
        """Whether to queue more: each serving leader's depth, and half as much again for its next batches
        (with no leader left, one: `dispatch` ends it unrun and stops the run)."""
        depth = self.depth()
        return self.in_flight() < max(1, len(self.roster.serving)) * (depth + depth // 2)

    def in_flight(self) -> int:
        return len(self._queue) + self.roster.holding() + len(self._ready)

    def cancel(self, index: int,
               cancel_queued: Callable[[collections.deque[WorkItem], collections.deque[Outcome], int], bool]) -> None:
        if cancel_queued(self._queue, self._ready, index):
            return
        leader = self.roster.holder_of(index)  # running, or waiting at its leader: it stops there
        if leader is not None:
            self._sends.send(self._world, index, leader, TAG_CANCEL, now=True)

    def next_outcome(self) -> Outcome:
        if not self._ready:
            self.dispatch()
        while not self._ready:
            if not self.roster.holding():
                raise RuntimeError("next_outcome() with nothing in flight")
            message = self._next_message()
            if message is not None:
                self._take(message)
            elif self._deaths_pending:
                self._bury()
            if time.monotonic() - self._checked >= CHECK_EVERY:
                self._check_stalls()
        return self._ready.popleft()

    def _next_message(self) -> Any:
        """A matched message from a worker, or None once a death is known or CHECK_EVERY has passed
        (sleeping while it waits)."""
        found: list[Any] = []

        def ready() -> bool:
            message = self._probe()
            if message is not None:
                found.append(message)
            return bool(found) or self._deaths_pending

        poll_until(ready, MAX_OUTCOME_POLL_SLEEP, timeout=CHECK_EVERY)
        return found[0] if found else None

    def _probe(self) -> Any:
        """A matched message from any worker (matched: it is still received after its sender died), or None;
        under ULFM notes a death (acknowledged, so that the probes go on)."""
        try:
            message = self._world.improbe(source=self._MPI.ANY_SOURCE, tag=self._MPI.ANY_TAG, status=self._status)
        except Exception as exc:
            if not (self._ulfm and peer_failed(exc)):
                raise
            self._world.Ack_failed()
            self._deaths_pending = True
            return None
        if message is None and self._ulfm and known_failures(self._MPI, self._world) > self._buried:
            self._deaths_pending = True
        return message

    def _take(self, message: Any) -> None:
        source, tag = self._status.Get_source(), self._status.Get_tag()
        payload = message.recv()
        if tag == TAG_PROGRESS:
            self._reported[source] = self._reported.get(source, 0) + payload
            self.iterations += payload
            self.roster.heard(source, payload)
            return
        self.outcome_messages += 1
        for one in payload if isinstance(payload, list) else (payload,):  # a leader's outcomes, in order
            self._ended(source, one)
        self.dispatch()

    def _ended(self, source: int, payload: Outcome | GroupBroken) -> None:
        """The running item of leader `source` ended as `payload` says."""
        ended = payload.outcome if isinstance(payload, GroupBroken) else payload
        ran = ended.iterations_run if ended is not None else 0
        if ended is not None:
            self._typical = ended.seconds if self._typical is None else \
                (1 - TYPICAL_WEIGHT) * self._typical + TYPICAL_WEIGHT * ended.seconds
            self._depth = batch_depth(self._typical)
        new = max(0, ran - self._reported.pop(source, 0))  # a lost item's rows on disk still count
        self.iterations += new
        item = self.roster.ended(source, new)
        if isinstance(payload, GroupBroken):
            self._queue.extendleft(reversed(self.roster.retire(source)))
            payload = self.group_lost(item, payload.outcome, payload.lost, source)
        self._ready.append(payload)

    def group_lost(self, item: WorkItem, outcome: Outcome | None, lost: list[int], leader: int) -> Outcome:
        """The outcome of `item`, which the group led by `leader` ran when it lost ranks `lost`: a failure
        (recorded as one) unless it ended well all the same. The lost ranks are written off."""
        for rank in lost:
            self.roster.died(rank)
        names = ", ".join(self.roster.where(rank) for rank in lost) or "a rank"
        log.error("%s died; the group of MPI ranks %s runs nothing more", names,
                  ", ".join(map(str, self._layout.group_of(leader) or ())))
        if outcome is not None and outcome.kind != OutcomeKind.FAILED:
            return outcome
        return self._task.lost(item, self._stop.requested(),
                               cause=f"{names} died{self._in_group(leader)}")

    def _in_group(self, rank: int) -> str:
        """' (in the group of MPI ranks 3, 4)' for a rank of a group of several, else ''."""
        group = self._layout.group_of(rank) or ()
        return f" (in the group of MPI ranks {', '.join(map(str, group))})" if len(group) > 1 else ""

    def _bury(self) -> None:
        """Deaths are known: take the dead ranks' last words first, then fail the item each was running,
        put back what it held beyond that, and never send to it again."""
        self._deaths_pending = False
        while (message := self._probe()) is not None:
            self._take(message)
        ranks = failed_ranks(self._MPI, self._world)
        self._buried = len(ranks)
        for rank in ranks:
            if rank in self.roster.dead:
                continue
            running, prefetched = self.roster.died(rank)
            self._queue.extendleft(reversed(prefetched))
            self._reported.pop(rank, None)
            cause = f"{self.roster.where(rank)} died{self._in_group(rank)}"
            what = f"; {running.label} fails" if running is not None else ""
            log.error("%s%s%s", cause, what,
                      f"; {len(prefetched)} job(s) it held go back to the queue" if prefetched else "")
            if running is not None:
                self._ready.append(self._task.lost(running, self._stop.requested(),
                                                   cause=cause))
        self.dispatch()

    def dispatch(self, idle_only: bool = False) -> None:
        """Hand queued items out, each leader's in one message: to every idle leader, and (unless `idle_only`)
        to every busy one that has run a quarter of its `depth` (of 2: one), up to that depth; leaders that
        hold the fewest first, so that a short queue is shared. Only what is queued here: at a sweep's end
        each leader runs what it holds. With no leader left (all died or retired), the queued items end unrun,
        and the run stops."""
        if self._queue and not self.roster.serving:
            log.error("no MPI worker left to run the %d job(s) queued: the run stops; run the same command "
                      "to run them", len(self._queue))
            self._stop.request()
            while self._queue:
                self._ready.append(self._task(self._queue.popleft(), TaskContext(stop_requested=lambda: True)))
            return
        if not self._queue:
            return
        held, depth = self.roster.held, self.depth()
        low = 0 if idle_only else depth - max(1, depth // 4)
        needy = sorted((leader for leader in self.roster.serving if len(held[leader]) <= low),
                       key=lambda leader: len(held[leader]))
        batches: dict[int, list[Any]] = {leader: [] for leader in needy}
        while self._queue and needy:
            for leader in list(needy):
                if not self._queue:
                    break
                batches[leader].append(self._queue.popleft())
                if len(held[leader]) + len(batches[leader]) >= depth:
                    needy.remove(leader)
        for leader, items in batches.items():
            if items:
                self._sends.send(self._world, pickle_item(items), leader, TAG_JOB)
                self.job_messages += 1
                for item in items:
                    self.roster.assign(leader, item)

    # --- stalls ---------------------------------------------------------------------------------------

    def watch_stalls(self, limit: float | None, on_change: Callable[[list[Silence]], None] | None = None) -> None:
        """See `Executor.watch_stalls`: the limit also becomes the floor below which nobody counts as stalled."""
        if limit is not None:
            self._stall_limit = limit
            self.roster.liveness.floor = limit
        if on_change is not None:
            self._on_stall = on_change

    def stalled(self) -> list[Silence]:
        return list(self._stalled)

    def _check_stalls(self) -> None:
        """Log the workers that turned silent (and those heard from again); past the limit, end the run."""
        self._checked = time.monotonic()
        silences = self.roster.stalled()
        before, now = {s.worker for s in self._stalled}, {s.worker for s in silences}
        self._stalled = silences
        if before != now:
            self._on_stall(silences)
        if silences and self._stall_limit is not None:
            raise Stalled(silences, self._stall_limit)
        for silence in silences:
            if silence.worker not in before:
                log.warning("%s", silence.describe())
        for worker in sorted(before - now - set(self.roster.dead)):
            log.info("%s is heard from again", self.roster.where(worker))

"""Messages between MPI ranks without spinning a core: polls that sleep, sends that never block, and the
small messages a worker reads between iterations (rank 0's stop and cancels; what it sends is in `mpi_reports`).

Nobody waits in a blocking call, which Open MPI implements by spinning a core. Waits poll with `Iprobe`
and sleep for a twentieth of the time waited so far (at most `MAX_POLL_SLEEP`): a short item's reply is
seen within a few percent of its length, and a rank idle for long wakes at most 100 times a second.
Sends are non-blocking (`isend`): with Open MPI's shared-memory transport a blocking send waits, spinning,
until the receiver next enters MPI, which for a sleeping receiver is up to a poll interval.
"""
from __future__ import annotations

import collections
import pickle
import sys
import time
from dataclasses import dataclass
from typing import Any

from .. import stopping
from ..vocabulary import Outcome, WorkItem

TAG_JOB, TAG_OUTCOME, TAG_STOP, TAG_PROGRESS, TAG_CANCEL = 11, 12, 13, 14, 15
MAX_POLL_SLEEP = 0.01  # s: an idle rank wakes at most 100 times a second
MAX_OUTCOME_POLL_SLEEP = 0.002  # s: rank 0 notices a finished item within 2 ms (a few % CPU at most)
MIN_POLL_SLEEP = 1e-5
PURGE_AT = 16  # sends kept before the completed ones are let go (see Sends)
START_GAP = 0.02  # s: a leader looks for rank 0's stop and cancels at most this often before an item's first
#                   iteration (see Inbox, `mpi_worker._worker_context`)
POLL_FRACTION = 0.05  # sleep this share of the time waited so far


def poll_until(ready: Any, max_sleep: float = MAX_POLL_SLEEP, timeout: float | None = None) -> bool:
    """Call `ready()` until it returns true (then return True), sleeping in between in proportion to the
    time waited; give up after `timeout` seconds, if given (then return False)."""
    if ready():
        return True
    started = time.perf_counter()
    while True:
        waited = time.perf_counter() - started
        if timeout is not None and waited >= timeout:
            return False
        time.sleep(min(max_sleep, max(MIN_POLL_SLEEP, waited * POLL_FRACTION)))
        if ready():
            return True


def peer_failed(exc: BaseException) -> bool:
    """Whether `exc` is MPI's word that a rank died, or that a survivor revoked the communicator because
    of it (under ULFM: see `mpi_ft`; without it, MPI aborts the job instead of raising)."""
    MPI = sys.modules.get("mpi4py.MPI")
    if MPI is None or not isinstance(exc, MPI.Exception):
        return False
    return exc.Get_error_class() in {MPI.ERR_PROC_FAILED, getattr(MPI, "ERR_PROC_FAILED_PENDING", -1),
                                     getattr(MPI, "ERR_REVOKED", -1)}


def wait_for_message(comm: Any, source: int, tag: int, status: Any = None,
                     max_sleep: float = MAX_POLL_SLEEP) -> None:
    """Return once a message matching (source, tag) has arrived, without spinning a core."""
    poll_until(lambda: comm.Iprobe(source=source, tag=tag, status=status), max_sleep)


class Sends:
    """Non-blocking sends kept alive until complete (MPI progresses them while we poll). A send to a rank
    that died is dropped: nobody is there to receive it (under ULFM; without it the job has ended).
    Completed ones are let go in bulk, with one MPI call for PURGE_AT of them (each call into MPI can give
    the core away on an oversubscribed node: see Inbox)."""

    def __init__(self) -> None:
        self._requests: list[Any] = []

    def send(self, comm: Any, message: Any, dest: int, tag: int, now: bool = False) -> None:
        """Send `message`; `now`: return only once it has left (a small message: copied to the receiver's
        side), so that a receiver that looks after an event this process causes next sees it (a stop or a
        cancel: MPI may otherwise hold a send back until this process next calls into it)."""
        if len(self._requests) >= PURGE_AT:
            self._purge()
        try:
            request = comm.isend(message, dest=dest, tag=tag)
        except Exception as exc:
            if not peer_failed(exc):
                raise
            return
        if now:
            poll_until(lambda: _done(request))
        else:
            self._requests.append(request)

    def _purge(self) -> None:
        requests = self._requests
        try:
            done = type(requests[0]).Testsome(requests)
        except Exception as exc:
            if not peer_failed(exc):
                raise
            self._requests = [r for r in requests if not _done(r)]
            return
        if done:
            finished = set(done)
            self._requests = [r for i, r in enumerate(requests) if i not in finished]

    def complete(self) -> None:
        for request in self._requests:
            poll_until(lambda request=request: _done(request))
        self._requests = []


def _done(request: Any) -> bool:
    try:
        return bool(request.Test())
    except Exception as exc:
        if not peer_failed(exc):
            raise
        return True


def quiet_barrier(comm: Any) -> None:
    """A barrier that sleeps instead of spinning: every rank leaves the sweep together, so that a
    non-zero exit of rank 0 does not make mpiexec kill workers that are still on their way out."""
    request = comm.Ibarrier()
    poll_until(request.Test)


def pickle_item(item: WorkItem | list[WorkItem]) -> bytes:
    """Plain pickle (fast; every rank runs the same script, so classes in __main__ resolve), and
    cloudpickle for what it cannot carry, such as lambdas in params. A list of items (rank 0's batch for a
    leader) is one pickle: each class, enum and shared string is then written once, not once per item,
    which makes pickling and unpickling a short item's about 4 times cheaper (some 10 us each side)."""
    try:
        return pickle.dumps(item, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, AttributeError, TypeError):
        import cloudpickle

        return cloudpickle.dumps(item)


@dataclass
class GroupBroken:
    """What a group's leader sends rank 0 instead of an outcome once its group lost a member: the item's
    `outcome` (None: its run broke off) and the world ranks `lost`. The leader then retires."""

    outcome: Outcome | None
    lost: list[int]


class Inbox:
    """What rank 0 sends a group leader, all read with one probe: its items (a list of items pickled as one
    per message: rank 0 sends short items in batches), the release (None), a stop, cancels (item indices).
    `take_new` hands the items received since it was last asked (what the leader prepares together: see
    `ExperimentTask.prepare`).

    The leader takes its next item from here (waiting only when it holds none), and asks between
    iterations whether the run is stopping or an item was cancelled. A question with a `gap` looks at MPI
    only if the last look is `gap` old: on an oversubscribed node every probe that finds nothing gives the
    core away (Open MPI yields when idle), which under load costs about a millisecond, more than a short
    item. A stop or a cancel is then seen within `gap` of its arrival."""

    def __init__(self, MPI: Any, comm: Any):
        self._comm, self._any_tag, self._status = comm, MPI.ANY_TAG, MPI.Status()
        self._items: collections.deque[Any] = collections.deque()
        self._new: list[Any] = []
        self._released = self._stop = False
        self._cancelled: set[int] = set()
        self._looked = float("-inf")

    def next_item(self) -> Any:
        """The next item, waiting for one if none is held; None once rank 0 released the leader. A dead rank 0
        (under ULFM) raises here: the run is over for this rank."""
        while not self._items:
            if self._released:
                return None
            poll_until(self._arrived)
        return self._items.popleft()

    def held(self) -> int:
        """The items received and not yet taken (what the leader runs next)."""
        return len(self._items)

    def take_new(self) -> list[Any]:
        """The items received since the last call (unpickled)."""
        new, self._new = self._new, []
        return new

    def await_release(self) -> None:
        """Drop every item until the release (a retired leader's: rank 0 runs them elsewhere)."""
        while self.next_item() is not None:
            pass

    def stopped(self, gap: float = 0.0) -> bool:
        if not self._stop:
            self._look(gap)
        return self._stop

    def cancelled(self, index: int, gap: float = 0.0) -> bool:
        self._look(gap)
        return index in self._cancelled

    def _arrived(self) -> bool:
        self._read()
        return bool(self._items) or self._released

    def _look(self, gap: float) -> None:
        """Read what arrived, unless that was done less than `gap` ago. Once rank 0 is dead (under ULFM)
        the run is stopping: the item stops after its iteration, resumable, instead of failing on the error."""
        if time.monotonic() - self._looked < gap:
            return
        try:
            self._read()
        except Exception as exc:
            if not peer_failed(exc):
                raise
            stopping.request_stop()
            self._stop = True

    def _read(self) -> None:
        """Receive every message rank 0 has sent, in the order it sent them. A probe that finds nothing is
        tried once more: it may just have taken an arrived message in (Open MPI's shared memory hands a
        probe what came before its progress, not during it), and a stop or cancel that rank 0 sent before
        something the leader waited for (a file, say) must be seen at the leader's next look."""
        retried = False
        while True:
            message = self._comm.improbe(source=0, tag=self._any_tag, status=self._status)
            if message is None:
                if retried:
                    break
                retried = True
                continue
            tag, payload = self._status.Get_tag(), message.recv()
            if tag == TAG_JOB:
                if payload is None:
                    self._released = True
                else:
                    items = pickle.loads(payload)
                    self._items.extend(items)
                    self._new.extend(items)
            elif tag == TAG_STOP:
                self._stop = True
            elif tag == TAG_CANCEL:
                self._cancelled.add(payload)
        self._looked = time.monotonic()

"""Messages between MPI ranks without spinning a core: polls that sleep, sends that never block, and the
small messages a worker reads between iterations (rank 0's stop and cancels) or sends (its progress).

Nobody waits in a blocking call, which Open MPI implements by spinning a core. Waits poll with `Iprobe`
and sleep for a twentieth of the time waited so far (at most `MAX_POLL_SLEEP`): a short item's reply is
seen within a few percent of its length, and a rank idle for long wakes at most 100 times a second.
Sends are non-blocking (`isend`): with Open MPI's shared-memory transport a blocking send waits, spinning,
until the receiver next enters MPI, which for a sleeping receiver is up to a poll interval.
"""
from __future__ import annotations

import pickle
import sys
import time
from dataclasses import dataclass
from typing import Any

from .. import stopping
from ..vocabulary import Outcome, WorkItem

TAG_JOB, TAG_OUTCOME, TAG_STOP, TAG_PROGRESS, TAG_CANCEL = 11, 12, 13, 14, 15
PROGRESS_EVERY = 0.5  # s: a worker tells rank 0 its iteration count at most this often
MAX_POLL_SLEEP = 0.01  # s: an idle rank wakes at most 100 times a second
MAX_OUTCOME_POLL_SLEEP = 0.002  # s: rank 0 notices a finished item within 2 ms (a few % CPU at most)
MIN_POLL_SLEEP = 1e-5
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
    that died is dropped: nobody is there to receive it (under ULFM; without it the job has ended)."""

    def __init__(self) -> None:
        self._requests: list[Any] = []

    def send(self, comm: Any, message: Any, dest: int, tag: int) -> None:
        self._requests = [r for r in self._requests if not _done(r)]
        try:
            self._requests.append(comm.isend(message, dest=dest, tag=tag))
        except Exception as exc:
            if not peer_failed(exc):
                raise

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


def pickle_item(item: WorkItem) -> bytes:
    """Plain pickle (fast; every rank runs the same script, so classes in __main__ resolve), and
    cloudpickle for what it cannot carry, such as lambdas in params."""
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


class ProgressMessages:
    """A worker's iteration sink: adds up iterations and sends the count to rank 0 now and then (rank 0
    also hears from it that the worker is alive: see `liveness`)."""

    def __init__(self, comm: Any, sends: Sends):
        self._comm, self._sends = comm, sends
        self._count, self._last = 0, time.monotonic()

    def __call__(self) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= PROGRESS_EVERY:
            self._sends.send(self._comm, self._count, 0, TAG_PROGRESS)
            self._count, self._last = 0, now


class StopMessage:
    """A worker's stop flag: set once rank 0 has sent TAG_STOP (checked between iterations)."""

    def __init__(self, comm: Any):
        self._comm, self._set = comm, False

    def is_set(self) -> bool:
        if not self._set:
            self._set = _probe_rank0(self._comm, TAG_STOP)
        return self._set


class CancelMessages:
    """A leader's view of the cancels rank 0 sent (read between iterations; indices are unique per run)."""

    def __init__(self, comm: Any):
        self._comm, self._cancelled = comm, set[int]()

    def has(self, index: int) -> bool:
        while _probe_rank0(self._comm, TAG_CANCEL):
            self._cancelled.add(self._comm.recv(source=0, tag=TAG_CANCEL))
        return index in self._cancelled


def _probe_rank0(comm: Any, tag: int) -> bool:
    """Whether rank 0 sent a message with `tag`; once rank 0 is dead (under ULFM), the run is stopping:
    the item stops after its iteration, resumable, instead of failing on the error."""
    try:
        return bool(comm.Iprobe(source=0, tag=tag))
    except Exception as exc:
        if not peer_failed(exc):
            raise
        stopping.request_stop()
        return tag == TAG_STOP

"""One local worker process (`-n N`, see `processes`): it serves the items its parent sends down its own
connection, one at a time, and marks in shared memory which one it began, so that the parent always knows
what a worker that died was running.

    parent -> worker   a token (8 bytes, unique per item sent) + the item (cloudpickle), or b"" to leave
    worker -> parent   DONE + the pickled outcome, or RAISED + the pickled (exception, traceback text)
                       if the task raised

The parent may send a second item while the first runs (it waits, unread, in the connection). Before it
unpickles an item, the worker claims it: under a lock shared with the parent, it writes the item's token
to its slot of `began`, unless the parent has withdrawn that token (its slot of `withdrawn`: the item was
cancelled, or given to an idle worker), in which case it skips the item without a word. So an item is
run at most once, and if the worker dies, the item whose token is in its slot is the one it ran; the
other is innocent. What else the parent and its workers share: a stop event, the count of saved
iterations (for the live display), and a small ring of cancelled item indices with their count, which
`cancelled()` reads between iterations (the ring only once the count moved).
"""
from __future__ import annotations

import multiprocessing.util
import os
import pickle
import signal
import traceback
from typing import Any

from .. import stopping
from ..durability import committer
from ..orphans import exit_when_orphaned
from .base import TaskContext

DONE, RAISED = b"d", b"r"  # the first byte of each message a worker sends
TOKEN_BYTES = 8
CANCEL_RING = 256  # the most recent cancels a worker can see; far more than items in flight (2 per worker)
STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class Claims:
    """Which item each worker slot began, and which one the parent withdrew from it and the worker has not
    skipped yet (tokens; -1: none), decided under one lock, so that an item is either begun by its worker or
    withdrawn, never both. One withdrawal at a time per slot: the next waits until the worker skipped it."""

    def __init__(self, context: Any, slots: int):
        self.lock = context.Lock()
        self.began = context.Array("q", [-1] * slots, lock=False)
        self.withdrawn = context.Array("q", [-1] * slots, lock=False)

    def claim(self, slot: int, token: int) -> bool:
        """The worker's side: begin item `token`, unless it was withdrawn (from here on a death is its)."""
        with self.lock:
            if self.withdrawn[slot] == token:
                self.withdrawn[slot] = -1
                return False
            self.began[slot] = token
            return True

    def withdraw(self, slot: int, token: int) -> bool:
        """The parent's side: take item `token` back from the worker in `slot`, unless it began it."""
        with self.lock:
            if self.began[slot] == token or self.withdrawn[slot] != -1:
                return False
            self.withdrawn[slot] = token
            return True

    def reset(self, slot: int) -> None:
        """For a new worker in the slot of a dead one: nothing begun, nothing withdrawn."""
        self.began[slot] = self.withdrawn[slot] = -1


class Cancelled:
    """A worker's `cancelled()` for item `index`: reads the parent's count of cancels each time (one
    shared integer), and looks through the ring of cancelled indices only when that count moved."""

    def __init__(self, index: int, ring: Any, count: Any):
        self.index, self.ring, self.count = index, ring, count
        self.seen, self.found = -1, False

    def __call__(self) -> bool:
        count = self.count.value
        if count != self.seen and not self.found:
            self.seen, self.found = count, self.index in self.ring[:]
        return self.found


def serve(connection: Any, slot: int, pickled_task: bytes, stop_event: Any, iterations: Any, ring: Any,
          cancels: Any, claims: Any, main_pid: int) -> None:
    """The worker process's main function: serve items until the parent says b"" or is gone."""
    import cloudpickle

    exit_when_orphaned(f"worker process {os.getpid()}", pid=main_pid)  # a kill -9 of the run ends its workers
    stopping.handle_stop_signals(hard_second=False)  # a signal only asks to stop after the iteration
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)  # blocked since the spawn (processes._spawning)
    multiprocessing.util.Finalize(None, committer.commit, exitpriority=10)  # durable before the worker leaves
    task = cloudpickle.loads(pickled_task)

    def count() -> None:
        with iterations.get_lock():
            iterations.value += 1

    while True:
        try:
            data = connection.recv_bytes()
        except (EOFError, OSError):  # the parent is gone
            return
        if not data:
            return
        if not claims.claim(slot, int.from_bytes(data[:TOKEN_BYTES], "little")):
            continue  # withdrawn by the parent: answered there, or sent to another worker
        try:
            item = cloudpickle.loads(memoryview(data)[TOKEN_BYTES:])
            context = TaskContext(stop_requested=lambda: stop_event.is_set() or stopping.stop_requested(),
                                  cancelled=Cancelled(item.index, ring, cancels), iteration_done=count)
            reply = DONE + pickle.dumps(task(item, context), pickle.HIGHEST_PROTOCOL)
        except BaseException as exc:  # a bug, not the experiment's error (the task isolates those): raised there
            reply = RAISED + _pickled_exception(exc)
        connection.send_bytes(reply)


def _pickled_exception(exc: BaseException) -> bytes:
    text = "".join(traceback.format_exception(exc))
    try:
        return pickle.dumps((exc, text), pickle.HIGHEST_PROTOCOL)
    except Exception:  # an exception that does not pickle: its words still reach the parent
        return pickle.dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), text), pickle.HIGHEST_PROTOCOL)


class WorkerTraceback(Exception):
    """The traceback of an exception raised in a worker process (the cause of the one the parent raises)."""

    def __str__(self) -> str:
        return f"\n\nin the worker process:\n{self.args[0]}"


def unpickled_exception(payload: bytes) -> BaseException:
    """The exception a RAISED message carries, with the worker's traceback as its cause."""
    exc, text = pickle.loads(payload)
    exc.__cause__ = WorkerTraceback(text)
    return exc

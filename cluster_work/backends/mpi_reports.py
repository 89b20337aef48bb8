"""What a group leader tells rank 0: the outcomes of its items, and while an item runs, its iteration counts.

Outcomes of short items travel together. One message per outcome costs each side about 20 us of CPU (pickling,
`isend`, a probe and a receive, rank 0's bookkeeping and a dispatch), as much again as a no-op job's own work on
an oversubscribed node, so a leader that still holds items keeps the outcomes of those that ended and sends
them in one message once a quarter of what it held has ended: the moment rank 0 would top it up anyway (see
`mpi_dispatch.Dispatcher.dispatch`), so the top-up leaves as early as before. It sends at once when it holds
nothing more (rank 0 learns that it is idle and hands it work without delay: a heterogeneous sweep's makespan
stays level with one outcome per message), when the oldest kept outcome is OUTCOME_WINDOW old (checked at its
items' iteration boundaries too), before an item of another document starts, and before anything else it
sends (a progress count must never arrive before the outcome of the item before it: rank 0 counts progress
against the item it believes runs). So an outcome waits at most OUTCOME_WINDOW, or, where one item of a
document is far longer than the short ones before it (rank 0 sends batches only of items it expects short:
`mpi_dispatch.batch_depth`), until that item's first iteration ends.

A kept outcome dies with its leader. Without ULFM that loses nothing: a rank's death ends every rank of the
run, rank 0 included, and a rerun plans from the files, where the finished items' rows are (with their
attempts journals' ends). Under ULFM rank 0 goes on and must know which of a dead leader's items ended: it
fails the one it believes runs (recording its repetition as failed) and runs the rest elsewhere. So under
ULFM (`batching` False) every outcome leaves as soon as its item ends, as an outcome per message did.
"""
from __future__ import annotations

import time
from typing import Any

from ..vocabulary import Outcome
from .mpi_messages import TAG_OUTCOME, TAG_PROGRESS, GroupBroken, Sends

PROGRESS_EVERY = 0.5  # s: a worker tells rank 0 its iteration count at most this often
OUTCOME_WINDOW = 0.01  # s: the longest a leader keeps an outcome back (a quarter of HOLD_SECONDS)
SHARE = 4  # a leader sends its kept outcomes once they are this share (1/SHARE) of what it held


def document_of(item: Any) -> str:
    """The document (the config's experiment, before expansion) an item belongs to, else its class: the items of a
    grid are one document's, with iterations alike enough to keep their outcomes back together."""
    experiment = getattr(item, "experiment", None)
    return str(getattr(experiment, "base_name", None) or type(item).__name__)


class Reports:
    """A leader's messages to rank 0 (world rank 0 on `comm`): outcomes, kept back while `batching` as the
    module docstring says, and iteration counts at most every PROGRESS_EVERY (rank 0 also hears from them
    that the worker is alive: see `liveness`), counted per item (`item_started`): rank 0 subtracts what it
    heard of an item from its outcome's count."""

    def __init__(self, comm: Any, sends: Sends, batching: bool):
        self._comm, self._sends, self._batching = comm, sends, batching
        self._kept: list[Outcome] = []
        self._since = 0.0  # when the oldest kept outcome was kept
        self._count, self._last = 0, time.monotonic()
        self._document: str | None = None  # that of the items whose outcomes are kept

    def item_started(self, item: Any) -> None:
        """`item` starts: its iterations count from 0. Outcomes kept from items of another document go first,
        so that rank 0 knows what runs (it holds a silent worker to the iteration times of that: see
        `liveness`), whatever this one's iterations take."""
        document = document_of(item)
        if document != self._document:
            self.flush()
            self._document = document
        self._count, self._last = 0, time.monotonic()

    def iteration_done(self) -> None:
        self._count += 1
        now = time.monotonic()
        if self._kept and now - self._since >= OUTCOME_WINDOW:
            self.flush()
        if now - self._last >= PROGRESS_EVERY:
            self.flush()
            self._sends.send(self._comm, self._count, 0, TAG_PROGRESS)
            self._count, self._last = 0, now

    def ended(self, outcome: Outcome, held: int) -> None:
        """The item that ran ended with `outcome`; the leader holds `held` more (not started)."""
        kept = self._kept
        now = time.monotonic()
        if not kept:
            self._since = now
        kept.append(outcome)
        if not self._batching or len(kept) * SHARE >= len(kept) + held or now - self._since >= OUTCOME_WINDOW:
            self.flush()

    def broken(self, message: GroupBroken) -> None:
        """The group lost a member (ULFM): what rank 0 gets instead of the outcome (after the kept ones)."""
        self.flush()
        self._sends.send(self._comm, message, 0, TAG_OUTCOME)

    def flush(self) -> None:
        """Send the kept outcomes, in the order their items ended: one as itself, several as a list."""
        kept = self._kept
        if kept:
            self._sends.send(self._comm, kept[0] if len(kept) == 1 else kept, 0, TAG_OUTCOME)
            self._kept = []

"""The export cursor: what one exporter has put into one tracker destination, per repetition.

One JSON line per update, appended with a single `write` (`{"key": "<base>/<params>/rep_NN", ...entry}`);
the last line of a key wins, and a torn last line (a kill during the write) is ignored, as in a results
file. The first line is a header with the journal's `sweep_id`, a random name the trackers tag runs with
so that a restarted exporter finds its runs again (and a moved sweep folder keeps them). When the lines
outnumber the keys by far, the journal is rewritten whole (`store.atomic_write`: readers see the old or
the new file, never a part).

An entry (see `engine`): `gen` (the tracker run's generation: one more each time the repetition's rows
were rewritten and its run replaced), `rows`, `bytes` and `fp` (how many rows were exported, the length
of that prefix of the results file, and its digest), `sig` (the files' stat signature then, to skip
unchanged repetitions after a restart), `state`, `pending` (set before a write to the tracker, cleared
after: a pending entry after a crash means the tracker may hold more than `rows`), and the tracker's own
fields (its run id, event file, segments).

Only the exporter holding the lock beside the journal (`flock`, dropped by the kernel when it dies)
writes it: two exporters into one destination would export every row twice.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import uuid
from typing import Any

from ..files import atomic_write

HEADER = "cluster_work export journal"


class JournalBusy(Exception):
    """Another live exporter holds this journal."""


class Journal:
    """The cursor journal at `path` (see the module); `open()` locks and reads it."""

    def __init__(self, path: str):
        self.path = path
        self.entries: dict[str, dict[str, Any]] = {}
        self.sweep_id = ""
        self._fd = -1
        self._lock_fd = -1
        self._lines = 0

    def open(self) -> None:
        """Lock the journal for this process (JournalBusy if another holds it) and read it."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self._lock_fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._lock_fd)
            self._lock_fd = -1
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise JournalBusy(self.path) from None
            raise
        self._read()
        if not self.sweep_id:
            self.sweep_id = uuid.uuid4().hex[:12]
            self._rewrite()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return
        lines = data[:data.rfind(b"\n") + 1].splitlines()
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn line from a kill: the entry before it stands
            if record.get("journal") == HEADER:
                self.sweep_id = str(record.get("sweep_id", ""))
            elif isinstance(record.get("key"), str):
                key = record.pop("key")
                self.entries[key] = record
        self._lines = len(lines)

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, entry: dict[str, Any]) -> None:
        """Record `entry` for `key` (one append; not synced: this guards against kills, as the store's
        rows without group commits do; see the README)."""
        self.entries[key] = entry
        os.write(self._fd, (json.dumps({"key": key, **entry}, separators=(",", ":")) + "\n").encode())
        self._lines += 1
        if self._lines > 2 * len(self.entries) + 1000:
            self._rewrite()

    def _rewrite(self) -> None:
        """The journal with one line per key (atomically replacing the old one)."""
        lines = [json.dumps({"journal": HEADER, "sweep_id": self.sweep_id})]
        lines += [json.dumps({"key": key, **entry}, separators=(",", ":")) for key, entry in self.entries.items()]
        atomic_write(self.path, ("\n".join(lines) + "\n").encode(), sync=False)
        self._lines = len(lines)
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def close(self) -> None:
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._lock_fd = -1

"""A campaign's journal: one JSON object per line, appended, never rewritten; a torn last line dropped.

The first record describes the campaign (`{"k": "campaign", ...}`); then come, in the order the
campaign processed them, what it was told (`{"k": "end", ...}`: a run that ended, with the values it
decided on) and what it decided (`run`, `stop`, `add`, `finish`; see `actions`). Decisions are made
durable (written and fsynced, with everything before them) before `commit` returns, so before the
engine acts on them; what the campaign was told is only buffered: if it is lost, the run is asked for
again on resume and its saved rows give the same values.

A kill can tear only the last line (a record is one `write`); reading drops it, and the first append
after that cuts it off first, so a torn tail never glues onto the next record. A line that is not
JSON anywhere else is corruption, reported with its line number.

A run that steers the campaign holds the journal (`lock`: an exclusive flock on the file, which dies
with its holder), so that two runs never append to one campaign; readers (-p) need no lock.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
from typing import Any

from ..errors import StoreError
from ..paths import CAMPAIGN_JOURNAL_FILE
from .actions import SteeringError

JOURNAL_FILE = CAMPAIGN_JOURNAL_FILE
_BUFFERED_LINES = 4096  # records told to the campaign are written in batches this large at most


class JournalError(SteeringError, StoreError):
    """The journal's file cannot be read or written (a full or read-only disk): the store's failure."""


class CampaignBusy(JournalError):
    """Another live run holds the campaign's journal."""


def journal_path(base_folder: str) -> str:
    """Where a document's campaign journal lives: in its base folder (`<path>/<name>/`)."""
    return os.path.join(base_folder, JOURNAL_FILE)


def encode(record: dict[str, Any]) -> str:
    """One record as its line; equal records give equal lines (NaN and infinities kept)."""
    return json.dumps(record, separators=(",", ":"), sort_keys=True, default=_plain)


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return value.tolist()
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    return str(value)


class Journal:
    """The append-only record of one campaign, at `path` (created, with its folder, on the first commit)."""

    def __init__(self, path: str, sync: bool = True):
        self.path, self.sync = path, sync
        self._pending: list[str] = []
        self._valid_end: int | None = None  # bytes of complete lines on disk (None: not read yet)
        self._handle: Any = None
        self._tail_cut = False  # whether a torn last line was cut off (once, before the first append)

    def read(self) -> list[dict[str, Any]]:
        """Every complete record on disk, in order (a torn last line left out)."""
        try:
            with open(self.path, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            self._valid_end = 0
            return []
        except OSError as exc:
            raise JournalError(f"cannot read the campaign journal {self.path}: {exc.strerror}") from None
        end = data.rfind(b"\n") + 1
        self._valid_end = end
        records = []
        for number, line in enumerate(data[:end].splitlines(), start=1):
            try:
                record = json.loads(line)
            except ValueError:
                raise SteeringError(f"the campaign journal {self.path} is corrupt at line {number}; move it away "
                                    "(and the results it steered) to start the campaign over") from None
            if not isinstance(record, dict) or "k" not in record:
                raise SteeringError(f"the campaign journal {self.path} holds no record at line {number}")
            records.append(record)
        return records

    def append(self, record: dict[str, Any]) -> None:
        """Buffer `record`; it reaches the disk with the next commit (or when the buffer is full)."""
        self.append_line(encode(record))

    def append_line(self, line: str) -> None:
        """Buffer a record already encoded (`encode`)."""
        self._pending.append(line + "\n")
        if len(self._pending) >= _BUFFERED_LINES:
            self._write(durable=False)

    def mark(self) -> tuple[int, int]:
        """Where the journal is now (bytes written, records buffered), for `rollback`."""
        if self._valid_end is None:
            self.read()
        return self._valid_end or 0, len(self._pending)

    def rollback(self, mark: tuple[int, int]) -> None:
        """Drop what was appended since `mark`: the decisions of a step that raised, never acted on."""
        written, pending = mark
        del self._pending[pending:]
        if self._valid_end is not None and self._valid_end > written and self._handle is not None:
            self._handle.truncate(written)
            self._valid_end = written

    def commit(self) -> None:
        """Write everything buffered and make it durable before returning."""
        self._write(durable=True)

    def close(self) -> None:
        """Write what is buffered and close the file (not durable: what a crash loses is asked again)."""
        if self._pending:
            self._write(durable=False)
        if self._handle is not None:
            self._handle.close()
            self._handle, self._tail_cut = None, False

    def _write(self, durable: bool) -> None:
        if not self._pending and not (durable and self._handle is not None):
            return
        try:
            self._open()
            data = "".join(self._pending).encode()
            self._handle.write(data)
            self._valid_end = (self._valid_end or 0) + len(data)
            self._pending.clear()
            self._handle.flush()
            if durable and self.sync:
                os.fsync(self._handle.fileno())
        except OSError as exc:
            raise JournalError(f"cannot write the campaign journal {self.path}: {exc.strerror}") from None

    def lock(self) -> None:
        """Hold the journal for this process until `close` (creating it, with its folder, if need be);
        raise CampaignBusy if another live process holds it. Call it before `read`."""
        try:
            self._open_file()
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            self.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise CampaignBusy(f"the campaign journal {self.path} is held by another run") from None
            raise JournalError(f"cannot lock the campaign journal {self.path}: {exc.strerror}") from None

    def _open(self) -> None:
        if self._handle is None:
            self._open_file()
        if self._tail_cut:
            return
        if self._valid_end is None:
            self.read()
        if os.fstat(self._handle.fileno()).st_size != self._valid_end:  # a torn last line: cut it off first
            self._handle.truncate(self._valid_end)
        self._tail_cut = True

    def _open_file(self) -> None:
        folder = os.path.dirname(self.path) or "."
        os.makedirs(folder, exist_ok=True)
        created = not os.path.exists(self.path)
        self._handle = open(self.path, "ab")
        if created and self.sync:  # the new file's name must survive a power loss too
            descriptor = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

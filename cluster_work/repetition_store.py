"""One repetition's files in the default layout (see `store` for the layout, `paths` for the names): the one
place that decides whether a repetition keeps an earlier version's folder layout (`RepetitionStore.in_folder`),
its readers, and its writer, which holds the repetition's lock (`flock` on its results file) while it appends
rows and status records (`rows.encode_status`)."""
from __future__ import annotations

import errno
import fcntl
import functools
import json
import os
import secrets
import socket
import time
from collections.abc import Mapping
from typing import Any

from .durability import committer
from .errors import StoreError
from .files import StoreIO, atomic_write, is_locked, read_json, remove_own_temporaries
from .paths import RepetitionPaths, SweepPaths
from .rows import ResultsPrefix, encode_row, encode_status, last_status, parse_results, to_plain, without_statuses
from .vocabulary import Record


class RepetitionBusy(Exception):
    """Another live process holds this repetition's lock."""


class RepetitionStore:
    """The files of one repetition: results rows, status, log and the user's own files.

    The one place that decides a repetition's layout (`in_folder`): its rows and status records in one file,
    `log/rep_NN.jsonl`, or (a repetition an earlier version began: `log/rep_NN/results.jsonl` or `status.json`
    exists) in those two files, which it keeps for as long as they exist. New code never creates the folder
    layout's files, nor `rep_NN.jsonl` beside them, so a repetition's layout never changes under its readers.
    `sweep_path`: the folder of the per-process fault log (`fault_log`), where the repetition is run."""

    def __init__(self, experiment_path: str, rep: int, sweep_path: str | None = None):
        self.rep = rep
        self.paths = paths = RepetitionPaths.of(experiment_path, rep)
        self.path, self.log_file = paths.folder, paths.log_file
        self.sweep_path = sweep_path
        self._writer: ResultsWriter | None = None  # this process's, while it holds the repetition (open_writer)

    @functools.cached_property
    def in_folder(self) -> bool:
        """Whether the repetition keeps the folder layout (its results.jsonl or status.json exists); one stat where
        its `rep_NN.jsonl` exists, two for a new repetition."""
        paths = self.paths
        if os.path.lexists(paths.file) or not os.path.lexists(paths.folder):
            return False
        return os.path.lexists(paths.folder_results_file) or os.path.lexists(paths.folder_status_file)

    @property
    def results_file(self) -> str:
        """The file of its rows (and, in the one-file layout, its status records): the one its writer locks."""
        return self.paths.folder_results_file if self.in_folder else self.paths.file

    @property
    def status_file(self) -> str | None:
        """The folder layout's status.json; None where the status is folded into the results file."""
        return self.paths.folder_status_file if self.in_folder else None

    @property
    def fault_log(self) -> str:
        """Where a native crash of this process leaves its Python stack while it runs the repetition: the process's
        fault log beside its attempts journals (logs.held_fault_log: opened once per process, not a file per
        repetition), or without a sweep folder the repetition's rep.log."""
        if self.sweep_path is None:
            return self.log_file
        return SweepPaths(self.sweep_path).fault_log(socket.gethostname(), os.getpid(), _process_token())

    def read_results(self) -> ResultsPrefix:
        return parse_results(self._read())

    def _read(self) -> bytes:
        try:
            with open(self.results_file, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return b""

    def read_complete_lines(self) -> bytes:
        """The rows of the results file up to its last newline (a torn last row and status records left out),
        unparsed."""
        data = self._read()
        return without_statuses(data[:data.rfind(b"\n") + 1])

    def read_status(self) -> dict[str, Any]:
        if self.status_file is not None:
            return read_json(self.status_file) or {}
        return last_status(self._read())[0] or {}

    def results_size(self) -> int | None:
        """The results file's size (None: there is none), which a finished status's `results_bytes` is checked on."""
        try:
            return os.stat(self.results_file).st_size
        except OSError:
            return None

    def has_status(self) -> bool:
        """Whether it has a status (only a repetition that once ended unfinished has one)."""
        if self.status_file is not None:
            return os.path.lexists(self.status_file)
        if self._writer is not None and self._writer.open:
            return self._writer.has_status
        return bool(self.read_status())

    def has_files(self) -> bool:
        """Whether a writer ever opened it (its results file, or a status, exists)."""
        status = self.status_file
        return os.path.lexists(self.results_file) or (status is not None and os.path.lexists(status))

    def is_running(self) -> bool:
        """Whether a live process holds this repetition's lock (it dies with its holder)."""
        return is_locked(self.results_file)

    def write_status(self, state: Record, sync: bool = True, **fields: Any) -> None:
        """Replace the status (a hint: the rows decide the state); synced by the next group commit. In the one-file
        layout a status record appended to the results file (through this process's writer where it holds the
        repetition, else by one append of its own: a campaign marking a repetition no one runs)."""
        status = {"state": state.value, "host": socket.gethostname(), "pid": os.getpid(),
                  "updated": time.time(), **fields}
        if self.status_file is None:
            if self._writer is not None and self._writer.open:
                self._writer.append_status(encode_status(status))
            else:
                self.create_folder()
                _append_line(self.results_file, encode_status(status))
            target = self.results_file
        else:  # one line of plain fields, by json's C encoder (an indent would take its slow Python one)
            atomic_write(self.status_file, json.dumps(status, default=to_plain).encode(), sync=False)
            target = self.status_file
        if sync:
            committer.wrote(target)

    def create_folder(self) -> bool:
        """Create the folder its results file goes in if missing (the experiment's `log/`, or the folder layout's
        `log/rep_NN/`); whether it was created just now."""
        folder = os.path.dirname(self.results_file)
        with StoreIO("create", folder):
            try:
                os.mkdir(folder)
                return True
            except FileNotFoundError:  # no log/ yet: the experiment's first repetition
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                try:
                    os.mkdir(folder)
                    return True
                except FileExistsError:
                    return False
            except FileExistsError:
                return False

    def open_writer(self) -> ResultsWriter:
        """Lock the repetition for this process; raise RepetitionBusy if another holds it. Folder layout: under the
        lock, remove the temporary files a kill left behind: only the lock holder writes status.json, so no live
        writer's temporary file can be among them."""
        if self.in_folder:
            writer = ResultsWriter(self.results_file)
            remove_own_temporaries(self.path)
        else:
            try:
                writer = ResultsWriter(self.results_file)
            except StoreError as exc:
                if not isinstance(exc.__cause__, FileNotFoundError):
                    raise
                self.create_folder()  # no log/ yet: the experiment's first repetition
                writer = ResultsWriter(self.results_file)
        self._writer = writer
        return writer


def _append_line(path: str, line: bytes) -> None:
    """Append `line` to `path` with one write, after a newline where the file ends in a torn line (so that the
    record is a line of its own)."""
    with StoreIO("write", path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)


_token = secrets.token_hex(4)  # names this process's fault log (a fork's child gets its own, below)


def _new_token() -> None:
    global _token
    _token = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_token)


def _process_token() -> str:
    return _token


class ResultsWriter:
    """Appends rows (and, in the one-file layout, status records) to a locked results file; `keep` cuts it back to
    a prefix of whole rows."""

    def __init__(self, path: str):
        self.path = path
        self.has_status = False  # whether the file holds a status record (read, or appended since)
        with StoreIO("open", path):
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RepetitionBusy(path) from None
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc

    @property
    def open(self) -> bool:
        return self._fd >= 0

    def read(self) -> ResultsPrefix:
        """The rows on disk, read under the lock (the truth a resumed run continues from)."""
        with StoreIO("read", self.path):
            size = os.fstat(self._fd).st_size
            prefix = parse_results(os.pread(self._fd, size, 0) if size else b"")
        self.has_status = prefix.status is not None
        return prefix

    def keep(self, prefix: ResultsPrefix, count: int) -> None:
        """Truncate the file to its first `count` rows (discarding stale or torn rows); a status record that was
        cut off with them is appended again (it stays the repetition's status, as a status.json would)."""
        end = prefix.end_of_row(count)
        with StoreIO("truncate", self.path):
            if os.fstat(self._fd).st_size != end:
                os.ftruncate(self._fd, end)
                if prefix.status_end > end:
                    self._write(prefix.status_line)

    def size(self) -> int:
        with StoreIO("read", self.path):
            return os.fstat(self._fd).st_size

    def append(self, row: Mapping[str, Any]) -> None:
        self._write(encode_row(row))

    def append_status(self, line: bytes) -> None:
        """Append a status record (`rows.encode_status`), after cutting off a torn last line."""
        with StoreIO("write", self.path):
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                data = os.pread(self._fd, size, 0)
                os.ftruncate(self._fd, data.rfind(b"\n") + 1)
        self._write(line)
        self.has_status = True

    def _write(self, data: bytes) -> None:
        with StoreIO("write", self.path):
            written = os.write(self._fd, data)
            if written != len(data):  # a short write means a full disk: cut the torn row off
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self, sync: bool = True) -> None:
        """Release the lock; `sync`: the rows become durable at the next group commit."""
        if self._fd < 0:
            return
        os.close(self._fd)  # closing drops the flock
        self._fd = -1
        if sync:
            committer.wrote(self.path)

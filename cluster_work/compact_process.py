"""A process's side of one compact store (see compact_store): its one descriptor of the store's `locks`, through
which it takes, gives back and asks about the byte-range lock of each repetition, and its own segment, to which
it appends whole lines.

POSIX locks belong to the process and are all dropped when it closes any descriptor of the file, so each
process opens `locks` once and asks through that descriptor only (`StoreProcess`, one per store and process:
`process_of`); a child of a fork starts without any (POSIX locks are not inherited). An event is one `write` of
a whole line into the process's own segment, created by its first event (kill -9 leaves at most a torn last
line, which readers drop), and taken into this process's catalog as written (compact_catalog).
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import secrets
import socket
from collections.abc import Mapping
from typing import Any

from .compact_catalog import loaded
from .errors import StoreError
from .files import StoreIO
from .paths import LOCKS_FILE, fault_log_name, segment_name
from .rows import encode_row
from .store import RepetitionBusy


def lock_byte(name: str, rep: int) -> int:
    """Where repetition (name, rep) is locked in `locks`: 62 bits of a hash (a collision costs a BUSY)."""
    return int.from_bytes(hashlib.blake2b(f"{name}\0{rep}".encode(), digest_size=8).digest(), "big") >> 2


class StoreProcess:
    """This process's side of one compact store: its `locks` descriptor, the repetitions it holds, its segment
    (created by its first event). A child of a fork starts without any (POSIX locks are not inherited)."""

    def __init__(self, root: str):
        self.root = root
        self.locks = -1  # opened by the first lock, or by the first question where the file exists
        self.held: set[int] = set()
        self.segment_fd = -1
        self.token = secrets.token_hex(4)  # names its segment and its fault log
        self.segment = ""
        self.size = 0
        self.fault_log = os.path.join(root, fault_log_name(socket.gethostname(), os.getpid(), self.token))

    def _open_locks(self, create: bool) -> bool:
        """Open `locks` once (see the module's docstring); False where it does not exist and `create` is not asked."""
        if self.locks >= 0:
            return True
        path = os.path.join(self.root, LOCKS_FILE)
        with StoreIO("open", path):
            if create:
                os.makedirs(self.root, exist_ok=True)
                self.locks = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                return True
            try:
                self.locks = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                return False
        return True

    def lock(self, byte: int) -> None:
        self._open_locks(create=True)
        try:
            fcntl.lockf(self.locks, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RepetitionBusy(self.root) from None
            raise StoreError(f"cannot lock {self.root}/{LOCKS_FILE}: {exc.strerror}") from exc
        self.held.add(byte)

    def unlock(self, byte: int) -> None:
        if byte in self.held:
            fcntl.lockf(self.locks, fcntl.LOCK_UN, 1, byte)
            self.held.discard(byte)

    def is_locked(self, byte: int) -> bool:
        if byte in self.held:
            return True
        if not self._open_locks(create=False):  # no run has locked anything here yet
            return False
        try:  # a shared lock of our own, given back at once: it fails only where another process holds it
            fcntl.lockf(self.locks, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, byte)
        except OSError:
            return True
        fcntl.lockf(self.locks, fcntl.LOCK_UN, 1, byte)
        return False

    def any_locked(self) -> bool:
        """Whether any process holds a repetition of this store (one question for all of them: a shared lock
        of the whole file, given back at once; asked only where this process holds none, which it would drop)."""
        if self.held:
            return True
        if not self._open_locks(create=False):
            return False
        try:
            fcntl.lockf(self.locks, fcntl.LOCK_SH | fcntl.LOCK_NB, 0, 0)
        except OSError:
            return True
        fcntl.lockf(self.locks, fcntl.LOCK_UN, 0, 0)
        return False

    def append(self, event: Mapping[str, Any]) -> None:
        """Append one event as one line to this process's segment."""
        if self.segment_fd < 0:
            name = segment_name(socket.gethostname(), os.getpid(), self.token)
            self.segment = os.path.join(self.root, name)
            with StoreIO("create", self.segment):
                os.makedirs(self.root, exist_ok=True)
                self.segment_fd = os.open(self.segment, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        data = encode_row(event)
        with StoreIO("write", self.segment):
            written = os.write(self.segment_fd, data)
            if written != len(data):  # a full disk: cut the torn line off
                os.ftruncate(self.segment_fd, os.fstat(self.segment_fd).st_size - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        before, self.size = self.size, self.size + written
        known = loaded(self.root)
        name = os.path.basename(self.segment)
        if known is not None and known.offsets.get(name, 0) == before:  # this process sees what it wrote at once
            known.offsets[name] = self.size                             # (others' writes within REFRESH_SECONDS)
            known.apply_written(name, event, data)


_processes: dict[str, StoreProcess] = {}  # by the store's absolute path: a relative one names another store once the
# working folder changed (two sweeps run or read in one process), whose segment would then get this one's rows


def process_of(root: str) -> StoreProcess:
    """This process's side of the store in `root` (one per store and process: see the module's docstring)."""
    process = _processes.get(root)  # a key is an absolute path: `root` found as it is needs no abspath
    if process is not None:
        return process
    key = os.path.abspath(root)
    process = _processes.get(key)
    if process is None:
        process = _processes[key] = StoreProcess(key)
    return process


# the parent's descriptors stay open in a child, unused (closing one there would drop none of the parent's locks)
os.register_at_fork(after_in_child=_processes.clear)


def is_held(root: str, name: str, rep: int) -> bool:
    """Whether a live process holds repetition (name, rep) of the store in `root` (it is RUNNING)."""
    return process_of(root).is_locked(lock_byte(name, rep))


def any_held(root: str) -> bool:
    """Whether a live process holds any repetition of the store in `root` (else none is RUNNING)."""
    return process_of(root).any_locked()

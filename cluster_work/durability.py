"""Group commit: what the store writes is made durable together, once a second and at the end of a run,
instead of one fsync per file (which cost more than the work for short jobs: 4,400 fsyncs for 2,000 jobs).

What each kind of file gets (the README's "What survives a power loss" says the same for users):
- results rows are appended with one `write` each: a killed process loses nothing written (the page
  cache keeps it); a power loss loses at most the rows since the last commit, and a torn last line,
  which readers drop;
- config.yml is not left to commits: it is synced when written (once per experiment, by its first
  job; an MPI leader writes the missing ones of a batch of jobs together, with one `sync_now`), since
  rows without their config cannot be loaded;
- statuses are hints (the rows decide a repetition's state, see repetition_state): a status record is
  appended to the repetition's file as a row is (an earlier version's status.json is renamed into place at
  once), and synced by the next commit; one lost or torn by a power loss is ignored.

A commit syncs the file system of every file written (`syncfs`, one call however many files; per file
`fsync` where `syncfs` is missing). A daemon thread
commits every `INTERVAL` seconds while there is something to commit; `commit()` does it at once (the
end of a run, a worker leaving). Each process has its own committer; one made before a fork is not
shared with the child (it starts empty there).
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import threading
import weakref
from collections.abc import Callable, Iterable

INTERVAL = 1.0  # s between commits: after a power loss, at most about this much of the rows is lost


def _load_syncfs() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        syncfs: Callable[[int], int] = libc.syncfs  # (ctypes' default: an int argument and result)
        return syncfs
    except (OSError, AttributeError):
        return None


_syncfs = _load_syncfs()


class GroupCommit:
    """The files one process wrote since its last commit, made durable together."""

    def __init__(self, interval: float = INTERVAL):
        self.interval = interval
        self._lock = threading.Lock()  # guards the sets below
        self._committing = threading.Lock()  # one commit at a time
        self._written: set[str] = set()  # files whose data is to be synced
        self._syncing = False  # a commit is syncing what it took from _written
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        reference = weakref.ref(self)  # a fork's child starts empty, with fresh locks (see _after_fork)
        os.register_at_fork(after_in_child=lambda: _after_fork(reference))
        self.commits = 0  # for tests and benchmarks: how many commits synced something

    def wrote(self, path: str) -> None:
        """`path` has new data: sync it at the next commit."""
        with self._lock:
            self._written.add(path)
        self._ensure_thread()

    def pending(self) -> bool:
        """Whether something written is not yet durable (noted, or being synced right now)."""
        with self._lock:
            return bool(self._written) or self._syncing

    def commit(self) -> None:
        """Make everything written so far durable."""
        with self._committing:
            self._commit()

    def _commit(self) -> None:
        with self._lock:
            written, self._written = self._written, set()
            self._syncing = bool(written)
        if not written:
            return
        try:
            _sync(written)
        finally:
            with self._lock:
                self._syncing = False
                self.commits += 1

    def _after_fork(self) -> None:
        """In the child of a fork: none of the parent's pending work, no thread, and locks that no
        thread of the parent can be holding (one may have held them at the fork)."""
        self._lock, self._committing = threading.Lock(), threading.Lock()
        self._written, self._thread, self._syncing = set(), None, False

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="cluster_work-group-commit", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._wake.wait(self.interval):
            with contextlib.suppress(OSError):  # a failing disk shows in the writes themselves
                self.commit()


def _after_fork(reference: weakref.ref[GroupCommit]) -> None:
    committer = reference()
    if committer is not None:
        committer._after_fork()


def sync_now(paths: Iterable[str]) -> None:
    """Make `paths` durable now, together (one syncfs for the lot): what `ExperimentStore.write_config`'s
    sync does for one config, for a batch of them (see `store.write_configs`)."""
    _sync(set(paths))


def _sync(paths: set[str]) -> None:
    """Make the data of `paths` durable: one syncfs per file system (found from the paths' folders, each
    looked at once), else (no syncfs, or it failed) one fsync per path."""
    if _syncfs is None or not _syncfs_each(paths):
        for path in paths:
            _fsync(path)


def _syncfs_each(paths: set[str]) -> bool:
    """syncfs of each file system that holds one of `paths`; False if one of them failed."""
    assert _syncfs is not None
    devices: dict[int, str] = {}  # file system -> a folder on it
    for folder in {os.path.dirname(path) or "." for path in paths}:
        try:
            devices.setdefault(os.stat(folder).st_dev, folder)
        except FileNotFoundError:  # removed since (-d): nothing to sync
            continue
    for folder in devices.values():
        try:
            fd = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            if _syncfs(fd) != 0:
                return False
        finally:
            os.close(fd)
    return True


def _fsync(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # removed since (-d, a finished rename): nothing to sync
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


committer = GroupCommit()  # this process's; the store notes writes here, runs commit at their end

"""Whole-file primitives every store uses: writes that readers see whole or not at all, locks whose holder's
death frees them, and the cleanup of what a kill during a write left behind.

Invariant: `atomic_write` never leaves a partial file under the final name (a temporary of its own, renamed
over it); only names of `_OWN_TEMPORARY`'s shape are ever removed here, so a user's file is never touched.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import socket
import time
from typing import Any

from .errors import StoreError
from .paths import CONFIG_FILE, CONFIG_TEMPORARY_PREFIX, STATUS_FILE


class StoreIO:
    """Turns OSErrors of the store into StoreErrors that name the path and the cause."""

    def __init__(self, action: str, path: str):
        self.action, self.path = action, path

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if isinstance(exc, OSError) and not (self.action == "read" and isinstance(exc, FileNotFoundError)):
            cause = exc.strerror or str(exc)
            raise StoreError(f"cannot {self.action} {self.path}: {cause}") from exc


def atomic_write(path: str, data: bytes | memoryview, sync: bool = True, writer_prefix: str | None = None,
                 remove_dead: bool = True) -> None:
    """Replace `path` with `data` so that readers see the old or the new file, never a part.

    The rename alone makes this safe against a killed process; `sync` also survives a power loss. `writer_prefix`:
    the temporary is named by its writer (`<prefix><host>-<pid>-<token>.tmp`) and those that dead writers left
    are removed first (`remove_dead_writers_temporaries`; not where the caller knows there are none, `remove_dead`
    false: a folder it just created), for a file no other cleanup looks after.
    """
    folder = os.path.dirname(path) or "."
    if writer_prefix is not None:
        if remove_dead:
            remove_dead_writers_temporaries(folder, writer_prefix)
        named = f"{writer_prefix}{socket.gethostname()}-{os.getpid()}-"
    else:
        named = f".{os.path.basename(path)}."
    with StoreIO("write", path):
        # a temporary name of its own (8 random hex digits, created exclusively): two processes may write
        # the same file at once (array tasks of one experiment writing its config), and each must rename
        # its own complete copy; cheaper than tempfile.mkstemp, which matters once per job
        while True:
            temporary = os.path.join(folder, f"{named}{secrets.token_hex(4)}.tmp")
            try:
                fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(fd, "wb") as handle:
                if writer_prefix is not None:
                    hold_temporary(fd)
                handle.write(data)
                handle.flush()  # (before the rename: a reader of `path` sees every byte)
                if sync:
                    os.fsync(handle.fileno())
                os.replace(temporary, path)  # renamed while held (see hold_temporary)
        except BaseException:
            with contextlib.suppress(OSError):
                os.remove(temporary)
            raise


def read_json(path: str) -> dict[str, Any] | None:
    """The JSON object in `path`; None where it is missing or not JSON (a hint file, never the truth)."""
    try:
        with open(path, "rb") as handle:
            return json.loads(handle.read())
    except FileNotFoundError:
        return None
    except ValueError:
        return None


# exactly the names atomic_write gives: ".status.json." + 8 of [a-z0-9_] + ".tmp" (and so config.yml's before its
# temporaries were named by their writer), and config.yml's named by its writer: CONFIG_TEMPORARY_PREFIX + host +
# "-" + pid + "-" + 8 hex digits + ".tmp"
_OWN_TEMPORARY = re.compile(rf"^(\.({re.escape(CONFIG_FILE)}|{re.escape(STATUS_FILE)})\.[a-z0-9_]{{8}}"
                            rf"|{re.escape(CONFIG_TEMPORARY_PREFIX)}[A-Za-z0-9._-]+-[0-9]+-[0-9a-f]{{8}})\.tmp\Z")


def is_locked(path: str) -> bool:
    """Whether a live process holds an exclusive `flock` on `path` (the kernel drops it when its holder dies)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)


def remove_own_temporaries(folder: str) -> None:
    """Remove what a kill during `atomic_write` left in `folder`: only cluster_work's own temporary names, whatever
    their writer (a repetition's folder, under its lock: no live writer's can be there; `-d`'s experiment folder)."""
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        if _OWN_TEMPORARY.match(name):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(folder, name))


_WRITER = re.compile(r"(?P<host>.+)-(?P<pid>[0-9]+)-[0-9a-f]{8}\.tmp\Z")  # after the prefix: host-pid-token.tmp
ABANDONED_AFTER = 5.0  # s: a live writer holds its temporary microseconds after creating it, so one older than
# this that no one holds was left by a writer that died, whatever process now has its pid


def hold_temporary(fd: int) -> None:
    """A writer-named temporary's writer holds it (an exclusive `flock`) from its creation until it is renamed, so
    that `remove_dead_writers_temporaries` can tell a dead writer's from a live one's where the pid in its name
    now belongs to another process (pids are reused: 32,768 of them on a busy node). Best effort: where the file
    system has no locks, the pid alone decides, as before."""
    with contextlib.suppress(OSError):
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def _abandoned(path: str) -> bool:
    """Whether the temporary in `path`, whose pid names a live process, was left by a dead writer: older than
    ABANDONED_AFTER and held by no one (`hold_temporary`). False where that cannot be told (no locks here)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        if time.time() - os.fstat(fd).st_mtime < ABANDONED_AFTER:
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # held: its writer lives (or the file system has no locks)
        return False
    finally:
        os.close(fd)


def remove_dead_writers_temporaries(folder: str, prefix: str | tuple[str, ...]) -> None:
    """Remove the files `<prefix><host>-<pid>-<token>...` in `folder` (of any of the prefixes) whose writer on this
    host died (kill -9) while it wrote them: a file written whole and renamed (config.yml, the compact index, the
    folder index, a compact store's document config) names its temporary by its writer, so that one still alive
    (or on another host) is never touched. Its writer is dead where no process has its pid, where that process
    exited (a zombie), or where one lives (the pid reused) but the temporary is old and no one holds it
    (`hold_temporary`)."""
    prefixes = (prefix,) if isinstance(prefix, str) else prefix
    host = socket.gethostname()
    try:
        names = [name for name in os.listdir(folder) if name.startswith(prefixes)]
    except OSError:
        return
    for name in names:
        start = max(len(own) for own in prefixes if name.startswith(own))
        writer = _WRITER.match(name, start)  # exactly the names atomic_write and the indexes give (a user's stays)
        if writer is None or writer["host"] != host:
            continue
        path = os.path.join(folder, name)
        if not _writer_alive(int(writer["pid"]), path):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _writer_alive(pid: int, path: str) -> bool:
    """Whether the writer of the temporary `path`, named by `pid` on this host, may still be writing it."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: another user's live process)
        pass
    return not _exited(pid) and not _abandoned(path)


def _exited(pid: int) -> bool:
    """Whether `pid` is a process that exited and awaits its parent (a zombie, on Linux's /proc; False where that
    cannot be read): it has closed its files and writes nothing more. A run killed whole leaves its workers so
    until whichever process inherits them reaps them, which a container's first process may do late."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] in (b"Z", b"X")
    except (OSError, IndexError):
        return False

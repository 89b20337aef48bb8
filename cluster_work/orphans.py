"""Exit a worker once the process it works for is gone, so that no orphan keeps writing or holding a lock.

MPI ranks watch their parent (mpiexec's launcher): when `mpiexec` dies, Open MPI may leave ranks running,
and a rank busy in Python would notice only at its next MPI call. Local worker processes watch the main
process by its pid: their parent is the forkserver, which outlives the main process for as long as its
children do (each holds the forkserver's keep-alive pipe), so their parent never changes.

Exiting mid-iteration is as safe as kill -9 (rows are whole or absent) and drops the repetition's lock at once.
"""
from __future__ import annotations

import logging
import os
import select
import threading
import time

from .exit_codes import EXIT_ORPHANED

log = logging.getLogger("cluster_work")

ORPHAN_CHECK_SECONDS = 1.0  # how often to look where the system cannot tell us (no pidfd)
_watching_in: list[int] = []  # the pid of the process whose watchdog runs: at most one per process


def exit_when_orphaned(rank_or_label: int | str, check_every: float = ORPHAN_CHECK_SECONDS,
                       pid: int | None = None) -> None:
    """Start a daemon thread that exits this process (status EXIT_ORPHANED) once process `pid` has exited,
    or, without `pid`, once this process's parent has. A second call in the same process does nothing;
    a child forked from a watched process (which inherits the list but not the thread) gets its own."""
    if os.getpid() in _watching_in:
        return
    label = f"rank {rank_or_label}" if isinstance(rank_or_label, int) else rank_or_label
    watched = os.getppid() if pid is None else pid
    whom = "its parent process" if pid is None else "the main process"

    def watch() -> None:
        _wait_until_gone(watched, pid is None, check_every)
        log.error("%s: %s (pid %d) is gone; exiting", label, whom, watched)
        logging.shutdown()
        os._exit(EXIT_ORPHANED)

    _watching_in[:] = [os.getpid()]
    threading.Thread(target=watch, name="cluster_work-orphan-watch", daemon=True).start()


def _wait_until_gone(pid: int, is_parent: bool, check_every: float) -> None:
    """Block until process `pid` has exited (a zombie counts as exited): at once through a pidfd on
    Linux >= 5.3, elsewhere by looking every `check_every` seconds."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (AttributeError, OSError):  # no pidfd here
        while not _is_gone(pid, is_parent):
            time.sleep(check_every)
        return
    try:
        select.select([fd], [], [])  # a pidfd turns readable when its process exits
    finally:
        os.close(fd)


def _is_gone(pid: int, is_parent: bool) -> bool:
    if is_parent and os.getppid() != pid:  # reparented: the parent died
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by someone else
        pass
    return False

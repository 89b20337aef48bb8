"""A small supervisor that runs one command for `cluster_work.command` and lets nothing it started outlive it.

    python -I -S command_guard.py WATCHED_PID GRACE_SECONDS PROGRAM [ARGUMENTS...]

Standard library only and run as a file (`-I -S`: no site, no package import), so it starts in about 20 ms.
Why a process of its own: the command's process group is not enough. An MPI launcher puts its ranks into
process groups (MPICH: sessions) of their own, and a `kill -9` of the launcher leaves them running; a shell
script's children survive a SIGKILL of the shell. So, on Linux:

- It is a child subreaper (PR_SET_CHILD_SUBREAPER): whatever below it loses its parent (the ranks of a
  killed `mpiexec`, a daemon the command forked) is re-parented to it and stays in its process tree.
- It gets SIGTERM when the cluster_work process that started it dies, even by kill -9 (PR_SET_PDEATHSIG),
  and the command gets SIGKILL should the guard itself be killed.
- When the command exits, what it left running is terminated; when the guard gets SIGTERM, SIGINT or SIGHUP
  (cluster_work stops the repetition, or died), every process below it is: SIGTERM first, SIGKILL to what is
  still alive GRACE_SECONDS later. A process below it that blocks or ignores SIGTERM therefore still ends.
- It exits as the command did: with its exit status, or killed by the same signal (without a core dump).

Elsewhere (no prctl, no /proc) it watches its parent by polling and signals its own process group instead.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import threading
import time
from typing import Any

PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
EXIT_CANNOT_RUN = 127  # exit_codes.EXIT_CANNOT_RUN: this file imports nothing of the package
POLL_SECONDS = 0.02


class _Stop(Exception):
    """Raised by the stop signals' handler, to leave the blocking wait for the command."""


def _prctl() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _children_of() -> dict[int, list[int]] | None:
    """The live (not zombie) processes of the system by parent pid, or None without /proc."""
    try:
        entries = [name for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    children: dict[int, list[int]] = {}
    for name in entries:
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != b"Z":
            children.setdefault(int(fields[1]), []).append(int(name))
    return children


def descendants(root: int) -> list[int] | None:
    """The live processes below `root`, or None where /proc cannot tell."""
    children = _children_of()
    if children is None:
        return None
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _reap() -> None:
    """Collect every exited child (the command's orphans become ours)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass


def _signal_tree(signum: int) -> bool:
    """Send `signum` to every process below the guard; return whether there was any."""
    pids = descendants(os.getpid())
    if pids is None:  # no /proc: the process group (the guard ignores the stop signals by now)
        if signum != signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(os.getpgrp(), signum)
        return False
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signum)
    return bool(pids)


def terminate_tree(grace: float) -> None:
    """SIGTERM to every process below the guard, SIGKILL to those alive `grace` seconds later."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    if not _signal_tree(signal.SIGTERM):
        _reap()
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap()
        if not descendants(os.getpid()):
            return
        time.sleep(POLL_SECONDS)
    for _ in range(100):  # again and again: a process may fork while it is being killed
        _reap()
        if not _signal_tree(signal.SIGKILL):
            return
        time.sleep(POLL_SECONDS)


def _spawn(command: list[str], prctl: Any) -> int:
    """Fork and exec the command with default signal handling, SIGKILL should the guard die."""
    guard = os.getpid()
    pid = os.fork()
    if pid:
        return pid
    try:  # the child: nothing here may return to the guard's code
        if prctl is not None:
            prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != guard:
                os._exit(EXIT_CANNOT_RUN)
        for signum in STOP_SIGNALS:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.execvp(command[0], command)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.write(2, f"cluster_work: cannot run {command[0]!r}: {exc.strerror}\n".encode())
    finally:
        os._exit(EXIT_CANNOT_RUN)


def _watch_parent(watched: int) -> None:
    """Where no PR_SET_PDEATHSIG exists: a SIGTERM to ourselves once the parent is gone."""
    def watch() -> None:
        while os.getppid() == watched:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, daemon=True).start()


def _exit_like(status: int) -> None:
    """Exit with the command's wait status: its exit code, or death by its signal."""
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            if signum != signal.SIGKILL:
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
            os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status))


def main(argv: list[str]) -> None:
    watched, grace, command = int(argv[1]), float(argv[2]), argv[3:]

    def stop(signum: int, frame: object) -> None:
        raise _Stop

    for signum in STOP_SIGNALS:
        signal.signal(signum, stop)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # a mask inherited from cluster_work must not hide a stop
    prctl = _prctl()
    try:
        if prctl is not None:
            prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
            prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        else:
            _watch_parent(watched)
        if os.getppid() != watched:  # cluster_work died before the line above
            raise _Stop
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # not between fork and exec
        child = _spawn(command, prctl)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        while True:
            pid, status = os.waitpid(-1, 0)
            if pid == child:
                break
    except _Stop:
        terminate_tree(grace)
        os._exit(128 + signal.SIGTERM)
    terminate_tree(grace)  # whatever the command left running
    _exit_like(status)


if __name__ == "__main__":
    main(sys.argv)

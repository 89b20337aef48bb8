"""Ending an MPI job whose launcher will not end: SIGKILL to the launcher found above rank 0.

With a host unreachable, Open MPI's launcher (`prterun`, which `mpiexec` is) waits for it forever: it
ignores SIGTERM and outlives rank 0's `MPI_Abort`. A run that must end (a worker silent past the stall
limit, so that the scheduler can requeue it) therefore kills the launcher itself, from rank 0, once
everything is recorded: the launcher runs on rank 0's node, as rank 0's parent (or an ancestor, through
a wrapper shell). The ranks on this node then exit by their orphan watchdog (see `orphans`).

Only processes named as launchers are killed: under Slurm's `srun` there is none above rank 0 (its
parent is `slurmstepd`, which is left alone) and the caller aborts through MPI instead.
"""
from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

LAUNCHERS = frozenset({"prterun", "mpiexec", "mpirun", "orterun", "prted", "orted", "mpiexec.hydra",
                       "hydra_pmi_proxy"})


def _parent_and_name(pid: int) -> tuple[int, str] | None:
    """(parent pid, command name) of process `pid`, from /proc; None where there is no /proc entry."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1:stat.rindex(")")]
    return int(stat[stat.rindex(")") + 2:].split()[1]), name


def launcher_pids(pid: int | None = None) -> list[int]:
    """The launcher processes among the ancestors of `pid` (default: this process), nearest first."""
    found: list[int] = []
    current = os.getpid() if pid is None else pid
    seen: set[int] = set()
    while current > 1 and current not in seen:
        seen.add(current)
        entry = _parent_and_name(current)
        if entry is None:
            break
        parent, _ = entry
        above = _parent_and_name(parent) if parent > 1 else None
        if above is not None and above[1] in LAUNCHERS:
            found.append(parent)
        current = parent
    return found


def kill_launchers(pid: int | None = None) -> list[int]:
    """SIGKILL every launcher above `pid` (default: this process); return their pids (none: no launcher)."""
    killed = launcher_pids(pid)
    for launcher in killed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(launcher, signal.SIGKILL)
    return killed

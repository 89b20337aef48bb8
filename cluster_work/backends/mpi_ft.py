"""MPI ranks that die: what ULFM (Open MPI's User-Level Failure Mitigation) lets the survivors do.

Without ULFM, the death of any rank ends the whole MPI job: the launcher kills every other rank. Launched
with ULFM on (Open MPI 5: `mpiexec --with-ft ulfm ...`, which sets `OMPI_MCA_mpi_ft_enable` for every
rank), the job goes on: an MPI call that involves a dead rank raises `MPI.Exception` with error class
`ERR_PROC_FAILED` (or `ERR_REVOKED` on a communicator another survivor revoked: `peer_failed`) instead of
aborting, once the communicator's error handler returns errors.

What the backend builds on this (measured with Open MPI 5.0 from PyPI):
- rank 0 learns of a death from `Get_failed()` (a local call, cheap enough to poll) or from a probe
  that raises; the messages a rank sent before it died can still be received by a matched probe
  (`improbe`), while a plain `recv` after a probe may raise;
- a group's communicator revokes itself on the first failure any member sees (`revoking_errhandler`), so
  that no survivor waits forever in a collective with a dead rank; after each item the group agrees
  (`agree_on_failures`, fault-tolerant) whether it lost a member;
- the last synchronisation of every rank is an agreement (`quiet_agreement`), which completes among the
  survivors, where a barrier would fail early or wait for the dead;
- `MPI_Finalize` returns with dead ranks, and the launcher exits with rank 0's status.
"""
from __future__ import annotations

import array
import os
from collections.abc import Mapping
from typing import Any

from .mpi_messages import peer_failed, poll_until

FT_VARIABLE = "OMPI_MCA_mpi_ft_enable"  # set by `mpiexec --with-ft ulfm` (or `--mca mpi_ft_enable 1`)
LAUNCH_HINT = ("launch with ULFM, and a run goes on without a rank that dies, failing only the repetition "
               "it ran: mpiexec --with-ft ulfm ... (Open MPI 5)")


def ulfm_enabled(environment: Mapping[str, str] | None = None) -> bool:
    """Whether this rank runs with ULFM on: the launcher's MCA setting, which every rank reads alike."""
    value = (os.environ if environment is None else environment).get(FT_VARIABLE, "")
    return value.strip().lower() in {"1", "true", "yes", "on", "enabled"}


def revoking_errhandler(MPI: Any) -> Any:
    """An error handler that revokes its communicator on a failure, then lets the call raise: every other
    survivor's pending or next call on it raises too (ERR_REVOKED) instead of waiting for the dead."""

    def handle(comm: Any, code: int) -> None:
        if MPI.Get_error_class(code) in (MPI.ERR_PROC_FAILED, getattr(MPI, "ERR_PROC_FAILED_PENDING", -1)):
            comm.Revoke()

    return MPI.Comm.Create_errhandler(handle)


def failed_ranks(MPI: Any, comm: Any, within: Any = None) -> list[int]:
    """The ranks of `comm` known here to have died, acknowledged (so that receives from any source work
    again), as ranks of `within` (default: `comm` itself)."""
    comm.Ack_failed()
    group = comm.Get_failed()
    try:
        count = group.Get_size()
        if count == 0:
            return []
        target = (within if within is not None else comm).Get_group()
        return sorted(MPI.Group.Translate_ranks(group, list(range(count)), target))
    finally:
        _free(MPI, group)


def known_failures(MPI: Any, comm: Any) -> int:
    """How many ranks of `comm` are known here to have died (a local call, cheap enough to poll)."""
    group = comm.Get_failed()
    try:
        return int(group.Get_size())
    finally:
        _free(MPI, group)


def _free(MPI: Any, group: Any) -> None:
    if group != MPI.GROUP_EMPTY and group != MPI.GROUP_NULL:
        group.Free()


def agree_on_failures(MPI: Any, comm: Any, within: Any) -> list[int]:
    """Every survivor of `comm` calls this at the same point: it returns, on every survivor, once all have
    arrived, and gives the ranks (of `within`) that died, or [] when none did. Sleeps while waiting."""
    if _agree(comm, True):
        return []
    return failed_ranks(MPI, comm, within)


def quiet_agreement(comm: Any, failed_here: bool) -> bool:
    """The end of a run on every live rank: a barrier among the survivors that sleeps while it waits.
    Returns whether a rank died, as any survivor knew (`failed_here`) or the agreement found."""
    return not _agree(comm, not failed_here)


def _agree(comm: Any, flag: bool) -> bool:
    """A fault-tolerant agreement on `comm` among its survivors: the AND of their flags, False when a rank
    had died that some survivor had not acknowledged."""
    value = array.array("i", [int(flag)])
    try:
        request = comm.Iagree(value)
        poll_until(request.Test)
    except Exception as exc:
        if not peer_failed(exc):
            raise
        return False
    return bool(value[0])

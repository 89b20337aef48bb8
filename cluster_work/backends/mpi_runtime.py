"""The MPI runtime as one process sees it: getting mpi4py, making this rank's group communicator, and
leaving (MPI finalized, or the process ended at once where finalizing could hang or fail).

A process leaves in one of two ways, and both only after it committed what it wrote: `finalize_mpi`, so
that a non-zero exit status is a plain exit (`python -m mpi4py` turns the SystemExit of an unfinalized MPI
into MPI_Abort); or `leave`, which ends the process without MPI_Finalize (a launcher gone, a dead rank
under ULFM that Open MPI's closing fence may wait for forever). The executor (`mpi`) decides which.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, NoReturn

from ..errors import ClusterWorkError
from ..exit_codes import EXIT_ORPHANED
from .mpi_ft import revoking_errhandler
from .mpi_layout import SELF, WORLD, Layout

log = logging.getLogger("cluster_work")


def mpi_module() -> Any:
    """mpi4py's MPI (initializing MPI), or a ClusterWorkError that says how to install it."""
    try:
        from mpi4py import MPI
    except ImportError:
        raise ClusterWorkError("-c/--cluster needs mpi4py and an MPI runtime: "
                               "pip install 'cluster_work[mpi]' (or mpi4py with your system's MPI)") from None
    return MPI


def finalize_mpi() -> None:
    """Finalize MPI once every rank is done, so that a non-zero exit status is a plain exit:
    `python -m mpi4py` turns a non-zero SystemExit of an unfinalized MPI into MPI_Abort. Without the
    launcher (killed with -9) MPI cannot finalize: the process exits at once, as an orphaned rank does."""
    MPI = sys.modules.get("mpi4py.MPI")  # not imported: nothing to finalize
    if MPI is not None and MPI.Is_initialized() and not MPI.Is_finalized():
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError):  # the console may be gone with the launcher
                stream.flush()
        try:
            MPI.Finalize()
        except MPI.Exception as exc:
            log.error("MPI cannot finalize (%s): the MPI launcher is gone; exiting", exc)
            logging.shutdown()
            os._exit(EXIT_ORPHANED)


def group_communicator(MPI: Any, layout: Layout, rank: int, ulfm: bool) -> Any:
    """This rank's `self._COMM` (COMM_NULL outside a group); collective under SPLIT: every rank calls it.
    Under ULFM a group's communicator revokes itself on a failure (see `mpi_ft`)."""
    if layout.comm == SELF:
        return MPI.COMM_SELF
    if layout.comm == WORLD:
        comm = MPI.COMM_WORLD
    else:
        group = layout.group_of(rank)
        color = layout.groups.index(group) if group is not None else MPI.UNDEFINED
        comm = MPI.COMM_WORLD.Split(color, rank)
        if group is None:
            return comm
        comm.Set_name(f"comm_group_{color}")  # the original's name
    if ulfm and comm.Get_size() > 1:
        comm.Set_errhandler(revoking_errhandler(MPI))
    return comm


def flush_console() -> None:
    """Flush stdout and stderr (quietly where the launcher took the console with it), then logging."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # the console may be gone with the launcher
            stream.flush()
    logging.shutdown()


def leave(status: int) -> NoReturn:
    """End this process now with `status`, without MPI_Finalize (what it has written is committed)."""
    flush_console()
    os._exit(status)

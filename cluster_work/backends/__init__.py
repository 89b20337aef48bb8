"""Where work runs: in this process, in local worker processes, or on MPI ranks (see `base` for the
interface every backend implements)."""
from __future__ import annotations

from .base import Executor, Task, TaskContext
from .processes import LocalProcessExecutor
from .sequential import SequentialExecutor

__all__ = ["Executor", "LocalProcessExecutor", "SequentialExecutor", "Task", "TaskContext", "make_executor"]


def make_executor(task: Task, workers: int, cluster: bool, mp_context: str | None, groups: int | None = None,
                  group_size: int | None = None) -> Executor:
    """The backend the command line asks for: MPI with -c (in `groups` groups or groups of `group_size`
    ranks, see mpi_layout), local processes with -n N > 1, else this process. Nothing starts before
    `with executor:`."""
    if cluster:
        from .mpi import MPIExecutor  # needs mpi4py

        return MPIExecutor(task, groups, group_size)
    if workers > 1:
        return LocalProcessExecutor(task, workers, mp_context)
    return SequentialExecutor(task)

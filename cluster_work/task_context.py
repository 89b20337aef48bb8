"""What a task gets from the backend that runs it (`TaskContext`), and what a backend asks of its task
(`Task`): the seam between the backends, which make the context and run the task, and the runner, which
is the task, so that the runner imports no backend."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .attempts import AttemptJournal, journal
from .vocabulary import Outcome, WorkItem


@dataclass(frozen=True)
class TaskContext:
    """What a task gets from the backend that runs it: the collaborators the runner must not look up.

    `comm`: the MPI communicator the experiment sees as `self._COMM` (None without MPI).
    `write`: whether this process writes (only an MPI group's leader does).
    `stop_requested`: true once the run is stopping (a signal, a store failure): stop after the
    current iteration, resumable.
    `cancelled`: true once this item was cancelled: stop after the current iteration.
    `iteration_done`: called after each saved row (the live display's count).
    `attempts`: where the runner records the segments it begins and closes (this process's journal, see
    attempts; what lets a rerun tell the repetition that ended a run from the innocents).
    """

    comm: Any = None
    write: bool = True
    stop_requested: Callable[[], bool] = lambda: False
    cancelled: Callable[[], bool] = lambda: False
    iteration_done: Callable[[], None] = lambda: None
    attempts: AttemptJournal = journal


RunItem = Callable[[WorkItem, TaskContext], Outcome]  # what runs an item in this process (a Task, or a wrapper of one)


class Task(Protocol):
    """What every backend runs its items with (in practice `runner.ExperimentTask`); picklable, since the
    process backend sends it to its workers."""

    def __call__(self, item: WorkItem, context: TaskContext) -> Outcome:
        """Run `item` with `context`; never raises for the experiment's errors."""
        ...

    def lost(self, item: WorkItem, stopping: bool, cause: str) -> Outcome:
        """The outcome of `item` whose worker process died under it for `cause` (call it once it is dead)."""
        ...

"""Reading a sweep's repetitions as the tests check them (shared by several test files)."""
from __future__ import annotations

import os

from kills import kill_and_wait

from cluster_work.repetition_state import read_repetition
from cluster_work.store import find_experiment_folders


def recorded_states(out) -> dict[str, str]:
    """The state of every repetition with files, by its folder relative to `out`: its status's, where it has
    one (a repetition that ended unfinished), else what its rows say ("finished", "partial", "pending")."""
    states = {}
    for experiment in find_experiment_folders(str(out)):
        iterations = (experiment.read_config() or {})["iterations"]
        for rep in experiment.repetition_numbers():
            store = experiment.repetition(rep)
            state = store.read_status().get("state") or read_repetition(store, iterations, check_lock=False).state.value
            states[os.path.relpath(store.path, out)] = state
    return states


def kill_9(process, others=()) -> None:
    """SIGKILL a run and the processes below it at once, as a node failure would, and wait until all are dead."""
    kill_and_wait(process, [process.pid, *others])

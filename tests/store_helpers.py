"""Reading a sweep's repetitions as the tests check them (shared by several test files)."""
from __future__ import annotations

import contextlib
import os
import signal
import time

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


def dead(pid: int) -> bool:
    """Whether process `pid` has exited: each of its threads gone or a zombie (its files closed, its locks dropped)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    states = []
    for thread in threads:
        try:
            with open(f"/proc/{pid}/task/{thread}/stat") as handle:
                states.append(handle.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            pass
    return all(state in ("Z", "X") for state in states)


def kill_9(process, others=()) -> None:
    """SIGKILL a run and the processes below it at once, as a node failure would, and wait until all are dead."""
    pids = [process.pid, *others]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)
    deadline = time.time() + 30
    while not all(map(dead, pids)) and time.time() < deadline:
        time.sleep(0.01)
    assert all(map(dead, pids)), [pid for pid in pids if not dead(pid)]

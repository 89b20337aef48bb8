"""Experiments whose processes die natively on chosen points (importable by worker processes; also runnable
as scripts: `python tests/crash_clients.py Crashing config.yml ...`).

`crash`: which repetitions die how, e.g. "1:sigkill,3:segv"; `crash_at`: in which iteration. Set
CW_NO_CRASH=1 in the environment to run the same config without crashing (a rerun that finishes).
"""
from __future__ import annotations

import ctypes
import os
import signal
import sys
import time

from cluster_work import ClusterWork
from cluster_work.store import ExperimentStore


def crash(how: str, child_pid_file: str = "") -> None:
    """End this process the way `how` says, as a C extension or the kernel would."""
    if how == "segv":  # the signal, as the kernel sends it
        os.kill(os.getpid(), signal.SIGSEGV)
    elif how == "null":  # a real segmentation fault: reading address 0
        ctypes.string_at(0)
    elif how == "sigkill":  # the OOM killer's way
        os.kill(os.getpid(), signal.SIGKILL)
    elif how == "abort":  # a C assert()
        os.abort()
    elif how == "sigbus":
        os.kill(os.getpid(), signal.SIGBUS)
    elif how == "sigfpe":
        os.kill(os.getpid(), signal.SIGFPE)
    elif how == "exit3":  # a library that calls exit() itself
        os._exit(3)
    elif how == "fork-then-kill":  # a child that inherited the repetition's lock outlives the worker
        child = os.fork()
        if child == 0:
            time.sleep(120)
            os._exit(0)
        with open(child_pid_file, "w") as handle:
            handle.write(str(child))
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        raise ValueError(f"unknown crash {how!r}")
    time.sleep(10)  # a signal is delivered asynchronously: never go on past it


def crashes(spec: str) -> dict[int, str]:
    """'1:sigkill,3:segv' -> {1: 'sigkill', 3: 'segv'}."""
    return {int(rep): how for rep, how in (part.split(":") for part in spec.split(",") if part)}


class Crashing(ClusterWork):
    """Counts; repetitions named in `crash` die in iteration `crash_at`. With `gate` set, the repetitions in
    `gate_reps` (all if empty) create `<gate>.<rep>.waiting` in iteration `gate_at` and wait there until the
    file `gate` exists. Each call of `iterate` adds one byte to `calls` in its repetition's folder; the
    process id goes to `pid` there (a test kills it)."""

    _restore_supported = True
    _default_params = {"crash": "", "crash_at": 1, "sleep": 0.0, "gate": "", "gate_at": -1,
                       "gate_reps": "", "child_pid_file": ""}

    def reset(self, config, rep):
        self.total = 0

    def iterate(self, config, rep, n):
        params = self._params
        with open(os.path.join(self._log_path_rep, "calls"), "ab") as handle:
            handle.write(b".")
        with open(os.path.join(self._log_path_rep, "pid"), "w") as handle:
            handle.write(str(os.getpid()))
        how = crashes(params["crash"]).get(rep)
        if how and n == params["crash_at"] and not os.environ.get("CW_NO_CRASH"):
            crash(how, params["child_pid_file"])
        gated = not params["gate_reps"] or str(rep) in params["gate_reps"].split(",")
        if params["gate"] and n == params["gate_at"] and gated:
            open(f"{params['gate']}.{rep}.waiting", "a").close()
            deadline = time.monotonic() + 60  # a test that never opens the gate fails instead of hanging
            while not os.path.exists(params["gate"]) and time.monotonic() < deadline:
                time.sleep(0.005)
        if params["sleep"]:
            time.sleep(params["sleep"])
        self.total += n
        return {"n": n, "total": self.total}

    def save_state(self, config, rep, n):
        pass

    def restore_state(self, config, rep, n):
        self.total = ExperimentStore(self._path).repetition(rep).read_results().rows[n]["total"]
        return True


class RaisesOSError:
    """A task with a bug that raises an OSError in the worker (the parent must raise it, not take it for a death)."""

    def __call__(self, item, context):
        raise FileNotFoundError(2, "No such file or directory", f"/nonexistent/{item.index}")


class BigOutcome:
    """A task whose outcome is far bigger than a connection's buffer."""

    def __call__(self, item, context):
        return b"x" * (16 << 20)


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

"""Experiments that end the whole process natively (the quarantine tests run them as scripts:
`python tests/quarantine_clients.py NAME config.yml ...`, or under mpiexec with `-c`)."""
from __future__ import annotations

import os
import resource
import signal
import sys
import time

from experiments import NO_SLEEP

from cluster_work import ClusterWork


class Crashing(ClusterWork):
    """A walk whose point `x == crash_x` dies by SIGSEGV in iteration `crash_at` while the environment has
    CW_TEST_CRASH=1 (no core file). Iterations sleep `sleep` seconds; with $CW_TEST_GATE set, every
    iteration from `gate_at` on waits until that file exists (a test holds running segments there).
    With $CW_TEST_HOLD set, the point `x == hold_x` stops in iteration `hold_at` deaf to SIGTERM (no stop
    signal closes its attempt) after creating that file, and the crash waits until it exists: an innocent
    open at a known iteration when the run dies."""

    _restore_supported = True
    _default_params = {"x": 0, "crash_x": -1, "crash_at": 2, "sleep": 0.0, "gate_at": -1, "hold_x": -1,
                       "hold_at": -1}

    def reset(self, config, rep):
        self.value = 0

    def iterate(self, config, rep, n):
        params = self._params
        hold = os.environ.get("CW_TEST_HOLD")
        if hold and params["x"] == params["hold_x"] and n == params["hold_at"]:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            open(hold, "w").close()
            time.sleep(120)  # until the run is killed
            raise RuntimeError("the held run was never killed")
        if params["x"] == params["crash_x"] and n == params["crash_at"] and os.environ.get("CW_TEST_CRASH") == "1":
            _wait_for(hold)
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            os.kill(os.getpid(), signal.SIGSEGV)
        gate = os.environ.get("CW_TEST_GATE")
        deadline = time.monotonic() + 120  # a test that never opens the gate fails instead of hanging
        while gate and 0 <= params["gate_at"] <= n and not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate {gate} was never opened")
            time.sleep(0.01)
        if NO_SLEEP not in os.environ:  # (as Deterministic: see experiments.NO_SLEEP)
            time.sleep(params["sleep"])
        self.value += n + 1
        return {"value": self.value}

    def save_state(self, config, rep, n):
        self._saved = self.value

    def restore_state(self, config, rep, n):
        from cluster_work.store import ExperimentStore

        self.value = ExperimentStore(self._path).repetition(rep).read_results().rows[n]["value"]
        return True


def _wait_for(path: str | None) -> None:
    deadline = time.monotonic() + 120  # a test whose innocent never holds fails instead of hanging
    while path and not os.path.exists(path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} never appeared")
        time.sleep(0.01)


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

"""Experiments the tests run; also runnable as scripts: `python tests/experiments.py NAME config.yml ...`."""
from __future__ import annotations

import json
import os
import pickle
import sys
import time

import numpy as np

from cluster_work import ClusterWork, InvalidParameterArgument

# set (to anything): Deterministic skips its `sleep`, in a run whose pace matters to no test (the reference run
# of a test that kills another, the resume after the kills): its rows are the same, written sooner
NO_SLEEP = "CW_TEST_NO_SLEEP"


class Deterministic(ClusterWork):
    """A random walk driven only by its seeds, with restore support: results depend on nothing else."""

    _restore_supported = True
    _default_params = {"step": 1.0, "sleep": 0.0, "fail_at": -1, "fail_rep": -1, "weights": np.ones(2),
                       "count_calls": False}

    def reset(self, config, rep):
        self.rng = np.random.RandomState(self._seed)
        self.value = 0.0

    def iterate(self, config, rep, n):
        if self._params["count_calls"]:  # one byte per call, to count redone iterations
            with open(os.path.join(self._log_path_rep, "calls"), "ab") as handle:
                handle.write(b".")
        if self._params["sleep"] and NO_SLEEP not in os.environ:
            time.sleep(self._params["sleep"])
        if n == self._params["fail_at"] and rep in (self._params["fail_rep"], -1):
            raise RuntimeError(f"boom at {n}")
        self.value += self._params["step"] * float(np.random.rand())
        return {"value": self.value, "seed": self._seed, "info": {"rep": rep, "tag": f"r{rep}"}}

    def _state_path(self, n):
        return os.path.join(self._log_path_rep, f"state_{n}.pkl")

    def save_state(self, config, rep, n):
        with open(self._state_path(n), "wb") as handle:
            pickle.dump(self.value, handle)

    def restore_state(self, config, rep, n):
        try:
            with open(self._state_path(n), "rb") as handle:
                self.value = pickle.load(handle)
        except (FileNotFoundError, EOFError, pickle.UnpicklingError):
            return False
        return True


class Payload(Deterministic):
    """Returns a large string each iteration, to fill a small disk."""

    _default_params = {**Deterministic._default_params, "payload": ""}

    def iterate(self, config, rep, n):
        return {**super().iterate(config, rep, n), "payload": self._params["payload"]}


class NoRestore(Deterministic):
    _restore_supported = False


class Unsaved(Deterministic):
    """Deterministic's rows without its state file per iteration: a long sweep that only has to exist (e.g. for
    an exporter to read) is written in a fraction of the time (60 000 iterations: 3 s, not 15 s)."""

    def save_state(self, config, rep, n):
        pass


class Buggy(Deterministic):
    """A bug in `iterate`: every repetition raises the same error at iteration `fail_at` (default 1), after
    `sleep` seconds per iteration."""

    _default_params = {**Deterministic._default_params, "fail_at": 1}

    def iterate(self, config, rep, n):
        if n == self._params["fail_at"]:
            raise ZeroDivisionError("division by zero in the model's update")
        return super().iterate(config, rep, n)


class BadParam(Deterministic):
    def reset(self, config, rep):
        raise InvalidParameterArgument("step must be below 10")


class GrowingResults(ClusterWork):
    """Returns strings, None, {} and gains keys in later iterations, as the original could not store."""

    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        if n == 0:
            return None
        if n == 1:
            return {}
        row = {"name": f"it{n}", "score": n * 1.5}
        if n >= 3:
            row["late"] = {"key": n}
        return row


class AbstractBase(ClusterWork):
    """An abstract intermediate class, as real clients have."""

    def reset(self, config, rep):
        self.count = 0


class OldStyleClient(AbstractBase):
    """What clients of the original do: __init__ without arguments, pickles named by self._it."""

    _restore_supported = True
    _default_params = {"matrix": np.eye(2), "name": "x"}

    def __init__(self):
        super().__init__()
        self.extra = 1

    def iterate(self, config, rep, n):
        self.count += 1
        iteration_folder = self._log_path_it
        with open(os.path.join(iteration_folder, "seen.json"), "w") as handle:
            json.dump({"seed": self._seed, "it": self._it}, handle)
        return {}

    def save_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{self._it}.pkl"), "wb") as handle:
            pickle.dump({"count": self.count, "path": self._path, "log": self._log_path}, handle)

    def restore_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}.pkl"), "rb") as handle:
            self.count = pickle.load(handle)["count"]
        return True


class GroupSum(ClusterWork):
    """Uses its group's communicator: every iteration all-reduces the ranks' contributions."""

    def reset(self, config, rep):
        self.total = 0

    def iterate(self, config, rep, n):
        comm = self._COMM
        size = comm.Get_size() if comm is not None else 1
        contribution = (comm.Get_rank() + 1) if comm is not None else 1
        summed = comm.allreduce(contribution) if comm is not None else contribution
        self.total += summed
        return {"group_size": size, "summed": summed, "total": self.total}


class Gated(Deterministic):
    """Deterministic, but in a process whose environment names a gate file ($CW_TEST_GATE) every iteration
    after the first waits until that file exists: a run that provably holds its repetitions (with one row
    saved) until a test opens the gate. Without the variable it is Deterministic, results included."""

    def iterate(self, config, rep, n):
        gate = os.environ.get("CW_TEST_GATE")
        deadline = time.monotonic() + 120  # a test that never opens the gate fails instead of hanging
        while gate and n > 0 and not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate {gate} was never opened")
            time.sleep(0.01)
        return super().iterate(config, rep, n)


class BarrierWalk(ClusterWork):
    """The weighted-ensemble tests' chain: a walk on 0, 1, 2... that steps up with probability `up`, else
    down (staying at 0); its state is its position. With $CW_TEST_GATE set, iterations from `gate_at` on
    wait until that file exists, so that a test can kill the run while it provably holds those segments."""

    _default_params = {"up": 0.25, "gate_at": -1}

    def reset(self, config, rep):
        self.x = 0

    def iterate(self, config, rep, n):
        gate = os.environ.get("CW_TEST_GATE")
        deadline = time.monotonic() + 120  # a test that never opens the gate fails instead of hanging
        while gate and 0 <= self._params["gate_at"] <= n and not os.path.exists(gate):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate {gate} was never opened")
            time.sleep(0.01)
        self.x = max(0, self.x + (1 if np.random.random() < self._params["up"] else -1))
        return {"pcoord": self.x, "seed": self._seed}

    def get_state(self):
        return self.x

    def set_state(self, state):
        self.x = state


class Steered(ClusterWork):
    """The steered campaigns' experiment: its `loss` after n + 1 iterations is (37 c + 11) mod 81 + 1 / (n + 1)
    (+ `offset`), so successive halving ranks points in an order unlike the grid's. Restores from a state
    file per iteration; every iterate call adds a byte to `<rep>/calls` (iterations computed). With
    $CW_TEST_GATE set, iteration `gate_at` (of point `gate_c`, or of each point of that list, or of every point)
    first creates `<gate>.waiting`, then waits until the gate exists; and point `after_c` starts only once that
    is so."""

    _restore_supported = True
    _default_params = {"c": 0, "offset": 0.0, "gate_at": -1, "gate_c": -1, "after_c": -1}

    def reset(self, config, rep):
        self.done = 0

    def iterate(self, config, rep, n):
        gate, c = os.environ.get("CW_TEST_GATE"), self._params["c"]
        if gate and n == 0 and c == self._params["after_c"]:
            self._wait_for(f"{gate}.waiting")
        gated = self._params["gate_c"]
        if gate and n == self._params["gate_at"] and (gated in (-1, c) or isinstance(gated, list) and c in gated):
            open(f"{gate}.waiting", "a").close()
            self._wait_for(gate)
        with open(os.path.join(self._log_path_rep, "calls"), "ab") as handle:
            handle.write(b".")
        self.done = n + 1
        return {"loss": (37 * c + 11) % 81 + 1 / (n + 1) + self._params["offset"]}

    @staticmethod
    def _wait_for(path):
        deadline = time.monotonic() + 120  # a test that never opens the gate fails instead of hanging
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{path} never appeared")
            time.sleep(0.01)

    def save_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}"), "w") as handle:
            handle.write(str(self.done))

    def restore_state(self, config, rep, n):
        try:
            with open(os.path.join(self._log_path_rep, f"state_{n}")) as handle:
                self.done = int(handle.read())
        except (FileNotFoundError, ValueError):
            return False
        return True


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

"""What the backend conformance suite runs (importable by worker processes and MPI ranks alike)."""
from __future__ import annotations

import os
import time

from cluster_work import ClusterWork
from cluster_work.results import repetition_rows


class Counting(ClusterWork):
    """Returns its iteration and a value from its params; with `gate` set, every iteration from
    `gate_after` on waits until that file exists (a test holds a running segment there, provably)."""

    _restore_supported = True
    _default_params = {"gate": "", "gate_after": 1, "die_at": -1, "fail_at": -1}

    def reset(self, config, rep):
        self.total = 0

    def iterate(self, config, rep, n):
        params = self._params
        if n == params["die_at"]:
            os._exit(3)  # the worker process dies under the segment
        if n == params["fail_at"]:
            raise RuntimeError(f"failed at {n}")
        deadline = time.monotonic() + 60  # a test that never opens the gate fails instead of hanging
        while params["gate"] and n >= params["gate_after"] and not os.path.exists(params["gate"]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the gate {params['gate']} was never opened")
            time.sleep(0.005)
        self.total += n + rep
        return {"n": n, "total": self.total}

    def save_state(self, config, rep, n):
        self._saved = self.total

    def restore_state(self, config, rep, n):
        """The total after iteration n, from the saved rows (the runner kept those rows on disk)."""
        self.total = repetition_rows(self._path, rep)[n]["total"]  # either layout's rows
        return True

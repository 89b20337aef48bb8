"""Experiments whose MPI ranks die or fall silent on chosen repetitions, for the fault tests (also runnable as
scripts: `mpiexec --with-ft ulfm -n 4 python -m mpi4py tests/mpi_fault_clients.py Dying config.yml -c`).

`fault`: which repetitions do what, e.g. "2:sigkill" or "1:segv,3:stop"; `fault_at`: in which iteration.
sigkill and segv end the rank as the OOM killer or a C extension would; stop (SIGSTOP) leaves it alive
but silent, as a host cut off from the network does. Every call of `iterate` adds one byte to `calls` in
its repetition's folder (to count iterations run twice), and each rank that runs a repetition writes its
pid to `pid.<rank>` there (a test kills what a stop left behind).
"""
from __future__ import annotations

import os
import signal
import sys
import time

from cluster_work import ClusterWork


def faults(spec: str) -> dict[int, str]:
    """'1:sigkill,3:stop' -> {1: 'sigkill', 3: 'stop'}."""
    return {int(rep): how for rep, how in (part.split(":") for part in spec.split(",") if part)}


def fault(how: str) -> None:
    signum = {"sigkill": signal.SIGKILL, "segv": signal.SIGSEGV, "stop": signal.SIGSTOP}[how]
    os.kill(os.getpid(), signum)
    time.sleep(10)  # a signal is delivered asynchronously: never go on past it


class Dying(ClusterWork):
    """Counts; the repetitions named in `fault` meet their fault in iteration `fault_at`: on every rank of
    a group (`who: all`), or on its leader or its last rank alone (`who: leader`, `who: member`)."""

    _default_params = {"fault": "", "fault_at": 1, "sleep": 0.0, "who": "all"}

    def reset(self, config, rep):
        self.count = 0
        rank = self._COMM.Get_rank() if self._COMM is not None else 0
        with open(os.path.join(self._log_path_rep, f"pid.{rank}"), "w") as handle:
            handle.write(str(os.getpid()))

    def iterate(self, config, rep, n):
        comm = self._COMM
        with open(os.path.join(self._log_path_rep, "calls"), "ab") as handle:
            handle.write(b".")
        if self._params["sleep"]:
            time.sleep(self._params["sleep"])
        how = faults(self._params["fault"]).get(rep)
        rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
        chosen = {"all": True, "leader": rank == 0, "member": rank == size - 1}[self._params["who"]]
        if how and n == self._params["fault_at"] and chosen:
            fault(how)
        self.count += comm.allreduce(1) if comm is not None and comm.Get_size() > 1 else 1
        return {"count": self.count}


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

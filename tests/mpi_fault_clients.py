"""Experiments whose MPI ranks die or fall silent on chosen repetitions, for the fault tests (also runnable as
scripts: `mpiexec --with-ft ulfm -n 4 python -m mpi4py tests/mpi_fault_clients.py Dying config.yml -c`).

`fault`: which repetitions do what, e.g. "2:sigkill" or "1:segv,3:stop"; `fault_at`: in which iteration
(after `fault_after` seconds; the time goes to `fault.<world rank>` in the repetition's folder).
sigkill and segv end the rank as the OOM killer or a C extension would; stop (SIGSTOP) leaves it alive
but silent, as a host cut off from the network does. Every call of `iterate` adds one byte to `calls` in
its repetition's folder (to count iterations run twice), and each rank that runs a repetition writes its
pid to `pid.<world rank>` there (a test kills what a stop left behind). CW_NO_FAULT=1 in the environment runs the
same config without faults (a resumed run that finishes).
"""
from __future__ import annotations

import os
import signal
import sys
import time

from experiments import NO_SLEEP

from cluster_work import ClusterWork


def faults(spec: str) -> dict[int, str]:
    """'1:sigkill,3:stop' -> {1: 'sigkill', 3: 'stop'}."""
    return {int(rep): how for rep, how in (part.split(":") for part in spec.split(",") if part)}


def world_rank() -> int:
    MPI = sys.modules.get("mpi4py.MPI")
    return MPI.COMM_WORLD.Get_rank() if MPI is not None and MPI.Is_initialized() else 0


def fault(how: str) -> None:
    signum = {"sigkill": signal.SIGKILL, "segv": signal.SIGSEGV, "stop": signal.SIGSTOP}[how]
    os.kill(os.getpid(), signum)
    time.sleep(10)  # a signal is delivered asynchronously: never go on past it


class Dying(ClusterWork):
    """Counts; the repetitions named in `fault` meet their fault in iteration `fault_at`: on every rank of
    a group (`who: all`), or on its leader or its last rank alone (`who: leader`, `who: member`)."""

    _default_params = {"fault": "", "fault_at": 1, "sleep": 0.0, "who": "all", "fault_after": 0.0}

    def reset(self, config, rep):
        self.count = 0
        with open(os.path.join(self._log_path_rep, f"pid.{world_rank()}"), "w") as handle:
            handle.write(str(os.getpid()))

    def iterate(self, config, rep, n):
        comm = self._COMM
        with open(os.path.join(self._log_path_rep, "calls"), "ab") as handle:
            handle.write(b".")
        if self._params["sleep"] and NO_SLEEP not in os.environ:  # (as Deterministic: see experiments.NO_SLEEP)
            time.sleep(self._params["sleep"])
        how = None if os.environ.get("CW_NO_FAULT") else faults(self._params["fault"]).get(rep)
        rank, size = (comm.Get_rank(), comm.Get_size()) if comm is not None else (0, 1)
        chosen = {"all": True, "leader": rank == 0, "member": rank == size - 1}[self._params["who"]]
        if how and n == self._params["fault_at"] and chosen:
            time.sleep(self._params["fault_after"])  # e.g. until the other workers are idle
            with open(os.path.join(self._log_path_rep, f"fault.{world_rank()}"), "w") as handle:
                handle.write(repr(time.time()))  # when it died (or stopped)
            fault(how)
        self.count += comm.allreduce(1) if comm is not None and comm.Get_size() > 1 else 1
        return {"count": self.count}


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

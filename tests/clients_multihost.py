"""Experiments of the multi-host tests (tests/test_multihost.py); runnable as scripts under mpiexec:
`mpiexec ... python -m mpi4py tests/clients_multihost.py NAME config.yml -c`. Both are `Deterministic`
(the same results as a sequential run) wherever their environment variables are unset."""
from __future__ import annotations

import ctypes
import os
import socket
import sys
import time

from experiments import Deterministic


class HostGated(Deterministic):
    """On the host named $CW_TEST_GATE_HOST, every iteration after the first waits until the file
    $CW_TEST_GATE exists, after leaving a file `waiting` in the repetition's folder: a run whose repetitions
    on that host provably sit in the middle (one iteration done) until a test opens the gate."""

    def iterate(self, config, rep, n):
        gate = os.environ.get("CW_TEST_GATE")
        if gate and n > 0 and socket.gethostname() == os.environ.get("CW_TEST_GATE_HOST"):
            open(os.path.join(self._log_path_rep, "waiting"), "a").close()
            deadline = time.monotonic() + 120  # a test that never opens the gate fails instead of hanging
            while not os.path.exists(gate):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the gate {gate} was never opened")
                time.sleep(0.01)
        return super().iterate(config, rep, n)


class PoisonPill(Deterministic):
    """The first repetition to reach iteration 2 on the host named $CW_TEST_CRASH_HOST becomes the poison
    pill: it writes its folder into the file $CW_TEST_CRASH_MARK (created exclusively: one culprit per
    sweep) and dies of a segmentation fault, there and in every later run, on any host, at that iteration.
    Every other repetition runs as `Deterministic`."""

    def iterate(self, config, rep, n):
        mark = os.environ.get("CW_TEST_CRASH_MARK")
        if mark and n == 2:
            me = os.path.abspath(self._log_path_rep)
            if socket.gethostname() == os.environ.get("CW_TEST_CRASH_HOST"):
                try:
                    descriptor = os.open(mark, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                except FileExistsError:
                    pass
                else:
                    os.write(descriptor, me.encode())
                    os.close(descriptor)
            if os.path.exists(mark) and open(mark).read() == me:
                ctypes.string_at(0)  # a native crash: SIGSEGV, as a bug in a C extension gives
        return super().iterate(config, rep, n)


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

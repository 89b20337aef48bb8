"""Experiments of the multi-host tests (tests/test_multihost.py); runnable as scripts under mpiexec:
`mpiexec ... python -m mpi4py tests/clients_multihost.py NAME config.yml -c`. Each behaves differently only
on the host named $CW_TEST_HOST (or, for the poison pill, once it has chosen itself), and is `Deterministic`
elsewhere: the same results as a sequential run."""
from __future__ import annotations

import ctypes
import os
import socket
import sys
import time

from experiments import Deterministic


def _on_the_test_host() -> bool:
    return socket.gethostname() == os.environ.get("CW_TEST_HOST")


class OnOneHost(Deterministic):
    """On the host $CW_TEST_HOST each iteration first leaves a file `here` in the repetition's folder, then
    sleeps $CW_TEST_SLOW seconds (if set), and every iteration after the first waits until the file
    $CW_TEST_GATE exists (if set: its repetitions there provably sit after one iteration until a test opens
    the gate; the file `waiting` says they do)."""

    def iterate(self, config, rep, n):
        if _on_the_test_host():
            open(os.path.join(self._log_path_rep, "here"), "a").close()
            time.sleep(float(os.environ.get("CW_TEST_SLOW", 0)))
            gate = os.environ.get("CW_TEST_GATE")
            if gate and n > 0:
                open(os.path.join(self._log_path_rep, "waiting"), "a").close()
                deadline = time.monotonic() + 120  # a test that never opens the gate fails instead of hanging
                while not os.path.exists(gate):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"the gate {gate} was never opened")
                    time.sleep(0.01)
        return super().iterate(config, rep, n)


class PoisonPill(Deterministic):
    """The first repetition to reach iteration 2 on the host $CW_TEST_HOST becomes the poison pill: it writes
    `<experiment> rep <rep>` into the file $CW_TEST_CRASH_MARK (created exclusively: one culprit per sweep) and
    dies of a segmentation fault, there and in every later run, on any host, in that iteration."""

    def iterate(self, config, rep, n):
        mark = os.environ.get("CW_TEST_CRASH_MARK")
        if mark and n == 2:
            me = f"{self._name} rep {rep}"  # as the logs name it
            if _on_the_test_host():
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

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
    `<experiment> rep <rep>` into the file $CW_TEST_CRASH_MARK (created exclusively: one culprit per sweep)
    and dies of a segmentation fault there, and in every later run, on any host, in that iteration.

    With $CW_TEST_GATE set, the first repetition to reach iteration 2 on another host becomes an innocent in
    a long iteration (named in `<mark>.innocent`): in every run its iteration 2 lasts until the file
    $CW_TEST_GATE exists, and the pill crashes only once the innocent is in it (its pid in `<mark>.waiting`)."""

    def iterate(self, config, rep, n):
        mark = os.environ.get("CW_TEST_CRASH_MARK")
        if mark and n == 2:
            me, gate = f"{self._name} rep {rep}", os.environ.get("CW_TEST_GATE")
            if _on_the_test_host():
                _claim(mark, me)
            elif gate and _read(mark) != me:
                _claim(f"{mark}.innocent", me)
            if gate and _read(f"{mark}.innocent") == me:
                _write(f"{mark}.waiting", str(os.getpid()))
                _wait_for(lambda: os.path.exists(gate), "the gate to open")
            if _read(mark) == me:
                if gate:
                    _wait_for(lambda: _alive(_read(f"{mark}.waiting")), "the innocent in its long iteration")
                ctypes.string_at(0)  # a native crash: SIGSEGV, as a bug in a C extension gives
        return super().iterate(config, rep, n)


def _claim(path: str, me: str) -> bool:
    """Write `me` into `path` unless it exists: whether this call did."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    os.write(descriptor, me.encode())
    os.close(descriptor)
    return True


def _read(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _write(path: str, text: str) -> None:
    with open(f"{path}.tmp", "w") as handle:
        handle.write(text)
    os.replace(f"{path}.tmp", path)


def _alive(pid: str | None) -> bool:
    """Whether process `pid` runs (a zombie of an earlier run does not)."""
    try:
        with open(f"/proc/{int(pid or 0)}/stat") as handle:
            return bool(pid) and handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ValueError):
        return False


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + 120  # a test that never gets there fails instead of hanging
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited 120 s for {what}")
        time.sleep(0.01)


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

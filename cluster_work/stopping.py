"""Stop signals (SIGINT, SIGTERM): at once during start-up, gracefully once something was written.

During start-up (loading the config, planning) nothing has been written yet, so a signal ends the
process at once with one line and exit status 130 (`stop_signals_handled`): no traceback from wherever
the signal landed, no silent death by SIGTERM. From the first write on, `handle_stop_signals` takes over:
the first signal sets a flag that the runner checks between iterations; a second one in the process
that installed `handle_stop_signals(hard_second=True)` stops at once.

The flag is a collaborator (`StopFlag`): an executor is given the one it obeys (`Executor.stop`; by default
`PROCESS_STOP`, the one this process's signal handlers set, since signals reach a process, not a run), and
hands it on to what it runs (`TaskContext.stop_requested`), the campaign loop and the summary.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from .exit_codes import EXIT_INTERRUPTED

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)

_stop = threading.Event()  # this process's: set by its signal handlers (workers get the parent's stop apart)
# the stop signals this process's handlers took since the last clear, counted first thing in the handler (next()
# is one C call: no handler runs inside it), so that one arriving while another's handler runs is a second one
_signals_taken = itertools.count()
# called with the signal's number by the handlers of `handle_stop_signals`, at once, whatever the process is
# doing (the attempts journal notes there that this process was told to stop: see attempts)
_listeners: list[Callable[[int], None]] = []


class StopFlag(Protocol):
    """A run's stop request: once requested, the items in flight stop after their current iteration,
    nothing more starts, and everything is resumable. Any thread may ask or request."""

    def requested(self) -> bool: ...

    def request(self) -> None: ...


class _ProcessStop:
    """This process's stop flag: the one its signal handlers (and a console that went away) set."""

    def requested(self) -> bool:
        return _stop.is_set()

    def request(self) -> None:
        _stop.set()


PROCESS_STOP: StopFlag = _ProcessStop()


class RunStop:
    """A stop flag of its own, apart from this process's signals (an embedding's run, a test)."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def requested(self) -> bool:
        return self._event.is_set()

    def request(self) -> None:
        self._event.set()


def stop_requested() -> bool:
    """Whether this process was told to stop (`PROCESS_STOP`)."""
    return _stop.is_set()


def request_stop() -> None:
    """Tell this process to stop (`PROCESS_STOP`)."""
    _stop.set()


def clear_stop_request() -> None:
    """Take back this process's stop request (`PROCESS_STOP`): a new run in the same process starts afresh."""
    global _signals_taken
    _signals_taken = itertools.count()
    _stop.clear()


def on_stop_signal(listener: Callable[[int], None]) -> None:
    """Call `listener(signum)` whenever a stop signal reaches this process (once handle_stop_signals runs)."""
    if listener not in _listeners:
        _listeners.append(listener)


def handle_stop_signals(hard_second: bool, on_first: Callable[[], None] | None = None) -> None:
    """Install handlers for SIGINT, SIGTERM and SIGUSR1 (Slurm's warning before a time limit, which
    mpiexec forwards to every rank); only possible in the main thread."""
    def handler(signum: int, frame: object) -> None:
        # first or second is decided, and the flag set, before anything else: a signal that comes while this
        # handler runs (its listeners write) runs the handler again inside it, and must be the second one
        second = next(_signals_taken) > 0 or _stop.is_set()
        request_stop()
        for listener in list(_listeners):
            listener(signum)
        if second and hard_second:
            raise KeyboardInterrupt
        if not second and on_first is not None:
            on_first()

    for signum in (*STOP_SIGNALS, signal.SIGUSR1):
        signal.signal(signum, handler)


def _exit_at_once(signum: int, frame: object) -> None:
    """Print one line and end the process with status 130, whatever it was doing.

    `os._exit` rather than an exception: an exception raised where the signal lands can be caught or
    printed as "Exception ignored" (in a `__del__`, say). The line goes straight to file descriptor 2,
    since the signal may have interrupted a write to `sys.stderr`."""
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.write(2, f"stopped by {signal.Signals(signum).name} before any job started\n".encode())
    os._exit(EXIT_INTERRUPTED)


@contextlib.contextmanager
def stop_signals_handled() -> Iterator[None]:
    """Around one run: from now until `handle_stop_signals` takes over (before the first write),
    SIGINT and SIGTERM end the process at once with one line and exit status 130. On the way out, the
    handlers the caller had (a notebook or a test that runs the CLI keeps its Ctrl-C), and a fresh stop
    flag on the way in. Outside the main thread, where Python cannot install handlers, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in (*STOP_SIGNALS, signal.SIGUSR1)}
    clear_stop_request()
    for signum in STOP_SIGNALS:
        signal.signal(signum, _exit_at_once)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

"""This process's stop-signal handler (`stopping.handle_stop_signals`): the first signal asks for a graceful stop,
the second stops at once (KeyboardInterrupt, which the command line turns into "stopped at once"), also where the
second arrives while the first one's handler still runs (CPython then runs the handler again inside it)."""
import os
import signal
import threading

import pytest

from cluster_work import stopping


@pytest.fixture
def handlers(monkeypatch):
    """The handlers and listeners this test installs are gone afterwards (the flag: conftest clears it)."""
    previous = {signum: signal.getsignal(signum) for signum in (*stopping.STOP_SIGNALS, signal.SIGUSR1)}
    monkeypatch.setattr(stopping, "_listeners", [])
    stopping.clear_stop_request()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def _call() -> None:
    """A Python call: where CPython runs the handler of a signal that arrived meanwhile."""


def test_the_first_signal_asks_for_a_graceful_stop_and_the_second_stops_at_once(handlers):
    firsts, noted = [], []
    stopping.on_stop_signal(noted.append)
    stopping.handle_stop_signals(hard_second=True, on_first=lambda: firsts.append(1))
    os.kill(os.getpid(), signal.SIGINT)
    _call()
    assert stopping.stop_requested() and firsts == [1] and noted == [signal.SIGINT]
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        _call()
    assert firsts == [1] and noted == [signal.SIGINT, signal.SIGINT]


def test_a_second_signal_that_comes_while_the_first_ones_handler_runs_stops_at_once(handlers, monkeypatch):
    """The second SIGINT arrives just after the first one's handler looked at the flag and found it clear (as a
    Ctrl-C pressed twice on a loaded machine may): it is still the second one. (Deciding after the listeners,
    from the flag alone, took both for first ones there: a graceful stop that waited for the iteration.)"""

    class SignalledOnLook(threading.Event):
        """The stop flag, sending this process a second SIGINT the first time it is looked at, and answering
        with what it held before that signal's handler ran."""
        sent = False

        def is_set(self) -> bool:
            held = super().is_set()
            if not SignalledOnLook.sent:
                SignalledOnLook.sent = True
                os.kill(os.getpid(), signal.SIGINT)
                _call()  # the second signal's handler runs here, inside the first one's look
            return held

    monkeypatch.setattr(stopping, "_stop", SignalledOnLook())
    stopping.handle_stop_signals(hard_second=True)
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        _call()
    assert SignalledOnLook.sent and stopping.stop_requested()

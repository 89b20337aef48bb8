"""How busy the workers were over a while, not at one instant: worker-seconds, integrated as they change.

A snapshot of the busy workers misleads when items are short: with an ensemble's microsecond walker
iterations every worker is idle at the instant the display looks, and the live row said "0/2 busy" for
a run whose workers were busy half the time. So each executor keeps a `BusyClock`: it is told when a
worker starts holding an item (its first one, handed out) and when it holds none any more (its last
outcome came, or it died), and integrates the count of busy workers over time. The display then shows
the average count over its last interval (`BusyShare`): busy worker-seconds / seconds.

Busy means what the executor knows: from the hand-out of a worker's first item to the outcome of its
last one, so the time items travel counts too. Cost: one clock read and a few float operations per
change, twice per job at most.
"""
from __future__ import annotations

import time
from collections import deque


class BusyClock:
    """Worker-seconds spent busy so far. `change(+1)` when a worker becomes busy, `change(-1)` when it
    becomes idle; `seconds()` may be read from another thread (the display's): the state is one tuple,
    replaced whole."""

    __slots__ = ("_state",)

    def __init__(self, now: float | None = None):
        self._state = (0.0, 0, time.monotonic() if now is None else now)  # integral, busy count, since

    def change(self, delta: int, now: float | None = None) -> None:
        integral, count, since = self._state
        moment = time.monotonic() if now is None else now
        self._state = (integral + count * (moment - since), count + delta, moment)

    def seconds(self, now: float | None = None) -> float:
        integral, count, since = self._state
        return integral + count * ((time.monotonic() if now is None else now) - since)


class BusyShare:
    """The average number of busy workers over the last `window` seconds (at least since the previous
    reading), from readings of a `BusyClock`'s `seconds`."""

    def __init__(self, window: float):
        self.window = window
        self._readings: deque[tuple[float, float]] = deque()

    def average(self, busy_seconds: float, now: float | None = None) -> float:
        moment = time.monotonic() if now is None else now
        readings = self._readings
        readings.append((moment, busy_seconds))
        while len(readings) > 2 and moment - readings[1][0] >= self.window:
            readings.popleft()
        (first, at_first), (last, at_last) = readings[0], readings[-1]
        return (at_last - at_first) / (last - first) if last > first else 0.0


def describe_busy(average: float) -> str:
    """`2`, `0.4`, `1.5`: a whole number when it is one (to a tenth), else one decimal."""
    return f"{average:.0f}" if abs(average - round(average)) < 0.05 else f"{average:.1f}"

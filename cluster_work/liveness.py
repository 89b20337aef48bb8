"""Which workers have gone silent: pure bookkeeping of when rank 0 last heard from each busy worker.

A worker that runs an item talks to rank 0 now and then: a progress message after an iteration (at most
every `mpi_reports.PROGRESS_EVERY` seconds) and the outcome at the end. A worker that has said nothing
for much longer than an iteration of what it runs takes (`FACTOR` times the typical one), and for longer
than a floor (`floor`, 60 s unless the run sets a stall limit), has *stalled*: its host is unreachable,
its process stopped, or its iteration hangs. Slow but steady workers never count: the typical iteration
time of each kind of item (an experiment) is learnt from what the workers report, and an iteration that
takes an hour lets its worker stay silent for ten. Each worker is held to its own iterations of that kind
once it has timed any (a slow host's workers are not held to a fast host's figure); a worker that has
not yet is held to the figure of all workers.

No MPI here: the executor receives the messages and says who spoke (`mpi_roster`), this module only
keeps the times (`time.monotonic`, or the `now` a test passes) and decides. Only busy workers are
watched: an idle one has nothing to say.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from .errors import ClusterWorkError

STALL_FLOOR = 60.0  # s: nobody counts as stalled sooner, unless a stall limit (--stall-timeout) says so
FACTOR = 10.0  # a worker may be silent this many typical iterations before it counts as stalled


def short_duration(seconds: float) -> str:
    """4m12s, 1h03m, 45s, 0.05 s: short, for a log line about a silence or an iteration time."""
    if seconds < 1:
        return f"{seconds:.2g} s"
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


@dataclass(frozen=True)
class Silence:
    """A stalled worker: rank `worker` on `host`, silent for `silent_for` seconds, running items whose
    iterations take `typical` seconds (None: none timed yet)."""

    worker: int
    host: str
    silent_for: float
    typical: float | None

    def describe(self) -> str:
        took = (f"its iterations take {short_duration(self.typical)}" if self.typical is not None
                else "none of its iterations timed yet")
        return f"rank {self.worker} on {self.host}: no word for {short_duration(self.silent_for)}; {took}"


class Stalled(ClusterWorkError):
    """Workers were silent past the run's stall limit (`--stall-timeout`): the run ends."""

    def __init__(self, silences: list[Silence], limit: float):
        self.silences, self.limit = silences, limit
        super().__init__(f"stalled: {'; '.join(s.describe() for s in silences)}. Past the stall limit "
                         f"({short_duration(limit)}): ending the run, its MPI launcher included; the same "
                         "command resumes it")


class Liveness:
    """Last word per busy worker and typical iteration time per kind of item.

    `started(w, kind)`: worker w began an item of `kind` (an experiment's name). `heard(w, iterations)`:
    a message from w, reporting `iterations` more iterations done. `idle(w)`: w holds nothing more
    (silence is then normal). `stalled()`: the busy workers silent past their limit. Iteration times are
    measured as time between words divided by iterations reported, so they include a reset and the
    messages' delay: an overestimate, which only makes a false alarm rarer. They are kept per kind and per
    (worker, kind): at most workers x kinds pairs. A few dictionary updates per message: rank 0 does this
    for every job (about 1 us; see benchmarks/scheduling.py).
    """

    def __init__(self, floor: float = STALL_FLOOR, factor: float = FACTOR):
        self.floor, self.factor = floor, factor
        self._kind: dict[int, str] = {}  # busy worker -> the kind of item it runs
        self._since: dict[int, float] = {}  # busy worker -> its last word, or its item's start
        self._timed: dict[str, list[float]] = {}  # kind -> [seconds, iterations] observed, all workers
        self._own: dict[tuple[int, str], list[float]] = {}  # (worker, kind) -> the same, its own

    def started(self, worker: int, kind: str, now: float | None = None) -> None:
        self._kind[worker] = kind
        self._since[worker] = time.monotonic() if now is None else now

    def heard(self, worker: int, iterations: int = 0, now: float | None = None) -> None:
        since = self._since.get(worker)
        if since is None:
            return
        moment = time.monotonic() if now is None else now
        if iterations > 0:
            kind, took = self._kind[worker], max(0.0, moment - since)
            for timed in (self._timed.setdefault(kind, [0.0, 0]), self._own.setdefault((worker, kind), [0.0, 0])):
                timed[0] += took
                timed[1] += iterations
        self._since[worker] = moment

    def idle(self, worker: int) -> None:
        self._since.pop(worker, None)
        self._kind.pop(worker, None)

    def typical(self, kind: str, worker: int | None = None) -> float | None:
        """Seconds per iteration of items of `kind`, as measured so far by `worker` if it has measured any,
        else by all workers (None: none measured)."""
        seconds, count = self._own.get((worker, kind), (0.0, 0)) if worker is not None else (0.0, 0)
        if not count:
            seconds, count = self._timed.get(kind, (0.0, 0))
        return seconds / count if count else None

    def limit(self, worker: int) -> float | None:
        """How long busy `worker` may stay silent (None: it is not busy)."""
        if worker not in self._since:
            return None
        typical = self.typical(self._kind[worker], worker)
        return max(self.floor, self.factor * typical) if typical is not None else self.floor

    def stalled(self, hosts: dict[int, str] | None = None, now: float | None = None) -> list[Silence]:
        """The busy workers silent for longer than their limit, by rank."""
        moment, found = _now(now), []
        for worker, since in sorted(self._since.items()):
            silent = moment - since
            limit = self.limit(worker)
            if limit is not None and silent > limit:
                found.append(Silence(worker, (hosts or {}).get(worker, "?"), silent,
                                     self.typical(self._kind[worker], worker)))
        return found


def _now(now: float | None) -> float:
    return time.monotonic() if now is None else now

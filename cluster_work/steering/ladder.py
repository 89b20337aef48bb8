"""Rungs: the checkpoints where built-in policies compare the points of a group and stop some.

A ladder is a group of points (a successive-halving bracket, all points for median stopping) and its
checkpoints t_1 < t_2 < ... < R. Every point runs to t_1; where all of a point's repetitions have
reported there, its metric (reduced over them) is known at that rung; the rung is *complete* once every
point that entered it is known (or failed: all of its repetitions failed, and it leaves the ladder).

At a complete rung the rule decides, in expansion order: successive halving keeps the best
`keep = max(1, planned // eta)` (ties: the earlier point), where `planned` is how many points the rung
was planned for (all of them at the first, the previous rung's `keep` after that), so `keep` never
depends on what failed; median stopping keeps a point unless its metric is worse than the median of
the others'; threshold decides each point alone, at once. A point is also let on *before* its rung
is complete where it is certain to be kept whatever the unknown points report (each counted as the
best possible, and `capacity` bounding how many may still come): the set of decisions is the one the
complete rung gives, while workers need not wait for the rung's slowest point.
"""
from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Callable
from typing import Any


class Rung:
    """One checkpoint of a ladder (see the module docstring for `capacity`, `keep` and completeness)."""

    def __init__(self, iteration: int, capacity: int, keep: int | None):
        self.iteration, self.capacity, self.keep = iteration, capacity, keep
        self.entered, self.sealed, self.closed = 0, False, False
        self.badness: dict[int, float] = {}
        self.values: dict[int, float] = {}
        self.gone = self.continued = self.stopped = 0
        self.decided: set[int] = set()
        self.undecided: list[tuple[float, int]] = []  # heap of the known points not decided yet
        self.ordered: list[float] = []  # every known badness, sorted (median stopping)

    @property
    def unknown(self) -> int:
        """At most this many points may still report here."""
        return self.capacity - len(self.badness) - self.gone

    @property
    def complete(self) -> bool:
        return self.sealed and len(self.badness) + self.gone == self.entered


def median_of_others(ordered: list[float], own: float, unknown: int) -> float:
    """The median of `ordered` without one `own`, with `unknown` more values that are the best possible
    (-inf): a lower bound of the median the others will have; +inf where there are no others."""
    count = len(ordered) - 1 + unknown
    if count <= 0:
        return math.inf
    position = bisect.bisect_left(ordered, own)

    def at(j: int) -> float:
        if j < unknown:
            return -math.inf
        j -= unknown
        return ordered[j] if j < position else ordered[j + 1]

    if count % 2:
        return at(count // 2)
    low, high = at(count // 2 - 1), at(count // 2)
    return -math.inf if low == -math.inf else (low + high) / 2


Continue = Callable[[int, int], None]  # (point, the rung it goes on to: len(rungs) for the end)
Halt = Callable[[int, str], None]  # (point, reason)


class Ladder:
    """The rungs of one group of points; `go_on(point, level)` and `halt(point, reason)` carry out the
    decisions. `bound`: threshold's bound as a badness (see `points.badness`)."""

    def __init__(self, rule: str, mode: str, points: list[int], checkpoints: list[int], factor: int,
                 bound: float | None, describe: Callable[[str, int, float], str], go_on: Continue, halt: Halt):
        self.rule, self.mode, self.points, self.bound = rule, mode, points, bound
        self._describe, self._go_on, self._halt = describe, go_on, halt
        self.rungs: list[Rung] = []
        capacity = len(points)
        for iteration in checkpoints:
            keep = max(1, capacity // factor) if rule == "halving" else None
            self.rungs.append(Rung(iteration, capacity, keep))
            capacity = keep if keep is not None else capacity
        if self.rungs:
            self.rungs[0].entered, self.rungs[0].sealed = len(points), True

    def report(self, level: int, point: int, badness: float | None, value: float | None) -> None:
        """Point `point` is known at rung `level` (`badness` None: all of its repetitions failed)."""
        rung = self.rungs[level]
        if badness is None or value is None:
            rung.gone += 1
        else:
            rung.badness[point], rung.values[point] = badness, value
            heapq.heappush(rung.undecided, (badness, point))
            if self.rule == "median":
                bisect.insort(rung.ordered, badness)
        self._settle(level)

    def _settle(self, level: int) -> None:
        while True:
            rung = self.rungs[level]
            while rung.undecided:
                badness, point = rung.undecided[0]
                if point in rung.decided:
                    heapq.heappop(rung.undecided)
                elif self.rule == "threshold":  # each point alone, at once
                    heapq.heappop(rung.undecided)
                    self._judge(level, rung, point, {})
                elif self._certain(rung, badness):
                    heapq.heappop(rung.undecided)
                    self._continue(level, point)
                else:
                    break
            if not rung.complete or rung.closed:
                return
            rung.closed = True
            self._decide(level, rung)
            if level + 1 == len(self.rungs):
                return
            level += 1
            following = self.rungs[level]
            following.sealed, following.capacity = True, following.entered

    def _certain(self, rung: Rung, badness: float) -> bool:
        """Whether the best undecided known point is kept whatever the unknown ones report. Monotone: if
        it is not, no worse point is (so only the best undecided one is looked at)."""
        if self.rule == "halving":
            assert rung.keep is not None
            return rung.continued + rung.unknown < rung.keep
        return badness <= median_of_others(rung.ordered, badness, rung.unknown)

    def _decide(self, level: int, rung: Rung) -> None:
        """The decisions of a complete rung, in expansion order, for the points not decided yet."""
        rank: dict[int, int] = {}
        if self.rule == "halving":
            ranked = sorted(rung.badness, key=lambda p: (rung.badness[p], p))
            rank = {point: number for number, point in enumerate(ranked)}
            assert all(rank[p] < (rung.keep or 0) for p in rung.decided), "a point let on early is not kept"
        for point in sorted(rung.badness):
            if point not in rung.decided:
                self._judge(level, rung, point, rank)

    def _judge(self, level: int, rung: Rung, point: int, rank: dict[int, int]) -> None:
        badness = rung.badness[point]
        if self.rule == "halving":
            keep = rank[point] < (rung.keep or 0)
            why = f"ranks {rank[point] + 1} of {len(rank)}; the best {rung.keep} go on"
        elif self.rule == "median":
            median = median_of_others(rung.ordered, badness, 0)
            keep = badness <= median
            why = f"is worse than the median {self._value(median):.6g} of the {len(rung.ordered) - 1} others"
        else:
            assert self.bound is not None
            keep, why = badness <= self.bound, f"is worse than the bound {self._value(self.bound):g}"
        if keep:
            self._continue(level, point)
        else:
            rung.decided.add(point)
            rung.stopped += 1
            self._halt(point, self._describe(why, rung.iteration, rung.values[point]))

    def _value(self, badness: float) -> float:
        return badness if self.mode == "min" else -badness

    def _continue(self, level: int, point: int) -> None:
        rung = self.rungs[level]
        rung.decided.add(point)
        rung.continued += 1
        if level + 1 < len(self.rungs):
            self.rungs[level + 1].entered += 1
        self._go_on(point, level + 1)

    def expected(self) -> list[int]:
        """How many points each segment (to rung 0, 1, ..., to the end) is expected to run: exact where the
        previous rung is complete, an upper bound before."""
        expected = [len(self.points)]
        for rung in self.rungs:
            if rung.closed:
                expected.append(rung.continued)
            else:
                bound = expected[-1] - rung.stopped - rung.gone
                expected.append(min(bound, rung.keep) if rung.keep is not None else bound)
        return expected

    def counts(self) -> list[dict[str, Any]]:
        return [{"iteration": rung.iteration, "entered": rung.entered, "known": len(rung.badness),
                 "continued": rung.continued, "stopped": rung.stopped, "failed": rung.gone, "complete": rung.closed}
                for rung in self.rungs]

"""The built-in policies configured without code: successive halving, HyperBand, median stopping, threshold.

- successive_halving: one ladder of every point, rungs at r, r*eta, r*eta^2, ... (below R = `iterations`).
- hyperband: brackets s = s_max .. 0 (s_max: the largest s with r*eta^s <= R), bracket s a successive
  halving whose first rung is r*eta^(s_max - s). Li et al.'s bracket sizes n_s = ceil((s_max+1) eta^s /
  (s+1)) set how the configured points are shared out: in proportion (largest remainders, ties to the
  larger bracket), interleaved in expansion order by a smooth weighted round robin, so that each
  bracket gets points from all over a grid. All brackets run at once.
- median_stopping: one ladder, checks at r, r+interval, ... (below R); the median rule.
- threshold: the same checks; a point worse than the bound stops there, decided alone and at once.
An experiment's metric at a check is its row of iteration t-1 (after t iterations), reduced over its
repetitions; decisions are per experiment, and stop all of its repetitions that have not failed.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .ladder import Ladder
from .points import badness, metric_value, reduce

if TYPE_CHECKING:  # the core makes strategies (strategies.make_strategy): they name its types, never import it
    from .core import Steering
    from .jobs import Ended
    from .spec import SteerSpec


def geometric(first: int, factor: int, end: int) -> list[int]:
    """first, first*factor, ... below end."""
    rungs, rung = [], first
    while rung < end:
        rungs.append(rung)
        rung *= factor
    return rungs


def hyperband_brackets(count: int, end: int, first: int, factor: int) -> list[tuple[int, list[int]]]:
    """(first rung, points) of each bracket, the most aggressive first; brackets without points left out."""
    s_max = 0
    while first * factor ** (s_max + 1) <= end:
        s_max += 1
    sizes = [-(-(s_max + 1) * factor ** s // (s + 1)) for s in range(s_max, -1, -1)]
    total = sum(sizes)
    quotas = [count * size // total for size in sizes]
    by_remainder = sorted(range(len(sizes)), key=lambda b: (-(count * sizes[b] % total), b))
    for bracket in by_remainder[:count - sum(quotas)]:
        quotas[bracket] += 1
    members: list[list[int]] = [[] for _ in sizes]
    credit = [0] * len(sizes)
    for point in range(count):  # smooth weighted round robin: exactly quotas[b] picks of each bracket
        credit = [c + q for c, q in zip(credit, quotas)]
        chosen = max(range(len(sizes)), key=lambda b: (credit[b], -b))
        credit[chosen] -= count
        members[chosen].append(point)
    return [(first * factor ** (s_max - s), members[b]) for b, s in enumerate(range(s_max, -1, -1)) if members[b]]


class _Point:
    __slots__ = ("ladder", "level", "until", "waiting", "values")

    def __init__(self, ladder: int):
        self.ladder, self.level, self.until, self.waiting = ladder, 0, 0, 0
        self.values: list[float] = []


class RungStrategy:
    """Drives the ladders of a built-in policy over the configured points."""

    def __init__(self, spec: SteerSpec, board: Steering):
        self.spec, self.board = spec, board
        self.ladders: list[Ladder] = []
        self.ends: list[list[int]] = []  # each ladder's segment ends: its checkpoints, then R
        self.points: dict[int, _Point] = {}
        self.labels: list[str] = []
        self.finished: list[int] = []  # per ladder: points whose repetitions all ended at R
        count = board.point_count()
        end = board.iterations(0) if count else 0
        r, eta = spec.min_iterations, spec.reduction_factor
        if not count:
            groups: list[tuple[list[int], list[int]]] = []
        elif spec.policy == "hyperband":
            groups = [(geometric(first, eta, end), points) for first, points in hyperband_brackets(count, end, r, eta)]
        elif spec.policy == "successive_halving":
            groups = [(geometric(r, eta, end), list(range(count)))]
        else:
            groups = [(list(range(r, end, spec.interval)), list(range(count)))]
        rule = {"successive_halving": "halving", "hyperband": "halving"}.get(spec.policy, spec.policy.split("_")[0])
        bound = badness(spec.bound, spec.mode) if spec.bound is not None else None
        for number, (checkpoints, points) in enumerate(groups):
            label = f"hyperband bracket {len(groups) - 1 - number}: " if spec.policy == "hyperband" else ""
            self.labels.append(label)
            self.ladders.append(Ladder(rule, spec.mode, points, checkpoints, eta, bound, self._describer(label),
                                       self._mover(number), self._halt))
            self.ends.append([*checkpoints, end])
            self.finished.append(0)
            for point in points:
                self.points[point] = _Point(number)

    def start(self) -> None:
        for point in range(self.board.point_count()):  # expansion order, every bracket at once
            self._go_on(self.points[point].ladder, point, 0)

    def _describer(self, label: str) -> Any:
        policy = self.spec.policy.replace("_", " ")

        def describe(why: str, iteration: int, value: float) -> str:
            after = f"after {iteration} iteration{'s' if iteration != 1 else ''}"
            return f"{label or policy + ': '}{self.spec.metric} {value:.6g} {after} {why}"
        return describe

    def _mover(self, ladder: int) -> Callable[[int, int], None]:
        return lambda point, level: self._go_on(ladder, point, level)

    def _go_on(self, ladder: int, point: int, level: int) -> None:
        state = self.points[point]
        state.level, state.until, state.values = level, self.ends[ladder][level], []
        reps = self.board.alive_reps(point)
        state.waiting = len(reps)
        for rep in reps:
            self.board.run(point, rep, state.until)

    def _halt(self, point: int, reason: str) -> None:
        self.board.stop(point, None, reason)

    def on_ended(self, ended: Ended) -> None:
        state = self.points[ended.job.point]
        state.waiting -= 1
        if ended.reached:
            state.values.append(metric_value(ended.row(state.until - 1) or {}, self.spec.metric or "", ""))
        ladder = self.ladders[state.ladder]
        if state.waiting:
            return
        if state.level == len(ladder.rungs):
            self.finished[state.ladder] += 1
            return
        value = reduce(state.values, self.spec.reduce) if state.values else None
        ladder.report(state.level, ended.job.point, None if value is None else badness(value, self.spec.mode), value)

    def planned(self, restores: bool) -> int:
        total = 0
        for ladder, ends, finished in zip(self.ladders, self.ends, self.finished):
            reps = self.board.repetitions(ladder.points[0])
            done = [len(rung.badness) + rung.gone for rung in ladder.rungs] + [finished]
            for segment, (expected, reported) in enumerate(zip(ladder.expected(), done)):
                length = ends[segment] - (ends[segment - 1] if segment and restores else 0)
                total += max(0, expected - reported) * reps * length
        return total

    def rungs(self) -> list[dict[str, Any]]:
        return [{"bracket": label.split(":")[0] or None, **counts}
                for label, ladder in zip(self.labels, self.ladders) for counts in ladder.counts()]

"""The order a plan's jobs are taken in (up to `planning.SORT_LIMIT` of them): longest expected first, stably (so
that a long job does not start last and stretch the makespan), without planning the new experiments of a run
(`bulk_runs.FreshRun`, `NewOrDoneRun`) before their jobs are taken.

Why a run sorts as one entry: each of its new experiments' jobs is expected to take the sweep's mean iteration
time times its document's iterations (what `experiment_plan.expected_seconds` gives a plan without iteration
times), and they are consecutive in config order; a stable sort keeps a block of equal keys together, in order.
The one exception is NaN, with which a sort's result depends on its comparisons: then each job sorts alone, as
if every experiment had been planned one by one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from .bulk_runs import FreshRun, NewOrDoneRun
from .experiment_plan import ExperimentPlan
from .vocabulary import Segment

Run = FreshRun | NewOrDoneRun
JobsOf = Callable[[Any], Iterator[Segment]]  # a job -> itself; a run -> its new experiments' jobs (planned now)


def all_alike(order: Sequence[ExperimentPlan | Run]) -> bool:
    """Whether every job of `order` (the plans and runs with jobs) is expected the same, whatever was measured:
    runs alone, all of one number of iterations (even a NaN mean keeps their order: every comparison is false)."""
    return all(isinstance(item, (FreshRun, NewOrDoneRun)) for item in order) and \
        len({item.document.document["iterations"] for item in order if isinstance(item, (FreshRun, NewOrDoneRun))}) <= 1


def ordered(order: Sequence[ExperimentPlan | Run], expected: Mapping[int, float], mean: float | None,
            jobs_of: JobsOf) -> tuple[int, Iterable[Segment]]:
    """The number of jobs of `order` (plans and runs with jobs, in config order) and the jobs, sorted longest
    expected first: a plan's by `expected` (job index -> seconds), a run's new ones by `mean` (the sweep's mean
    iteration time, None where none was measured) times their document's iterations, made by `jobs_of` as they
    are taken (each time they are)."""
    def seconds(run: Run) -> float:
        return mean * max(run.document.document["iterations"], 0) if mean is not None else 0.0

    entries: list[tuple[float, Any]] = []
    for item in order:
        if isinstance(item, (FreshRun, NewOrDoneRun)):
            entries.append((-seconds(item), item))
        else:
            entries.extend((-expected.get(job.index, 0.0), job) for job in item.jobs)
    if any(math.isnan(key) for key, _ in entries):
        entries = [(key, job) for key, entry in entries for job in jobs_of(entry)]
    entries.sort(key=itemgetter(0))
    count = sum(entry.new * entry.repetitions if isinstance(entry, (FreshRun, NewOrDoneRun)) else 1
                for _, entry in entries)
    return count, Taken(entries, jobs_of)


class Taken:
    """Sorted entries (key, a job or a run) as jobs: a run's made by `jobs_of` each time they are taken."""

    def __init__(self, entries: list[tuple[float, Any]], jobs_of: JobsOf):
        self._entries, self._jobs_of = entries, jobs_of

    def __iter__(self) -> Iterator[Segment]:
        return (job for _, entry in self._entries for job in self._jobs_of(entry))

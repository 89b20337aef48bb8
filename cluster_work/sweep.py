"""Driving a planned sweep through an executor: dispatch jobs, follow their outcomes, summarise."""
from __future__ import annotations

import functools
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .executors import Executor
from .experiment import ClusterWork
from .runner import (
    ALREADY_DONE,
    BAD_PARAMETER,
    BUSY,
    DONE,
    FAILED_JOB,
    STOPPED,
    STORE_FAILURE,
    Job,
    Outcome,
    RunSettings,
    run_job,
)
from .stopping import EXIT_INTERRUPTED, request_stop, stop_requested

log = logging.getLogger("cluster_work")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3  # and EXIT_INTERRUPTED (130), from stopping


@dataclass
class Summary:
    """What a run did, for the end-of-run report and the exit status."""

    jobs: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    skipped_experiments: int = 0

    @property
    def counts(self) -> Counter[str]:
        return Counter(outcome.kind for outcome in self.outcomes)

    @property
    def not_started(self) -> int:
        return self.jobs - len(self.outcomes)

    def failures(self) -> list[Outcome]:
        """Repetitions that failed by their own error (a store failure is the run's, reported apart)."""
        return [o for o in self.outcomes if o.kind in (FAILED_JOB, BAD_PARAMETER)]

    def exit_status(self) -> int:
        counts = self.counts
        if counts[STORE_FAILURE]:
            return EXIT_STORE
        if counts[BAD_PARAMETER]:
            return EXIT_USAGE
        if counts[FAILED_JOB]:
            return EXIT_FAILED
        if stop_requested() or counts[STOPPED] or self.not_started:
            return EXIT_INTERRUPTED
        return EXIT_OK


class SizedJobs(Protocol):
    """Jobs that know their number before they are all made (a plan streams a huge sweep's jobs)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Job]: ...


def run_jobs(experiment_class: type[ClusterWork], jobs: SizedJobs, executor: Executor,
             settings: RunSettings, on_outcome: Callable[[Outcome], None] = lambda o: None) -> Summary:
    """Run `jobs` on `executor`; a store failure (full disk...) stops dispatching at once."""
    summary = Summary(jobs=len(jobs))
    started = time.perf_counter()
    task = functools.partial(run_job, experiment_class, settings=settings)
    for outcome in executor.map_unordered(task, jobs):
        summary.outcomes.append(outcome)
        on_outcome(outcome)
        if outcome.kind == STORE_FAILURE and not stop_requested():
            request_stop()
            executor.forward_stop()
    summary.seconds = time.perf_counter() - started
    return summary


def describe(outcome: Outcome) -> str:
    """One log line for a job that ended."""
    if outcome.kind in (DONE, ALREADY_DONE):
        return f"{outcome.label}: {outcome.kind} ({outcome.iterations_run} iterations in {outcome.seconds:.1f}s)"
    if outcome.kind == STOPPED:
        if not outcome.iterations_run:
            return f"{outcome.label}: not run (the run is stopping)"
        return f"{outcome.label}: interrupted after {outcome.iterations_run} new iterations " \
               f"({outcome.iterations_done} saved)"
    if outcome.kind == BUSY:
        return f"{outcome.label}: skipped, held by another run"
    where = f"; traceback in {outcome.log_file}" if outcome.log_file else ""
    return f"{outcome.label}: {outcome.kind}: {outcome.error}{where}"


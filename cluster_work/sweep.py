"""A planned sweep through an executor: run its segments once each, follow their outcomes, summarise."""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from .backends.base import Executor
from .campaign import PlainSweep, drive
from .stopping import EXIT_INTERRUPTED, stop_requested
from .vocabulary import Outcome, OutcomeKind, Segment, describe_kind

log = logging.getLogger("cluster_work")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3  # and EXIT_INTERRUPTED (130), from stopping
FAILURES = (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER)


@dataclass
class Summary:
    """What a run did, for the end-of-run report and the exit status."""

    jobs: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    skipped_experiments: int = 0

    @property
    def counts(self) -> Counter[OutcomeKind]:
        return Counter(outcome.kind for outcome in self.outcomes)

    @property
    def not_started(self) -> int:
        return self.jobs - len(self.outcomes)

    def failures(self) -> list[Outcome]:
        """Repetitions that failed by their own error (a store failure is the run's, reported apart)."""
        return [o for o in self.outcomes if o.kind in FAILURES]

    def exit_status(self) -> int:
        counts = self.counts
        if counts[OutcomeKind.STORE_FAILURE]:
            return EXIT_STORE
        if counts[OutcomeKind.BAD_PARAMETER]:
            return EXIT_USAGE
        if counts[OutcomeKind.FAILED]:
            return EXIT_FAILED
        if stop_requested() or counts[OutcomeKind.INTERRUPTED] or self.not_started:
            return EXIT_INTERRUPTED
        return EXIT_OK


class SizedSegments(Protocol):
    """Segments that know their number before they are all made (a plan streams a huge sweep's)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Segment]: ...


def run_segments(segments: SizedSegments, executor: Executor,
                 on_outcome: Callable[[Outcome], None] = lambda o: None) -> Summary:
    """Run `segments` once each on `executor` (segments are made as workers free up, so a sweep of 10^6
    starts at once); a store failure (full disk...) stops dispatching at once."""
    summary = Summary(jobs=len(segments))
    started = time.perf_counter()

    def ended(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        on_outcome(outcome)

    drive(PlainSweep(segments), executor, ended)
    summary.seconds = time.perf_counter() - started
    return summary


def describe(outcome: Outcome) -> str:
    """One log line for a segment that ended."""
    kind = outcome.kind
    if kind in (OutcomeKind.FINISHED, OutcomeKind.ALREADY_FINISHED, OutcomeKind.REACHED):
        return f"{outcome.label}: {describe_kind(kind)} ({outcome.iterations_run} iterations in {outcome.seconds:.1f}s)"
    if kind in (OutcomeKind.INTERRUPTED, OutcomeKind.CANCELLED):
        if not outcome.iterations_run:
            why = "the run is stopping" if kind == OutcomeKind.INTERRUPTED else "cancelled"
            return f"{outcome.label}: not run ({why})"
        return f"{outcome.label}: {describe_kind(kind)} after {outcome.iterations_run} new iterations " \
               f"({outcome.iterations_done} saved)"
    if kind == OutcomeKind.BUSY:
        return f"{outcome.label}: skipped, held by another run"
    where = f"; traceback in {outcome.log_file}" if outcome.log_file else ""
    return f"{outcome.label}: {describe_kind(kind)}: {outcome.error}{where}"

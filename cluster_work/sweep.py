"""A planned sweep through an executor: run its segments once each, follow their outcomes, summarise."""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .backends.base import Executor
from .campaign import Composite, Driver, PlainSweep, drive
from .exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STALLED, EXIT_STORE, EXIT_USAGE
from .failures import FAILED_KINDS, CountingFailures, Failures
from .kinds import kind
from .liveness import Stalled
from .stopping import PROCESS_STOP, StopFlag
from .vocabulary import Outcome, OutcomeKind, RunSettings, Segment, Suspicion, describe_kind

if TYPE_CHECKING:
    from .planning import Plan

log = logging.getLogger("cluster_work")

class CampaignDriver(Driver, Protocol):
    """A campaign's driver as a run reports it (a weighted ensemble, a steered search)."""

    def summary_line(self) -> str:
        """One line for the end of the run: what the campaign did and where it stands."""
        ...

    def exit_status(self) -> int:
        """EXIT_OK, or what went wrong (as `Summary.exit_status` ranks them)."""
        ...

    def close(self) -> None:
        """Release what the campaign holds (its store's lock)."""
        ...

    def iterations_planned(self) -> int:
        """Its iterations this run, done and still planned, as it knows them now (0 before `start`)."""
        ...

    def iterations_apart(self) -> int:
        """Its iterations done this run that its items do not count through `TaskContext.iteration_done`
        (the live display adds them to the executor's count)."""
        ...


@dataclass
class Summary:
    """What a run did, for the end-of-run report and the exit status: the outcomes of its plain segments
    (counted; those the report names one by one, failures, kept), and its campaigns. Its size does not grow
    with the number of jobs: a run of 10^6 keeps no outcome per job."""

    jobs: int
    seconds: float = 0.0
    skipped_experiments: int = 0
    campaigns: list[CampaignDriver] = field(default_factory=list)
    stop_reason: str | None = None  # why the run stopped before its end, where it did so by itself
    quarantined: list[tuple[str, Suspicion]] = field(default_factory=list)  # left out: they ended runs
    counts: Counter[OutcomeKind] = field(default_factory=Counter)
    ended: int = 0  # outcomes of plain segments
    job_seconds: float = 0.0  # the workers' seconds of all of them
    finished_seconds: float = 0.0  # of the finished ones
    longest_finished: float = 0.0
    kept: list[Outcome] = field(default_factory=list)  # failures and store failures, in the order they came
    stop: StopFlag = PROCESS_STOP  # the run's (its executor's): a stop requested makes it interrupted
    stalled: Stalled | None = None  # workers silent past the stall limit ended the run (the figures: so far)

    def add(self, outcome: Outcome) -> None:
        """Count one plain segment's outcome."""
        self.counts[outcome.kind] += 1
        self.ended += 1
        self.job_seconds += outcome.seconds
        if outcome.kind == OutcomeKind.FINISHED:
            self.finished_seconds += outcome.seconds
            self.longest_finished = max(self.longest_finished, outcome.seconds)
        if outcome.kind in FAILED_KINDS or outcome.kind == OutcomeKind.STORE_FAILURE:
            self.kept.append(outcome)

    def job_figures(self) -> dict[str, int]:
        """The outcomes counted, by kind: the `jobs` of the run's `ended` record (see provenance)."""
        return {outcome_kind.value: count for outcome_kind, count in self.counts.items()}

    @property
    def not_started(self) -> int:
        return self.jobs - self.ended

    def failures(self) -> list[Outcome]:
        """Repetitions that failed by their own error (a store failure is the run's, reported apart)."""
        return [o for o in self.kept if o.kind in FAILED_KINDS]

    def store_failures(self) -> list[Outcome]:
        return [o for o in self.kept if o.kind == OutcomeKind.STORE_FAILURE]

    def exit_status(self) -> int:
        if self.stalled is not None:
            return EXIT_STALLED
        counts = self.counts
        statuses = {campaign.exit_status() for campaign in self.campaigns}
        if counts[OutcomeKind.STORE_FAILURE] or EXIT_STORE in statuses:
            return EXIT_STORE
        if counts[OutcomeKind.BAD_PARAMETER] or EXIT_USAGE in statuses:
            return EXIT_USAGE
        if counts[OutcomeKind.FAILED] or self.quarantined or EXIT_FAILED in statuses:
            return EXIT_FAILED
        if self.stop.requested() or counts[OutcomeKind.INTERRUPTED] or self.not_started or EXIT_INTERRUPTED in statuses:
            return EXIT_INTERRUPTED
        return EXIT_OK


class SizedSegments(Protocol):
    """Segments that know their number before they are all made (a plan streams a huge sweep's)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Segment]: ...


def run_segments(segments: SizedSegments, executor: Executor,
                 on_outcome: Callable[[Outcome], None] = lambda o: None,
                 campaigns: Sequence[CampaignDriver] = (), max_failures: int | None = None,
                 run_id: str = "") -> Summary:
    """Run `segments` once each on `executor` (made as workers free up, so a sweep of 10^6 starts at
    once), and beside them the `campaigns`; a store failure (full disk...) stops dispatching at once, and
    so does the `max_failures`-th failed repetition (`failures.Failures`, which also shows each distinct
    traceback once). `on_outcome` sees the outcome of each plain segment; `run_id` stamps every segment
    (see attempts). Workers silent past the stall limit end it at once: the summary of what ended until
    then, its `stalled` set (the caller then abandons the run)."""
    summary = Summary(jobs=len(segments), campaigns=list(campaigns), stop=executor.stop)
    started = time.perf_counter()

    def ended(outcome: Outcome) -> None:
        summary.add(outcome)
        on_outcome(outcome)

    failures = Failures(max_failures, executor.request_stop)
    try:
        drive(CountingFailures(Composite([PlainSweep(segments, ended), *campaigns], run_id), failures), executor)
    except Stalled as exc:
        summary.stalled = exc
    finally:
        for campaign in campaigns:
            campaign.close()
    summary.seconds = time.perf_counter() - started
    summary.stop_reason = failures.reason
    return summary


def campaign_drivers(plan: Plan, settings: RunSettings, workers: int) -> list[CampaignDriver]:
    """The drivers of the plan's campaigns (each kind's module imported only where a sweep has one)."""
    return [driver for campaign in plan.campaigns
            for driver in kind(campaign.kind).drivers(campaign, settings, workers)]


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
    if outcome.same_traceback_as:
        where += f" (the same as {outcome.same_traceback_as}'s, shown above)"
    return f"{outcome.label}: {describe_kind(kind)}: {outcome.error}{where}"

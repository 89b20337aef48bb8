"""A planned sweep through an executor: run its segments once each, follow their outcomes, summarise."""
from __future__ import annotations

import importlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from .backends.base import Executor
from .campaign import Composite, Driver, PlainSweep, drive
from .stopping import EXIT_INTERRUPTED, stop_requested
from .vocabulary import Outcome, OutcomeKind, RunSettings, Segment, Suspicion, describe_kind

if TYPE_CHECKING:
    from .planning import Plan

log = logging.getLogger("cluster_work")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_STORE = 0, 1, 2, 3  # and EXIT_INTERRUPTED (130), from stopping
EXIT_STALLED = 5  # an MPI worker was silent past --stall-timeout (4 is orphans.EXIT_ORPHANED)
FAILURES = (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER)


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

    def iterations_left(self) -> int:
        """Its planned iterations still to run, as it knows them now (0 before `start`)."""
        ...


# where each campaign kind's drivers are made: `drivers(campaign, settings, workers) -> list[CampaignDriver]`
CAMPAIGN_DRIVERS = {"ensemble": "cluster_work.ensemble.campaign", "steer": "cluster_work.steering.campaign"}


@dataclass
class Summary:
    """What a run did, for the end-of-run report and the exit status: the outcomes of its plain segments,
    and its campaigns."""

    jobs: int
    outcomes: list[Outcome] = field(default_factory=list)
    seconds: float = 0.0
    skipped_experiments: int = 0
    campaigns: list[CampaignDriver] = field(default_factory=list)
    quarantined: list[tuple[str, Suspicion]] = field(default_factory=list)  # left out: they ended runs

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
        statuses = {campaign.exit_status() for campaign in self.campaigns}
        if counts[OutcomeKind.STORE_FAILURE] or EXIT_STORE in statuses:
            return EXIT_STORE
        if counts[OutcomeKind.BAD_PARAMETER] or EXIT_USAGE in statuses:
            return EXIT_USAGE
        if counts[OutcomeKind.FAILED] or self.quarantined or EXIT_FAILED in statuses:
            return EXIT_FAILED
        if stop_requested() or counts[OutcomeKind.INTERRUPTED] or self.not_started or EXIT_INTERRUPTED in statuses:
            return EXIT_INTERRUPTED
        return EXIT_OK


class SizedSegments(Protocol):
    """Segments that know their number before they are all made (a plan streams a huge sweep's)."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Segment]: ...


def run_segments(segments: SizedSegments, executor: Executor,
                 on_outcome: Callable[[Outcome], None] = lambda o: None,
                 campaigns: Sequence[CampaignDriver] = (), run_id: str = "") -> Summary:
    """Run `segments` once each on `executor` (made as workers free up, so a sweep of 10^6 starts at
    once), and beside them the `campaigns`; a store failure (full disk...) stops dispatching at once.
    `on_outcome` sees the outcome of each plain segment; `run_id` stamps every segment (see attempts)."""
    summary = Summary(jobs=len(segments), campaigns=list(campaigns))
    started = time.perf_counter()

    def ended(outcome: Outcome) -> None:
        summary.outcomes.append(outcome)
        on_outcome(outcome)

    try:
        drive(Composite([PlainSweep(segments, ended), *campaigns], run_id), executor)
    finally:
        for campaign in campaigns:
            campaign.close()
    summary.seconds = time.perf_counter() - started
    return summary


def campaign_drivers(plan: Plan, settings: RunSettings, workers: int) -> list[CampaignDriver]:
    """The drivers of the plan's campaigns (each kind's module imported only where a sweep has one)."""
    drivers: list[CampaignDriver] = []
    for campaign in plan.campaigns:
        module = importlib.import_module(CAMPAIGN_DRIVERS[campaign.kind])
        drivers.extend(module.drivers(campaign, settings, workers))
    return drivers


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

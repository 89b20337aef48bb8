"""What a steered campaign's core and its strategies know of the runs it asked for: a `Job` (a repetition
of a point, from some saved iterations to a check), its end as a strategy sees it (`Ended`: the rows the
journal holds), and each repetition's standing (`RepetitionState`). Plain records: the core (`core`) keeps
them, a strategy reads them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..expansion import ExpandedExperiment
from ..vocabulary import OutcomeKind


@dataclass
class Job:
    """A run the campaign asked for: repetition `rep` of point `point`, from `start` saved iterations to `until`
    (`experiment`: the point's, built once for the Run and kept while the job is outstanding)."""

    number: int
    point: int
    rep: int
    start: int
    until: int
    experiment: ExpandedExperiment


@dataclass(frozen=True)
class Ended:
    """A job that ended, as a strategy sees it: `rows` are its saved rows from `job.start` (iteration and
    the campaign's columns), as the journal holds them."""

    job: Job
    kind: OutcomeKind
    rows: tuple[dict[str, Any], ...]
    error: str | None

    @property
    def reached(self) -> bool:
        return self.kind.ran_to_its_end

    def row(self, iteration: int) -> dict[str, Any] | None:
        for row in reversed(self.rows):
            if row.get("iteration") == iteration:
                return row
        return None


class RepetitionState:
    """Where one repetition of a point stands in the campaign: iterations saved, the job running it (if
    any), and why it closed ('' while it goes on)."""

    __slots__ = ("saved", "job", "closed")

    def __init__(self) -> None:
        self.saved = 0
        self.job: Job | None = None
        self.closed = ""  # '' | 'stopped' | 'failed' | 'finished'

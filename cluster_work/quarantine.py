"""Deciding, from the attempts journals alone, which repetitions are suspected of ending runs (pure logic).

A run that dies as a whole (a native crash on the sequential backend, a rank's SIGSEGV under MPI without
ULFM, rank 0 or a host lost) leaves each repetition it was running *begun and never closed* in the journal
of the process that ran it (see `attempts`). A resumed run would start the same repetition again and die
again, forever. So:

- an attempt is *closed* when its segment ended with any outcome, when its process was told to stop from
  outside (a stop signal: that process was alive when the run ended, so it did not end it), or when its
  run ended normally (a worker that died there was reported by the run itself). Attempts of runs that are
  still alive count for nothing either way; an item handed out or prefetched but never begun has no attempt;
- a repetition's *suspicion* is the run of its unclosed attempts in dead runs since its last closed attempt,
  counted back from the latest while they all died at the same iteration: the latest at the rows it has
  saved now, each one before it at the rows the next one began from. A repetition that made progress
  between two deaths (an innocent that happened to be running) does not add up; one that kills every
  run at the same point does;
- at `QUARANTINE_RUNS` (2) dead runs it is *quarantined*: reported failed and left out of reruns until
  `--retry-failed`, so a poison pill costs at most two runs, never a whole allocation of requeues.

Everything here depends only on the records, so every backend and every reader decides the same.
"""
from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .vocabulary import Suspicion


@dataclass(frozen=True)
class Attempt:
    """One begun segment of a repetition that its journal never closed: the run it was in, when it began
    (seconds since the epoch), and the rows the repetition had saved then."""

    run: str
    began: float
    saved: int


def trailing(unclosed: Iterable[Attempt], closed: Iterable[tuple[str, float]]) -> tuple[Attempt, ...]:
    """The unclosed attempts of one repetition that no closed attempt of another run (`closed`: its run, when
    it began) followed, oldest first. A closed attempt of the same run does not count: the ranks of an MPI
    group each record the group's attempt, and the leader's may close (a stop signal) while a member's,
    the one that died, stays open."""
    closes = list(closed)
    return tuple(sorted((a for a in unclosed if not any(run != a.run and began > a.began for run, began in closes)),
                        key=lambda a: (a.began, a.run)))


def assess(attempts: Sequence[Attempt], rows_now: int, signal: str | None = None) -> Suspicion | None:
    """The suspicion of a repetition with these `trailing` attempts and `rows_now` rows saved; None if none.

    Each attempt's end point is the rows the next one began from (the last one's, `rows_now`); counted
    back from the latest, the dead runs whose attempts all ended at the latest's point."""
    if not attempts:
        return None
    ends = [attempt.saved for attempt in attempts[1:]] + [rows_now]
    point = ends[-1]
    runs: set[str] = set()
    for attempt, end in zip(reversed(attempts), reversed(ends)):
        if end != point:
            break
        runs.add(attempt.run)
    return Suspicion(len(runs), point, signal)


# What Python's faulthandler writes for each fatal signal ("Fatal Python error: Segmentation fault")
_FAULT_NAMES = {"Segmentation fault": "SIGSEGV", "Bus error": "SIGBUS", "Aborted": "SIGABRT",
                "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE",
                "Illegal instruction": "SIGILL"}
_FATAL = re.compile(r"Fatal Python error: ([A-Za-z -]+)")


def crash_signal(log_tail: str) -> str | None:
    """The signal of the last fatal error that faulthandler wrote into a repetition's log, if any."""
    found = _FATAL.findall(log_tail)
    return _FAULT_NAMES.get(found[-1].strip()) if found else None

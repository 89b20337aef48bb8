"""Deciding, from the attempts journals (and the crash stacks in the logs they name), which repetitions are
suspected of ending runs (pure logic).

A run that dies as a whole (a native crash on the sequential backend, a rank's SIGSEGV under MPI without
ULFM, rank 0 or a host lost) leaves each repetition it was running *begun and never closed* in the journal
of the process that ran it (see `attempts`). A resumed run would start the same repetition again and die
again, forever. So:

- an attempt is *closed* when its segment ended with any outcome, when its process was told to stop from
  outside (a stop signal: that process was alive when the run ended, so it did not end it), or when its
  run ended normally (a worker that died there was reported by the run itself). Attempts of runs that are
  still alive count for nothing either way; an item handed out or prefetched but never begun has no attempt;
- a dead run is *explained* where the log of one of its open attempts names a fatal signal that
  faulthandler wrote during that attempt ("Fatal Python error: Segmentation fault", after the bytes the
  log held when the attempt began): that repetition crashed, so the run's other open attempts are
  *innocents* (they were killed with it, e.g. by a SIGKILL no stop signal preceded). Only a run without
  such evidence (a host lost, an OOM kill, a crash without a stack) suspects every attempt it left open.
  An innocent attempt counts for nothing, neither for nor against: a pill that kills runs without a stack
  still adds up across a run another pill's crash explained. The begin times say nothing more: a segment
  spans many iterations, and without a signal nothing records when the run died;
- a repetition's *suspicion* is the run of its unclosed, not innocent attempts in dead runs since its last
  closed attempt, counted back from the latest while they all died at the same iteration: each at the rows
  the next attempt began from (the latest at the rows it has saved now). A repetition that made progress
  between two deaths (an innocent that happened to be running) does not add up; one that kills every
  run at the same point does;
- at `QUARANTINE_RUNS` (2) dead runs it is *quarantined*: reported failed and left out of reruns until
  `--retry-failed`, so a poison pill costs at most two runs, never a whole allocation of requeues.

The trade-off where evidence is missing: a wrongly quarantined innocent costs its operator one
`--retry-failed`; a missed poison pill costs a whole further run of every rank. So the evidence only ever
clears attempts (a crash with a stack in the same run), and without it the rule suspects everyone open.

Everything here depends only on the records, so every backend and every reader decides the same.
"""
from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .vocabulary import Suspicion

Key = tuple[str, int]  # (experiment name, repetition)


@dataclass(frozen=True)
class Attempt:
    """One begun segment of a repetition that its journal never closed: the run it was in, when it began
    (seconds since the epoch), and the rows the repetition had saved then. Where its journal says (not
    part of its identity): its repetition's log (`log`, relative to the sweep folder) and that log's size
    when it began (`log_offset`, -1 if unknown), where a crash during it left its stack. `innocent`: its
    run is explained by another repetition's crash (`mark_innocents`). `signal`: the fatal signal its part of the
    log names, where it was read (attempts.read_index)."""

    run: str
    began: float
    saved: int
    log: str = field(default="", compare=False)
    log_offset: int = field(default=-1, compare=False)
    innocent: bool = False
    signal: str | None = field(default=None, compare=False)


def trailing(unclosed: Iterable[Attempt], closed: Iterable[tuple[str, float]]) -> tuple[Attempt, ...]:
    """The unclosed attempts of one repetition that no closed attempt of another run (`closed`: its run, when
    it began) followed, oldest first. A closed attempt of the same run does not count: the ranks of an MPI
    group each record the group's attempt, and the leader's may close (a stop signal) while a member's,
    the one that died, stays open."""
    closes = list(closed)
    return tuple(sorted((a for a in unclosed if not any(run != a.run and began > a.began for run, began in closes)),
                        key=lambda a: (a.began, a.run)))


def mark_innocents(suspects: Mapping[Key, Sequence[Attempt]], crashed: Mapping[str, Collection[Key]],
                   ) -> dict[Key, tuple[Attempt, ...]]:
    """`suspects` with each attempt marked innocent whose run is explained by another repetition: `crashed`
    maps a run to the repetitions whose log names a crash during their attempt in it."""
    def innocent(key: Key, attempt: Attempt) -> bool:
        culprits = crashed.get(attempt.run, ())
        return bool(culprits) and key not in culprits

    return {key: tuple(dataclasses.replace(a, innocent=True) if innocent(key, a) else a for a in attempts)
            for key, attempts in suspects.items()}


def assess(attempts: Sequence[Attempt], rows_now: int, signal: str | None = None) -> Suspicion | None:
    """The suspicion of a repetition with these `trailing` attempts and `rows_now` rows saved; None if none.

    Each attempt's end point is the rows the next one began from (the last one's, `rows_now`), innocent
    ones included; counted back from the latest attempt that is not innocent, the dead runs whose not
    innocent attempts all ended at its point (innocent ones in between are passed over)."""
    ends = [attempt.saved for attempt in attempts[1:]] + [rows_now]
    counted = [(attempt, end) for attempt, end in zip(attempts, ends) if not attempt.innocent]
    if not counted:
        return None
    point = counted[-1][1]
    runs: set[str] = set()
    for attempt, end in reversed(counted):
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

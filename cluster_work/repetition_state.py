"""The one place that decides a repetition's state from its files (planning, -p/-P, --list all ask here).

The rows on disk are the truth; the status (a status record in the repetition's file, or an earlier version's
`status.json`; written only for a repetition that once ended unfinished) is a hint that saves reading them:
- a live process holding the results file's lock: RUNNING (whatever the files say, e.g. while
  `-r 1 -i 0` reruns a finished repetition);
- a status saying a campaign stopped it: STOPPED (its rows stay; it is never run again);
- a status saying finished, whose results file still has at least the bytes it had then: FINISHED,
  without reading the rows (after a power loss the status may have outlived rows that were not yet
  synced; the size check catches that);
- otherwise the rows decide: all iterations saved is FINISHED (a lost or stale status costs nothing),
  then one that runs died under twice at the same point is QUARANTINED (from the sweep's attempts
  journals, see quarantine), then a failed last run is FAILED, some rows PARTIAL, none PENDING.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .compact_index import SummaryRepetition
from .compact_store import CompactRepetition
from .quarantine import Attempt, assess, crash_signal
from .store import RepetitionStore
from .vocabulary import Record, RepetitionState, Suspicion


@dataclass(frozen=True)
class RepetitionView:
    """What the files of one repetition say: its state, its saved iterations, its status, and its rows
    when they had to be read (None when the status answered)."""

    state: RepetitionState
    iterations_saved: int
    status: Mapping[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] | None = None
    suspicion: Suspicion | None = None
    rows_mean: float | None = None  # the rows' mean iteration time, where an index gave it instead of the rows

    @property
    def mean_iteration_time(self) -> float | None:
        """The status's mean iteration time, else the mean of the rows' measured `iteration_time`s (a
        repetition that ran to its end in one go has no status), else None."""
        mean = self.status.get("mean_iteration_time")
        if isinstance(mean, (int, float)):
            return mean
        if self.rows is None:
            return self.rows_mean
        times = [r["iteration_time"] for r in self.rows if isinstance(r.get("iteration_time"), (int, float))]
        return sum(times) / len(times) if times else None


def status_says_finished(status: Mapping[str, Any], iterations: int, results_size: int | None) -> bool:
    """Whether `status` records all `iterations` saved, and the results file (of `results_size` bytes,
    None when unknown) still holds what it held then."""
    if status.get("state") != Record.FINISHED.value or not status.get("iterations_done", 0) >= iterations:
        return False
    recorded = status.get("results_bytes")
    return not isinstance(recorded, int) or results_size is None or results_size >= recorded


def decide(status: Mapping[str, Any], iterations: int, rows_saved: int, running: bool = False,
           quarantined: bool = False) -> RepetitionState:
    """The state of a repetition with `rows_saved` rows on disk and this `status` (pure); `quarantined`:
    its attempts say it ended runs (see quarantine)."""
    if running:
        return RepetitionState.RUNNING
    if status.get("state") == Record.STOPPED.value:
        return RepetitionState.STOPPED
    if rows_saved >= iterations:
        return RepetitionState.FINISHED
    if quarantined:
        return RepetitionState.QUARANTINED
    if status.get("state") == Record.FAILED.value:
        return RepetitionState.FAILED
    return RepetitionState.PARTIAL if rows_saved else RepetitionState.PENDING


def read_repetition(store: RepetitionStore | CompactRepetition | SummaryRepetition, iterations: int, *,
                    check_lock: bool = True, finished_by_original: bool = False,
                    attempts: Sequence[Attempt] = ()) -> RepetitionView:
    """The state of repetition `store` of an experiment with `iterations` iterations, reading as little
    as the rules above allow. `check_lock`: also ask whether a live run holds it (one open and flock).
    `finished_by_original`: the original ClusterWork's files show it complete (it has no status of ours).
    `attempts`: its trailing unclosed attempts in dead runs (`attempts.AttemptIndex.of`), if any."""
    status = store.read_status()
    running = check_lock and store.is_running()
    if status.get("state") == Record.STOPPED.value and not running:
        return RepetitionView(RepetitionState.STOPPED, int(status.get("iterations_done") or 0), status)
    if status_says_finished(status, iterations, store.results_size()) or (finished_by_original and not status):
        state = RepetitionState.RUNNING if running else RepetitionState.FINISHED
        return RepetitionView(state, iterations, status)
    if isinstance(store, SummaryRepetition):  # an index's count and mean of the rows, not the rows
        rows, count, rows_mean = None, store.summary.rows, store.summary.rows_mean
    else:
        rows = store.read_results().rows
        count, rows_mean = len(rows), None
    saved = min(count, iterations)
    suspicion = assess(attempts, saved, _crash_signal(store, attempts)) if attempts and not running else None
    state = decide(status, iterations, count, running, suspicion is not None and suspicion.quarantined)
    return RepetitionView(state, saved, status, rows, suspicion if state != RepetitionState.FINISHED else None,
                          rows_mean)


def _crash_signal(store: Any, attempts: Sequence[Attempt]) -> str | None:
    """The fatal signal of the latest of `attempts` whose part of its log names one (the process's fault log, or an
    earlier version's rep.log), else the one at the end of the repetition's rep.log (journals without logs)."""
    return next((a.signal for a in reversed(attempts) if a.signal), None) or crash_signal(_tail(store.log_file))


def _tail(path: str, size: int = 16384) -> str:
    """The end of a repetition's log (where faulthandler's report of a fatal signal lands), '' if none."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, handle.seek(0, os.SEEK_END) - size))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


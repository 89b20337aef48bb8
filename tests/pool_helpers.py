"""What the tests of local worker processes share (tests/test_crashes.py, tests/test_local_pool.py)."""
from __future__ import annotations

from pathlib import Path

import repetition_files
from crash_clients import Crashing
from repetition_files import rep_folder

from cluster_work.expansion import expand_all
from cluster_work.vocabulary import RunSettings

SETTINGS = RunSettings(log_level="WARNING", sync=False)


def experiment(folder: Path, repetitions: int = 4, iterations: int = 3, **params):
    """An expanded experiment of `Crashing` (tests/crash_clients.py) with these params."""
    [expanded] = expand_all([{"name": "c", "repetitions": repetitions, "iterations": iterations,
                              "path": str(folder), "params": params}], Crashing._default_params)
    return expanded


def status(expanded, rep: int) -> dict:
    return repetition_files.status(expanded, rep) or {}


def saved_rows(experiment, rep: int) -> int:
    """The rows repetition `rep` of `experiment` (expanded, or its folder) saved."""
    return len(repetition_files.rows(experiment, rep))


def calls(expanded, rep: int) -> int:
    """How often `iterate` was called for repetition `rep`."""
    path = rep_folder(expanded, rep) / "calls"
    return len(path.read_bytes()) if path.exists() else 0


def collect(executor, count: int) -> dict[int, object]:
    """The next `count` outcomes, by item index (one per item)."""
    outcomes = {}
    for _ in range(count):
        outcome = executor.next_outcome()
        assert outcome.index not in outcomes, "two outcomes for one item"
        outcomes[outcome.index] = outcome
    return outcomes


def run_all(executor, segments) -> dict[int, object]:
    for segment in segments:
        executor.submit(segment)
    outcomes = collect(executor, len(segments))
    assert executor.in_flight() == 0
    return outcomes

"""Deadline polls: wait for a condition a test can see (a file, a row count, a line in a journal) instead of
sleeping for a guessed time, and fail, saying what never happened, when a generous deadline passes. On
shared, loaded cores a sleep is either too short (a race) or wasted; a poll is neither."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import repetition_files

from cluster_work.paths import SweepPaths

T = TypeVar("T")


def wait_for(condition: Callable[[], T], what: str, seconds: float = 60, every: float = 0.02) -> T:
    """Look every `every` seconds until `condition()` returns something true, and return that; fail naming
    `what` after `seconds`."""
    deadline = time.monotonic() + seconds
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {seconds:g} s waiting for {what}")
        time.sleep(every)
    return value


def saved_rows(out: Path) -> int:
    """Rows saved under sweep folder `out` (complete rows of every repetition's file)."""
    return repetition_files.saved_rows(out)


def stops_noted(out: Path, pid: int | None = None) -> int:
    """How many stop signals the run's processes (only process `pid`, where given) noted in the attempts journal
    of sweep folder `out`: the handler writes the line at once, so a test knows the signal was handled before it
    sends the next. Ask for the run's main process where the next signal must be its second: a worker's note
    (workers get a Ctrl-C too) says nothing of whether the main process took the first yet, and a second signal
    that comes before that merges with the first."""
    folder = Path(SweepPaths(str(out)).attempts_folder)
    if not folder.is_dir():
        return 0
    return sum(line.startswith("stop ") for path in folder.iterdir()
               if path.is_file() and (pid is None or path.name.endswith(f".{pid}"))
               for line in path.read_text(errors="replace").splitlines())

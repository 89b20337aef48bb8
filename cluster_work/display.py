"""What a run shows while it runs: a live progress bar on a terminal, periodic log lines otherwise."""
from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from .busy import BusyShare, describe_busy
from .liveness import Silence
from .vocabulary import Outcome, OutcomeKind

log = logging.getLogger("cluster_work")


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600:d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{days}d {text}" if days else text


def format_duration(seconds: float | None) -> str:
    """A duration as people read it: `4.2 µs`, `12 ms`, `3.4 s`; from a minute on, H:MM:SS."""
    if seconds is None:
        return "-"
    if seconds >= 59.5:
        return format_seconds(seconds)
    for unit, size in (("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)):
        value = seconds / size
        text = f"{value:.1f}" if value < 9.95 else f"{value:.0f}"
        if float(text) < 1000 or unit == "s":
            break
    return f"{text} {unit}"


def format_rate(per_second: float) -> str:
    """Iterations per second to 3 significant digits, without exponents (`3,610 it/s`); below one a
    second, seconds per iteration (`4.0 s/it`)."""
    if per_second <= 0:
        return "0 it/s"
    if per_second < 1:
        return f"{format_duration(1 / per_second)}/it"
    value = float(f"{per_second:.3g}")
    return f"{value:,.0f} it/s" if value >= 100 else f"{value:.3g} it/s"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """`1 job`, `3 jobs`: a count with its noun in the right number."""
    return f"{count:,} {noun if count == 1 else plural or noun + 's'}"


class RunDisplay:
    """Follows a run: iterations done (polled from `iterations`), busy workers (the average count over the
    last `BUSY_WINDOW` seconds, from `busy_seconds`, the executor's busy worker-seconds so far: see
    `busy`), failures, stalled workers (polled from `stalled`: then the time left says "stalled" instead
    of growing)."""

    BUSY_WINDOW = 3.0  # s

    def __init__(self, total_iterations: Callable[[], int], workers: int, iterations: Callable[[], int],
                 busy_seconds: Callable[[], float], stalled: Callable[[], list[Silence]] = list):
        self._total, self.workers = total_iterations, workers
        self._iterations, self._busy_seconds, self._stalled = iterations, busy_seconds, stalled
        self._busy_share = BusyShare(self.BUSY_WINDOW)
        self._busy_share.average(busy_seconds())  # the first reading: averages start here
        self.failed = 0
        self.started = time.perf_counter()

    def busy(self) -> str:
        """The workers busy on average since the reading `BUSY_WINDOW` seconds ago (`1.4`)."""
        return describe_busy(self._busy_share.average(self._busy_seconds()))

    def job_ended(self, outcome: Outcome) -> None:
        if outcome.kind in (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER, OutcomeKind.STORE_FAILURE):
            self.failed += 1

    @property
    def total(self) -> int:
        """The iterations of the whole run as known now (a campaign's grow as it decides)."""
        return self._total()

    def measure(self) -> tuple[int, float, float]:
        """(iterations done, seconds elapsed, iterations per second) right now."""
        done = min(self._iterations(), self.total)
        elapsed = time.perf_counter() - self.started
        return done, elapsed, done / elapsed if elapsed > 0 else 0.0

    def left(self, done: int, rate: float) -> str:
        """The time left at the rate so far: `~0:01:23`, `unknown` before anything was done, `stalled`
        while a worker is."""
        if self._stalled():
            return "stalled"
        return f"~{format_seconds((self.total - done) / rate)}" if rate > 0 else "unknown"

    def status_line(self) -> str:
        done, elapsed, rate = self.measure()
        total = self.total
        share = 100 * done / total if total else 100.0
        return (f"progress: {done:,}/{total:,} iterations ({share:.0f}%), {format_rate(rate)}, "
                f"elapsed {format_seconds(elapsed)}, left {self.left(done, rate)}, "
                f"{self.busy()}/{self.workers} workers busy, {self.failed} failed"
                + "".join(f"; {silence.describe()}" for silence in self._stalled()))

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LogLinesDisplay(RunDisplay):
    """For batch jobs writing to files: a plain progress line every `every` seconds."""

    def __init__(self, total_iterations: Callable[[], int], workers: int, iterations: Callable[[], int],
                 busy_seconds: Callable[[], float], stalled: Callable[[], list[Silence]] = list, *,
                 every: float = 60.0):
        super().__init__(total_iterations, workers, iterations, busy_seconds, stalled)
        self._every = every
        self._busy_share.window = every  # each line: the average since the line before
        self._done = threading.Event()

    def __enter__(self) -> LogLinesDisplay:
        if self._every > 0:
            threading.Thread(target=self._loop, name="cluster_work-progress", daemon=True).start()
        return self

    def _loop(self) -> None:
        while not self._done.wait(self._every):
            log.info(self.status_line())

    def __exit__(self, *exc: object) -> None:
        self._done.set()


class LiveBarDisplay(RunDisplay):
    """For a terminal: a rich progress bar over all iterations, with rate, ETA and busy workers."""

    def __enter__(self) -> LiveBarDisplay:
        self._progress = Progress(
            TextColumn("[bold]sweep"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left {task.fields[left]}"),
            TextColumn("{task.fields[workers]}"), TextColumn("{task.fields[failed]}"),
            console=Console(file=sys.stderr), refresh_per_second=4, transient=False)
        self._task = self._progress.add_task("sweep", total=self.total, rate="", left="", workers="", failed="")
        self._progress.start()
        self._done = threading.Event()
        threading.Thread(target=self._loop, name="cluster_work-bar", daemon=True).start()
        return self

    def _update(self) -> None:
        done, elapsed, rate = self.measure()
        failed = f"[red]{self.failed} failed[/red]" if self.failed else "0 failed"
        stalled = "".join(f" [red]{silence.describe()}[/red]" for silence in self._stalled())
        workers = f"{self.busy()}/{self.workers} busy{stalled}"
        self._progress.update(self._task, total=self.total, completed=done, rate=format_rate(rate) if elapsed else "",
                              left=self.left(done, rate), workers=workers, failed=failed)

    def _loop(self) -> None:
        while not self._done.wait(0.25):
            self._update()

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._update()
        self._progress.stop()


def make_display(total_iterations: Callable[[], int], workers: int, iterations: Callable[[], int],
                 busy_seconds: Callable[[], float], report_every: float,
                 stalled: Callable[[], list[Silence]] = list) -> RunDisplay:
    if sys.stderr.isatty():
        return LiveBarDisplay(total_iterations, workers, iterations, busy_seconds, stalled)
    return LogLinesDisplay(total_iterations, workers, iterations, busy_seconds, stalled, every=report_every)

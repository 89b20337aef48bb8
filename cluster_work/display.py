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
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

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


class RunDisplay:
    """Follows a run: iterations done (polled from `iterations`), busy workers, failures, stalled workers
    (then the ETA says "stalled" instead of growing)."""

    def __init__(self, total_iterations: Callable[[], int], workers: int, iterations: Callable[[], int],
                 busy: Callable[[], int], stalled: Callable[[], list[Silence]] = list):
        self._total, self.workers = total_iterations, workers
        self._iterations, self._busy, self._stalled = iterations, busy, stalled
        self.failed = 0
        self.started = time.perf_counter()

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

    def status_line(self) -> str:
        done, elapsed, rate = self.measure()
        eta = (self.total - done) / rate if rate > 0 else None
        share = 100 * done / self.total if self.total else 100.0
        stalled = self._stalled()
        left = "stalled" if stalled else f"~{format_seconds(eta)}"
        return (f"progress: {done}/{self.total} iterations ({share:.0f}%), {rate:.3g} it/s, "
                f"elapsed {format_seconds(elapsed)}, left {left}, "
                f"{self._busy()}/{self.workers} workers busy, {self.failed} failed"
                + "".join(f"; {silence.describe()}" for silence in stalled))

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class LogLinesDisplay(RunDisplay):
    """For batch jobs writing to files: a plain progress line every `every` seconds."""

    def __init__(self, *args: object, every: float = 60.0):
        super().__init__(*args)  # type: ignore[arg-type]
        self._every = every
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
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("left"), _Remaining(),
            TextColumn("{task.fields[workers]}"), TextColumn("{task.fields[failed]}"),
            console=Console(file=sys.stderr), refresh_per_second=4, transient=False)
        self._task = self._progress.add_task("sweep", total=self.total, rate="", workers="", failed="", stalled=False)
        self._progress.start()
        self._done = threading.Event()
        threading.Thread(target=self._loop, name="cluster_work-bar", daemon=True).start()
        return self

    def _update(self) -> None:
        done, elapsed, rate = self.measure()
        failed = f"[red]{self.failed} failed[/red]" if self.failed else "0 failed"
        stalled = self._stalled()
        workers = f"{self._busy()}/{self.workers} busy" + "".join(f" [red]{s.describe()}[/red]" for s in stalled)
        self._progress.update(self._task, total=self.total, completed=done, rate=f"{rate:.3g} it/s" if elapsed else "",
                              workers=workers, failed=failed, stalled=bool(stalled))

    def _loop(self) -> None:
        while not self._done.wait(0.25):
            self._update()

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._update()
        self._progress.stop()


class _Remaining(TimeRemainingColumn):
    """The bar's time left, or "stalled" while a worker is (a growing estimate would mislead)."""

    def render(self, task: Task) -> Text:
        if task.fields.get("stalled"):
            return Text("stalled", style="red")
        return super().render(task)


def make_display(total_iterations: Callable[[], int], workers: int, iterations: Callable[[], int],
                 busy: Callable[[], int], report_every: float,
                 stalled: Callable[[], list[Silence]] = list) -> RunDisplay:
    if sys.stderr.isatty():
        return LiveBarDisplay(total_iterations, workers, iterations, busy, stalled)
    return LogLinesDisplay(total_iterations, workers, iterations, busy, stalled, every=report_every)

"""Failed repetitions, seen where every outcome arrives (rank 0, the run's own process): each distinct
traceback on the console once, and a limit that stops the sweep.

A bug in `iterate` fails every repetition alike. Printing the same traceback for each buries the console,
and running them all wastes the allocation. So the runner writes a failure's traceback to the repetition's
own log (complete, as always) and returns it in the outcome, but not to the console; here the first
outcome with a given traceback prints it, and each later one with the identical traceback is one line that
refers to it. The same on every backend: in this process, in local workers, on MPI ranks.

With a limit (`--max-failures N`, or `max_failures: N` in the config; Ray Tune's and Hydra's fail-fast),
the N-th failed repetition stops the sweep as a stop request does: the items in flight end after their
current iteration, nothing more starts, everything is resumable; the summary says why, and the exit
status says that repetitions failed (1).
"""
from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .campaign import Driver
from .display import counted
from .errors import config_error
from .vocabulary import ConfigSource, Outcome, OutcomeKind, Step, WorkItem

log = logging.getLogger("cluster_work")

FAILED_KINDS = (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER)  # a repetition's own failure, not the run's
CONFIG_KEY = "max_failures"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")  # `<object at 0x7f...>` differs between processes, not the failure


def failure_limit(given: int | None, documents: Sequence[Mapping[str, Any]],
                  source: ConfigSource | str) -> int | None:
    """The sweep's limit: `given` (--max-failures), else the config's `max_failures:`, which is the sweep's,
    so every document that gives one must give the same (put it in the DEFAULT document); None: no limit.
    A ConfigError (one line, exit status 2) for anything but a positive integer."""
    if given is not None:
        return given
    values: dict[int, Any] = {}  # each value given -> the first document that gives it
    for document in documents:
        if CONFIG_KEY in document:
            value = document[CONFIG_KEY]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise config_error(source, f"must be a positive integer, got {value!r}",
                                   experiment=document.get("name"), key=CONFIG_KEY)
            values.setdefault(value, document.get("name"))
    if len(values) > 1:
        given_by = ", ".join(f"{name} gives {value}" for value, name in values.items())
        raise config_error(source, f"is the whole sweep's limit, so one value (in the DEFAULT document); {given_by}",
                           key=CONFIG_KEY)
    return next(iter(values), None)


class Failures:
    """Counts the failed repetitions of a run, shows each distinct traceback once, and calls `stop` when
    `limit` of them failed. `reason`: why the run stopped early, once it did."""

    def __init__(self, limit: int | None, stop: Callable[[], None]):
        self.limit, self._stop = limit, stop
        self.count_failed = 0
        self.reason: str | None = None
        self._shown: dict[str, str] = {}  # a traceback (addresses masked) -> the label of the first to show it

    def show(self, outcome: Outcome) -> str | None:
        """Before the outcome's own log line: a failure's traceback, printed if it is new; else the label of
        the earlier failure with the same one (what its log line names: `Outcome.same_traceback_as`)."""
        trace = outcome.traceback if outcome.kind in FAILED_KINDS else None
        if not trace:
            return None
        first = self._shown.setdefault(_ADDRESS.sub("0x", trace), outcome.label)
        if first == outcome.label:
            log.error("%s failed:\n%s", outcome.label, trace.rstrip())
            return None
        return first

    def count(self, outcome: Outcome) -> None:
        """After the outcome's own log line: count a failure, and stop the run at the limit."""
        if outcome.kind not in FAILED_KINDS:
            return
        self.count_failed += 1
        if self.limit is not None and self.count_failed == self.limit:
            self.reason = (f"{counted(self.count_failed, 'repetition')} failed, the limit (--max-failures or "
                           f"{CONFIG_KEY}: {self.limit}); stopped as on Ctrl-C: the same command resumes the rest")
            log.error("stopping: %s", self.reason)
            self._stop()


class CountingFailures:
    """A driver that passes everything to `driver`, and each outcome to `failures` before and after: the
    driver gets a copy marked with the failure whose traceback it repeats (the outcome itself stays as it came)."""

    def __init__(self, driver: Driver, failures: Failures):
        self.driver, self.failures = driver, failures

    def start(self) -> Iterable[WorkItem]:
        return self.driver.start()

    def on_outcome(self, outcome: Outcome) -> Step:
        same = self.failures.show(outcome)
        if same is not None:
            outcome = dataclasses.replace(outcome, same_traceback_as=same)
        step = self.driver.on_outcome(outcome)
        self.failures.count(outcome)
        return step

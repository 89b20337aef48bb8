"""The exporter: follows a sweep's durable results into a tracker, exactly once, whatever was killed when.

The results files are the truth; a tracker only ever receives what they hold. Per repetition the journal
(`journal`) records how far the export got: `rows` exported, the length `bytes` and digest `fp` of the
results file's prefix that holds them, and the tracker's own fields (its run). One sync of a repetition:

1. If the file's first `bytes` no longer digest to `fp` (a run with `-r/-i` cut its rows and wrote new
   ones, `-d` deleted them) or its parameters changed (`-I`), the repetition's tracker run is replaced:
   the journal records the intent (`dropping`), the tracker drops the old run (MLflow deletes it, a
   soft delete; TensorBoard and W&B remove their own files), and the new run is of the next generation
   (`gen`), so that a tracker shows each saved row once, with the values the file now holds.
2. The new rows (and the state: finished, failed with its error, stopped with the campaign's reason) go
   to the tracker between two journal writes: `pending` before, the new cursor after. A kill between them
   leaves `pending`, and the next exporter asks the tracker to `recover` (TensorBoard cuts its event file
   back, W&B removes the unfinished offline run) or to skip what it already holds (MLflow looks at the
   run's metric history): every row ends up in the tracker exactly once.

A repetition exported while RUNNING (its lock held) is asked each poll whether it still runs: the release of
its lock (its end, or its process's death) changes no file, so the watch alone would leave it RUNNING.

A tracker that is down (`Tracker.unavailable`) pauses the whole export with back-off (1 s, doubling up to
half a minute); any other error pauses that repetition alone, with a warning. Neither reaches the sweep: the
exporter runs in its own process and only reads the results files.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..paths import SweepPaths
from ..vocabulary import RepetitionState
from .journal import Journal
from .source import Repetition, Snapshot, Watch, read_snapshot

log = logging.getLogger("cluster_work.export")

MAX_DOWN_DELAY = 30.0
MAX_RETRY_DELAY = 300.0


class Tracker(Protocol):
    """What the engine needs of a tracker. Its fields in a journal entry are its own (see each tracker)."""

    kind: ClassVar[str]
    min_gap: ClassVar[float]  # seconds between two exports of a repetition that is still running

    def destination(self, sweep: str) -> str:
        """Where this tracker puts `sweep`'s runs (a URI, a folder): names the journal."""

    def output_folders(self, sweep: str) -> list[str]:
        """Folders below `sweep` that this tracker writes (not experiments)."""

    def recover(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> None:
        """After a kill during an export (`entry` is pending): undo what is not in `entry`, where it can."""

    def drop(self, repetition: Repetition, entry: dict[str, Any], sweep_id: str) -> dict[str, Any]:
        """Remove the run recorded in `entry` (its rows were rewritten: a new generation replaces it); return
        fields for the new generation's entry (what it replaces)."""

    def append(self, repetition: Repetition, entry: dict[str, Any], snapshot: Snapshot, sweep_id: str,
               maybe_partial: bool) -> dict[str, Any]:
        """Export rows `entry["rows"]:` of `snapshot` and its state; return the tracker's new entry fields.
        `maybe_partial`: a killed exporter may have sent some of these rows already."""

    def unavailable(self, error: BaseException) -> bool:
        """Whether `error` means the tracker cannot be reached (back off, retry) rather than a bad row."""

    def close(self) -> None: ...


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


EMPTY = digest(b"")


@dataclass
class Totals:
    rows: int = 0
    replaced: int = 0
    errors: int = 0


class Exporter:
    """Follows the repetitions below `sweeps` ((folder, base names or None)) into `tracker`."""

    def __init__(self, tracker: Tracker, sweeps: Iterable[tuple[str, frozenset[str] | None]], budget: int = 4000):
        self.tracker = tracker
        self.sweeps = list(sweeps)
        skip = [folder for sweep, _ in self.sweeps for folder in tracker.output_folders(sweep)]
        self.watch = Watch(self.sweeps, skip, budget)
        self.journals: dict[str, Journal] = {}
        self.totals = Totals()
        self._waiting: dict[str, tuple[Repetition, Any]] = {}  # changed, not yet exported
        # exported while a live process held them: the lock's release (its end, or its death) changes no file
        # and no event, so each poll asks whether they still run (a lock probe each: about one per worker)
        self._running: dict[str, Repetition] = {}
        self._seen: dict[str, Any] = {}
        self._last: dict[str, float] = {}
        self._retry: dict[str, tuple[float, float]] = {}  # key -> (when, delay)
        self._down_until, self._down_delay = 0.0, 0.0
        self._warned: set[str] = set()

    def open(self) -> None:
        """Lock every sweep's journal (JournalBusy: another exporter follows it into this destination)."""
        for sweep, _ in self.sweeps:
            if sweep not in self.journals:
                path = SweepPaths(sweep).export_journal(self.tracker.kind, digest(
                    self.tracker.destination(sweep).encode())[:12])
                journal = Journal(path)
                journal.open()
                self.journals[sweep] = journal

    def close(self) -> None:
        for journal in self.journals.values():
            journal.close()
        self.journals.clear()
        self.tracker.close()

    @property
    def waiting(self) -> int:
        """Repetitions with something not yet exported (the tracker was down, or an error)."""
        return len(self._waiting)

    def poll(self, everything: bool = False, final: bool = False) -> int:
        """Look at the repetitions due now and export what changed; return the rows exported."""
        now = time.monotonic()
        for repetition, sig in self.watch.poll(now, everything):
            sig = json.loads(json.dumps(sig))  # as the journal holds it
            entry = self.journals[repetition.sweep].get(repetition.key) or {}
            known = self._seen.get(repetition.key, entry.get("sig"))
            if sig != known or "pending" in entry or "dropping" in entry:
                self._waiting[repetition.key] = (repetition, sig)
                if sig != known:
                    self.watch.touch(repetition, now)
            self._seen[repetition.key] = sig
            if entry.get("state") == RepetitionState.RUNNING.value:  # as a restarted exporter found it
                self._running.setdefault(repetition.key, repetition)
        for key, repetition in list(self._running.items()):
            if key not in self._waiting and not repetition.store.is_running():
                self._waiting[key] = (repetition, self._seen.get(key))
                del self._running[key]
        before = self.totals.rows
        for key, (repetition, sig) in list(self._waiting.items()):
            if time.monotonic() < self._down_until:
                break
            if time.monotonic() < self._retry.get(key, (0.0, 0.0))[0]:
                continue
            try:
                done = self.sync(repetition, sig, final)
            except Exception as exc:
                self._failed(repetition, exc)
                if self.tracker.unavailable(exc):
                    break
                continue
            self._retry.pop(key, None)
            if self._down_delay:
                log.warning("%s: the tracker answers again; exporting", self.tracker.kind)
                self._down_delay = 0.0
                self._warned.discard("down")
            if done:
                del self._waiting[key]
        return self.totals.rows - before

    def _failed(self, repetition: Repetition, exc: Exception) -> None:
        now = time.monotonic()
        if self.tracker.unavailable(exc):
            self._down_delay = min(MAX_DOWN_DELAY, max(1.0, self._down_delay * 2))
            self._down_until = now + self._down_delay
            if "down" not in self._warned:
                log.warning("%s: the tracker cannot be reached (%s); the export waits and retries (every %g s "
                            "at most)", self.tracker.kind, _first_line(exc), MAX_DOWN_DELAY)
                self._warned.add("down")
            return
        self.totals.errors += 1
        delay = min(MAX_RETRY_DELAY, max(1.0, self._retry.get(repetition.key, (0.0, 0.0))[1] * 2))
        self._retry[repetition.key] = (now + delay, delay)
        message = f"{repetition.key}: {type(exc).__name__}: {_first_line(exc)}"
        if message not in self._warned:
            self._warned.add(message)
            log.warning("%s: could not export %s; retrying in %g s", self.tracker.kind, message, delay,
                        exc_info=log.isEnabledFor(logging.DEBUG))

    def sync(self, repetition: Repetition, sig: Any, final: bool = False) -> bool:
        """Bring the tracker's run of `repetition` up to its files; False: not now (a W&B segment too soon)."""
        journal, key = self.journals[repetition.sweep], repetition.key
        sweep_id = journal.sweep_id
        entry = dict(journal.get(key) or {"gen": 0, "rows": 0, "bytes": 0, "fp": EMPTY})
        if "pending" in entry:  # a kill, or an error, during the last export: undo what it left
            self.tracker.recover(repetition, entry, sweep_id)
        if "dropping" in entry:
            entry.update(self.tracker.drop(repetition, entry.pop("dropping"), sweep_id))
            journal.put(key, entry)
        snapshot = read_snapshot(repetition)
        if snapshot.state is RepetitionState.RUNNING:
            self._running[key] = repetition
        else:
            self._running.pop(key, None)
        params = digest(json.dumps(repetition.params, sort_keys=True, default=str).encode())
        same = entry["bytes"] <= snapshot.end and digest(snapshot.data[:entry["bytes"]]) == entry["fp"] \
            and entry.get("params", params) == params
        if not same:
            entry = {"gen": entry["gen"] + 1, "rows": 0, "bytes": 0, "fp": EMPTY, "dropping": entry}
            journal.put(key, entry)
            entry.update(self.tracker.drop(repetition, entry.pop("dropping"), sweep_id))
            journal.put(key, entry)
            self.totals.replaced += 1
            log.info("%s: %s was rewritten; its run is replaced (generation %d)", self.tracker.kind, key, entry["gen"])
        state = {"state": snapshot.state.value, "detail": snapshot.detail}
        unchanged = len(snapshot.rows) == entry["rows"] and all(entry.get(k) == v for k, v in state.items()) \
            and "pending" not in entry
        if unchanged or not snapshot.rows and not snapshot.final:  # nothing new, or nothing to show yet
            if entry.get("sig") != sig:
                journal.put(key, {**entry, "sig": sig})
            return True
        if not (final or snapshot.final) and time.monotonic() - self._last.get(key, -1e9) < self.tracker.min_gap:
            return False
        maybe_partial = "pending" in entry
        journal.put(key, {**entry, "pending": len(snapshot.rows)})
        fields = self.tracker.append(repetition, entry, snapshot, sweep_id, maybe_partial)
        self.totals.rows += len(snapshot.rows) - entry["rows"]
        entry = {**entry, **fields, **state, "params": params,
                 "rows": len(snapshot.rows), "bytes": snapshot.end, "fp": digest(snapshot.data[:snapshot.end]),
                 "sig": sig}
        entry.pop("pending", None)
        journal.put(key, entry)
        self._last[key] = time.monotonic()
        return True

    def catch_up(self, deadline: float) -> bool:
        """Export everything there is now, retrying a tracker that is down until `deadline` (monotonic);
        True when nothing is left waiting."""
        self.poll(everything=True, final=True)
        while self._waiting and time.monotonic() < deadline:
            due = min([self._down_until, *(when for when, _ in self._retry.values())])
            time.sleep(min(1.0, max(0.05, due - time.monotonic()), max(0.0, deadline - time.monotonic())))
            self.poll(final=True)
        return not self._waiting


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__

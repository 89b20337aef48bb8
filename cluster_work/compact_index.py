"""A compact store's index: what planning and -p/-P ask of its segments, per experiment and repetition, without
reading them (a half-done 10^6-point sweep's segments are ~100 MB of JSON; its index a tenth, parsed at once).

    <root>/index.json   {"v": 3, "segments": {segment: bytes it covers}, "dropped": {name: time},
                         "latest": time, "open": {segment: [name, rep, time]}, "plain_at": bool,
                         "names": [name, ...], "at": [...], "params": [...], "counts": [repetitions, ...],
                         "rep": [...], "status": [status or null, ...], "rows": [...], "seconds": [...],
                         "timed": [...]}

Per experiment (`names`, `at`, `params`, `counts`) and per repetition, experiment after experiment (`rep` to
`timed`), as parallel columns (compact_columns: what the reader loads without a Python list per experiment).
An index of version 2 (`"experiments": {name: [at, params, [[rep, status, rows, seconds, timed], ...]]}`: the
same fields, a list per experiment and repetition) is read as well, and rewritten as version 3 by its first
reader that can write the store.

`params`: the experiment's parameters as the store gives them (`CompactExperimentStore.read_config`), as the
text `json.dumps(..., sort_keys=True)` (what a change is checked against); per repetition its latest status,
how many rows it has (0, 1, 2... as `SavedRepetition.row_lines`) and, where its status has no mean iteration
time, the sum and count of its rows' `iteration_time`s (added one by one, in the rows' order: `timed_sum`).
What extending it by the segments' tails takes (compact_tails): `latest`, the latest time of a claim or status
it covers; `open`, per segment, its last claim where that is its repetition's latest (the segment's later rows
go on from it); `plain_at`, whether each experiment was only ever given one folder and each folder one experiment.

The index is a cache, only ever derived from the segments, so deleting it loses nothing:
- written whole to a temporary file, then renamed over the old one (a kill -9 leaves the old index or the
  new one, and at most a temporary file, never read); after a power loss it may be empty or damaged: a
  reader that cannot parse it ignores it (as one of another version);
- taken only where each segment it names still has at least the bytes it covers (segments are append-only),
  and extended by what the segments gained since (the tails of those it covers, and new segments): their events
  applied to it as `Catalog` applies them after the bytes it covers (compact_tails says which tails those are;
  for any other the reader reads every segment instead and writes a new index);
- written by whoever read segments the index did not cover (planning, -p, --list), by a run's launcher at most
  every KEEP_SECONDS between outcomes (`IndexKeeper`: a kill -9 then costs the next look the tails only) and at
  its end (`refresh`); a store that cannot be written (another user's) is read all the same. A process extends
  what it read last (`_summaries`) rather than reading the index again, but for a launcher's `refresh`, which
  keeps nothing between two (its memory).
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

from . import collector
from .compact_catalog import Catalog, SavedRepetition, catalog, forget, loaded, segment_sizes
from .compact_columns import Columns, Entry
from .compact_process import any_held, is_held
from .compact_tails import extend, has_mean, timed_sum
from .errors import StoreError
from .files import atomic_write, remove_dead_writers_temporaries
from .paths import (
    DOCUMENT_CONFIG_TEMPORARY_PREFIX,
    INDEX_FILE,
    INDEX_TEMPORARY_PREFIX,
    RepetitionPaths,
)

VERSION = 3
OLDER = 2  # the version of the index it replaces, still read (a list per experiment and repetition)


class RepetitionSummary(NamedTuple):
    """One repetition as its segments say: its latest status (None: none), its rows, and the sum and count
    of their measured `iteration_time`s (0 and 0 where its status gives a mean)."""

    status: dict[str, Any] | None
    rows: int
    seconds: float = 0.0
    timed: int = 0

    @property
    def rows_mean(self) -> float | None:
        """The mean of its rows' iteration times (None where none was measured, or its status has one)."""
        return self.seconds / self.timed if self.timed else None

    @classmethod
    def of(cls, saved: SavedRepetition) -> RepetitionSummary:
        status = dict(saved.status[1]) if saved.status is not None else None
        lines = saved.row_lines()
        if has_mean(status):
            return cls(status, len(lines))  # what the status says is what is asked: the rows' times never are
        seconds, timed = timed_sum(0.0, (json.loads(line) for line in lines))
        return cls(status, len(lines), float(seconds), timed)


class ExperimentSummary(NamedTuple):
    """One experiment with a claim or a status: its folder below the document's (`at`), its parameters as the
    text of `json.dumps(params, sort_keys=True, default=repr)`, and its repetitions."""

    at: str
    params: str
    repetitions: dict[int, RepetitionSummary]

    @classmethod
    def of(cls, entry: Entry) -> ExperimentSummary:
        at, params, reps = entry
        return cls(at, params, {rep: RepetitionSummary(*fields) for rep, *fields in reps})

    def stored_params(self) -> dict[str, Any]:
        return json.loads(self.params)


class Summary:
    """What a compact store's segments say, experiment by experiment, and which bytes of which segments that is
    (`segments`), with the experiments' latest drops (-d); what extending it by the segments' tails takes
    (compact_tails): the latest time of a claim or status read (`latest`), and per segment its last claim where
    that is its repetition's latest (`open`: segment -> ((name, rep), its time)), and whether each experiment was
    only ever given one folder and each folder one experiment (`plain_at`). The experiments are held as columns
    (`columns`: what an index holds, what -p and planning read in bulk) or as an Entry per name (`entries`: what a
    read of the segments and an extension by their tails make), each made of the other where it is asked for.
    `older`: read from an index of the version before (rewritten where the store can be written)."""

    def __init__(self, segments: dict[str, int], dropped: dict[str, float], entries: dict[str, Entry] | None = None,
                 latest: float = 0.0, open_claims: dict[str, tuple[tuple[str, int], float]] | None = None,
                 plain_at: bool = False, columns: Columns | None = None, older: bool = False):
        self.segments, self.dropped = segments, dropped
        self._entries, self._columns = entries if entries is not None or columns is not None else {}, columns
        self.latest, self.open, self.plain_at, self.older = latest, open_claims or {}, plain_at, older

    @property
    def entries(self) -> dict[str, Entry]:
        """Each experiment's Entry, by name (made of the columns at the first ask)."""
        if self._entries is None:
            assert self._columns is not None
            self._entries = self._columns.entries()
        return self._entries

    @property
    def columns(self) -> Columns:
        """The experiments as columns (made of the entries at the first ask)."""
        if self._columns is None:
            assert self._entries is not None
            self._columns = Columns.of(self._entries)
        return self._columns

    def experiment(self, name: str) -> ExperimentSummary | None:
        if self._entries is not None:
            entry = self._entries.get(name)
            return ExperimentSummary.of(entry) if entry is not None else None
        position = self.columns.position.get(name)
        return ExperimentSummary.of(self.columns.entry(position)) if position is not None else None

    @classmethod
    def of(cls, known: Catalog) -> Summary:
        """The summary of everything `known` has read."""
        at_of = {name: at for at, name in known.names_at.items()}
        entries = {}
        for name, reps in known.experiments().items():
            saved = {rep: known.repetition(name, rep) for rep in reps}
            params: Any = next((s.params for s in saved.values() if s.params is not None), {})
            entries[name] = [at_of.get(name, ""), canonical(params),
                             [[rep, *RepetitionSummary.of(s)] for rep, s in saved.items()]]
        latest = 0.0
        for repetition in known.repetitions.values():
            for claim in repetition.claims:
                latest = max(latest, claim.time)
            if repetition.status is not None:
                latest = max(latest, repetition.status[0])
        open_claims = {}
        for segment, key in known.last_claim.items():
            claim = known.current[segment, key]
            if claim.time > known.dropped.get(key[0], -math.inf) and all(
                    other is claim or other.time < claim.time for other in known.repetitions[key].claims):
                open_claims[segment] = (key, claim.time)
        plain_at = not known.at_moved and len(set(known.names_at.values())) == len(known.names_at) and all(
            name in entries for name in known.names_at.values())  # (a dropped experiment's folder is not held)
        return cls(dict(known.offsets), dict(known.dropped), entries, latest, open_claims, plain_at)

    def extended(self, root: str) -> Summary | None:
        """This summary with what the segments gained since (compact_tails); None where the tails alone cannot
        tell it."""
        # an index read: its experiments stay columns (5 x 10^5 of them are not made into entries)
        entries: Mapping[str, Entry] = self._entries if self._entries is not None else self.columns.view()
        folders = self.columns.folders if self._entries is None else lambda: {e[0]: n for n, e in entries.items()}
        found = extend(root, self.segments, self.dropped, self.latest, self.open, self.plain_at, entries, folders,
                       canonical)
        if found is None:
            return None
        segments, dropped, latest, open_claims, changed = found
        if self._entries is not None:
            return Summary(segments, dropped, {**self._entries, **changed}, latest, open_claims, self.plain_at)
        return Summary(segments, dropped, None, latest, open_claims, self.plain_at, self.columns.updated(changed))

    def encode(self) -> bytes:
        return json.dumps({"v": VERSION, "segments": self.segments, "dropped": self.dropped, "latest": self.latest,
                           "open": {segment: [*key, time] for segment, (key, time) in self.open.items()},
                           "plain_at": self.plain_at, **self.columns.fields()},
                          separators=(",", ":"), allow_nan=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Summary | None:
        """The summary an index holds (of this version or the one before); None where it is not one (damaged,
        empty, of another version)."""
        try:
            value = json.loads(data)
            if not isinstance(value, dict) or value.get("v") not in (VERSION, OLDER):
                return None
            if value["v"] == OLDER:
                entries = value["experiments"]
                if not isinstance(entries, dict) or not all(isinstance(e, list) and len(e) == 3
                                                            for e in entries.values()):
                    return None
                columns: Columns | None = Columns.of(entries)
            else:
                columns = Columns.decode(value)
            segments = {str(name): int(size) for name, size in value["segments"].items()}
            dropped = {str(name): float(time) for name, time in value["dropped"].items()}
            latest, plain_at = float(value["latest"]), value["plain_at"] is True
            open_claims = {str(segment): ((str(name), int(rep)), float(time))
                           for segment, (name, rep, time) in value["open"].items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        if columns is None:
            return None
        return cls(segments, dropped, None, latest, open_claims, plain_at, columns, value["v"] == OLDER)


def canonical(params: Any) -> str:
    """The text a change of parameters is told by (as `planning.changed_params` compares them)."""
    return json.dumps(params, sort_keys=True, default=repr)


def read_index(root: str) -> Summary | None:
    try:
        with open(os.path.join(root, INDEX_FILE), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    with collector.paused():  # its lists hold no cycles
        found = Summary.decode(data)
    if found is not None:
        collector.freeze_large(len(found.columns))  # kept for the process's life (`summary`)
    return found


def write_index(root: str, summary: Summary) -> bool:
    """Replace the index by `summary`, whole or not at all; False where the store cannot be written. Temporary
    files that writers on this host left when they were killed are removed first: the index's, and the document
    config's (compact_config writes that file once, so a writer killed after another wrote it leaves one that no
    later write of it would remove)."""
    remove_dead_writers_temporaries(root, (INDEX_TEMPORARY_PREFIX, DOCUMENT_CONFIG_TEMPORARY_PREFIX))
    try:
        atomic_write(os.path.join(root, INDEX_FILE), summary.encode(), writer_prefix=INDEX_TEMPORARY_PREFIX,
                     remove_dead=False)
    except StoreError:
        return False
    return True


def _extended(root: str, index: Summary, sizes: dict[str, int]) -> Summary | None:
    """`index` with what the segments gained since (see the module's docstring), or None where that cannot be
    told from those bytes alone."""
    if any(sizes.get(name, -1) < covered for name, covered in index.segments.items()):
        return None  # a segment gone or cut: not what the index was taken from
    if sizes == index.segments:
        return index  # no tails: nothing to read (its experiments are not made into entries)
    return index.extended(root)


_summaries: dict[str, tuple[dict[str, int], Summary]] = {}  # this process's, by store, with the sizes read
os.register_at_fork(after_in_child=_summaries.clear)


def summary(root: str, write: bool = True) -> Summary:
    """What the segments of the compact store in `root` say now: its index (or what this process read last)
    extended by the segments' tails where they tell it (compact_tails), else every segment; the index is rewritten
    where it did not hold everything (`write`: where the store can be written to)."""
    sizes = segment_sizes(root)
    if sizes is None:
        return Summary({}, {}, {})
    cached = _summaries.get(root)
    if cached is not None and cached[0] == sizes:
        return cached[1]
    # what this process read last is extended as the index would be (a run's rank 0 refreshing it now and then)
    index = cached[1] if cached is not None else read_index(root)
    found = _extended(root, index, sizes) if index is not None else None
    if found is None:
        found = Summary.of(catalog(root, force=True))
    if write and found.segments and (index is None or index.older or (found.segments, found.dropped) != (
            index.segments, index.dropped)):
        write_index(root, found)
    _summaries[root] = (sizes, found)
    return found


def refresh(root: str) -> None:
    """Bring the index of `root` up to date (a run's launcher: now and then while it runs, and at its end, so that
    the next one plans from it), keeping none of it: the summary read, and the catalog where one had to be read
    (every segment) and none was loaded before, are dropped. So the launcher of a 10^6-point sweep holds no summary
    of 10^6 experiments, as Python objects, between its refreshes (a real one with -n 2 peaked at 1.47 GB, growing
    by each refresh; now 0.87 GB, its end's seal included); the next one reads the index just written (its
    experiments stay columns) and the tails."""
    if not os.path.isdir(root):
        return
    had_catalog = loaded(root) is not None  # (a sequential run's: its jobs read it, and go on reading it)
    summary(root)
    _summaries.pop(root, None)
    if not had_catalog:
        forget(root)


KEEP_SECONDS = 60.0  # how often a run's launcher rewrites its compact stores' indexes while it runs


class IndexKeeper:
    """A run's launcher's: rewrites the indexes of the run's compact stores (`roots`) at most every `every`
    seconds, called between outcomes (never by a worker per job), so that after a kill -9 of a long run the next
    look reads the index and the segments' tails only. Each rewrite reads the index written last, extends it by the
    tails (compact_tails) and writes the whole index (`refresh`: nothing kept between two)."""

    def __init__(self, roots: list[str], every: float = KEEP_SECONDS):
        self.roots, self.every = roots, every
        self.due = time.monotonic() + every

    def __call__(self) -> None:
        if not self.roots or time.monotonic() < self.due:
            return
        for root in self.roots:
            refresh(root)
        self.due = time.monotonic() + self.every


class SummaryStore:
    """A compact store read through its summary, for planning and -p: an experiment's store (`experiment`)
    with the methods of `CompactExperimentStore` that they use. `check_locks`: whether a repetition may be
    running (a live process holds a lock of the store), asked once for all."""

    def __init__(self, root: str, check_locks: bool = True):
        self.root, self.summary = root, summary(root)
        self.locked = check_locks and any_held(root)

    def experiment(self, name: str, path: str) -> SummaryExperiment:
        return SummaryExperiment(self, name, path, self.summary.experiment(name))


class SummaryExperiment:
    """An experiment as its summary says (nothing where `found` is None: no claim or status of it is left)."""

    def __init__(self, store: SummaryStore, name: str, path: str, found: ExperimentSummary | None):
        self.store, self.name, self.path, self.found = store, name, path, found

    def read_config(self, own: bool = False) -> dict[str, Any] | None:
        return None if self.found is None else {"name": self.name, "params": self.found.stored_params()}

    def has_original_results(self) -> bool:
        return False

    def repetition(self, rep: int) -> SummaryRepetition:
        found = self.found.repetitions.get(rep) if self.found is not None else None
        return SummaryRepetition(self.store, self.name, self.path, rep, found or RepetitionSummary(None, 0))


class SummaryRepetition:
    """A repetition as its summary says (`read_repetition` takes its count and mean of the rows)."""

    def __init__(self, store: SummaryStore, name: str, path: str, rep: int, found: RepetitionSummary):
        self.store, self.name, self.path, self.rep, self.summary = store, name, path, rep, found

    @property
    def log_file(self) -> str:
        return RepetitionPaths.of(self.path, self.rep).log_file

    def read_status(self) -> dict[str, Any]:
        return dict(self.summary.status) if self.summary.status is not None else {}

    def is_running(self) -> bool:
        return self.store.locked and is_held(self.store.root, self.name, self.rep)

    def results_size(self) -> int | None:
        return None

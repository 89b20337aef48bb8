"""A compact store's index: what planning and -p/-P ask of its segments, per experiment and repetition, without
reading them (a half-done 10^6-point sweep's segments are ~100 MB of JSON; its index a tenth, parsed at once).

    <root>/index.json   {"v": 1, "segments": {segment: bytes it covers}, "dropped": {name: time},
                         "experiments": [[name, at, params, [[rep, status or null, rows, seconds, timed], ...]], ...]}

`params`: the experiment's parameters as the store gives them (`CompactExperimentStore.read_config`), as the
text `json.dumps(..., sort_keys=True)` (what a change is checked against); per repetition its latest status,
how many rows it has (0, 1, 2... as `SavedRepetition.row_lines`) and, where its status has no mean iteration
time, the sum and count of its rows' `iteration_time`s (summed as `sum()` does).

The index is a cache, only ever derived from the segments, so deleting it loses nothing:
- written whole to a temporary file, then renamed over the old one (a kill -9 leaves the old index or the
  new one, and at most a temporary file, never read); after a power loss it may be empty or damaged: a
  reader that cannot parse it ignores it;
- taken only where each segment it names still has at least the bytes it covers (segments are append-only);
  a segment it covers in part that grew since (its writer was alive then), or bytes of new segments that
  touch an experiment it holds, make the reader read every segment instead (`Catalog`) and write a new index;
- new segments that touch only experiments it does not hold (a resume's new points) are read and added.
Written by whoever read segments the index did not cover (planning, -p, --list), and at the end of a run
(`refresh`), so that the next resume reads the index alone; a store that cannot be written (another user's)
is read all the same.
"""
from __future__ import annotations

import gc
import json
import os
import secrets
import socket
from typing import Any, NamedTuple

from .compact_catalog import Catalog, SavedRepetition, catalog
from .compact_store import any_held, is_held
from .paths import INDEX_FILE, INDEX_TEMPORARY_PREFIX, SEGMENT_PREFIX, RepetitionPaths, index_temporary_name

VERSION = 1


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
    def of(cls, saved: SavedRepetition) -> RepetitionSummary:  # type: ignore[override]
        status = dict(saved.status[1]) if saved.status is not None else None
        lines = saved.row_lines()
        if isinstance((status or {}).get("mean_iteration_time"), (int, float)):
            return cls(status, len(lines))  # what the status says is what is asked: the rows' times never are
        rows = [json.loads(line) for line in lines]
        times = [r["iteration_time"] for r in rows if isinstance(r.get("iteration_time"), (int, float))]
        return cls(status, len(lines), float(sum(times)), len(times))


class ExperimentSummary(NamedTuple):
    """One experiment with a claim or a status: its folder below the document's (`at`), its parameters as the
    text of `json.dumps(params, sort_keys=True, default=repr)`, and its repetitions."""

    at: str
    params: str
    repetitions: dict[int, RepetitionSummary]

    @classmethod
    def of(cls, entry: Entry) -> ExperimentSummary:  # type: ignore[override]
        at, params, reps = entry
        return cls(at, params, {rep: RepetitionSummary(*fields) for rep, *fields in reps})

    def stored_params(self) -> dict[str, Any]:
        return json.loads(self.params)


Entry = list  # an experiment as the index holds it: [at, params, [[rep, status, rows, seconds, timed], ...]]


class Summary:
    """What a compact store's segments say, experiment by experiment (`entries`, by name, as the index holds
    them: a 10^6-point sweep's are parsed in one call, and made into ExperimentSummaries only where asked), and
    which bytes of which segments that is (`segments`), with the experiments' latest drops (-d)."""

    def __init__(self, segments: dict[str, int], dropped: dict[str, float], entries: dict[str, Entry]):
        self.segments, self.dropped, self.entries = segments, dropped, entries

    def experiment(self, name: str) -> ExperimentSummary | None:
        entry = self.entries.get(name)
        return ExperimentSummary.of(entry) if entry is not None else None

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
        return cls(dict(known.offsets), dict(known.dropped), entries)

    def encode(self) -> bytes:
        return json.dumps({"v": VERSION, "segments": self.segments, "dropped": self.dropped,
                           "experiments": self.entries}, separators=(",", ":"), allow_nan=True).encode()

    @classmethod
    def decode(cls, data: bytes) -> Summary | None:
        """The summary an index holds; None where it is not one (damaged, empty, of another version)."""
        try:
            value = json.loads(data)
            if not isinstance(value, dict) or value.get("v") != VERSION:
                return None
            entries = value["experiments"]
            if not isinstance(entries, dict) or not all(isinstance(e, list) and len(e) == 3 for e in entries.values()):
                return None
            segments = {str(name): int(size) for name, size in value["segments"].items()}
            dropped = {str(name): float(time) for name, time in value["dropped"].items()}
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return cls(segments, dropped, entries)


def canonical(params: Any) -> str:
    """The text a change of parameters is told by (as `planning.changed_params` compares them)."""
    return json.dumps(params, sort_keys=True, default=repr)


def _sizes(root: str) -> dict[str, int] | None:
    """Each segment's size now (None: no store here)."""
    try:
        entries = [entry for entry in os.scandir(root) if entry.name.startswith(SEGMENT_PREFIX)]
    except (FileNotFoundError, NotADirectoryError):
        return None
    sizes = {}
    for entry in entries:
        try:
            sizes[entry.name] = entry.stat().st_size
        except FileNotFoundError:
            continue
    return sizes


FROZEN_FROM = 100_000  # experiments of an index past which its objects are left out of the cyclic collector's passes
_freezing = False  # set by the command line only (`allow_freezing`): a library user's process keeps its collector as is


def allow_freezing() -> None:
    """Let this process freeze a large index's objects out of the cyclic collector (`gc.freeze`, for the process's
    life). Only a command-line process opts in: it ends with its command, while in a long-lived one (a notebook)
    the freeze would also keep any object then alive from ever being collected as part of a cycle."""
    global _freezing
    _freezing = True


def read_index(root: str) -> Summary | None:
    try:
        with open(os.path.join(root, INDEX_FILE), "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    enabled = gc.isenabled()
    gc.disable()  # its ~10^6 lists hold no cycles: collecting while they are made costs ~40% of their parse
    try:
        found = Summary.decode(data)
    finally:
        if enabled:
            gc.enable()
    if _freezing and found is not None and len(found.entries) > FROZEN_FROM:
        gc.freeze()  # kept for the process's life (`summary`): the collector's passes over it cost as much again
    return found


def _remove_dead_temporaries(root: str) -> None:
    """Remove the temporary files of index writers of this host that died (kill -9) while they wrote."""
    host = socket.gethostname()
    try:
        names = [name for name in os.listdir(root) if name.startswith(INDEX_TEMPORARY_PREFIX)]
    except OSError:
        return
    for name in names:
        writer_host, _, rest = name[len(INDEX_TEMPORARY_PREFIX):].rpartition("-")[0].rpartition("-")
        if writer_host != host or not rest.isdigit():
            continue
        try:
            os.kill(int(rest), 0)
        except ProcessLookupError:
            try:
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
        except OSError:
            pass


def write_index(root: str, summary: Summary) -> bool:
    """Replace the index by `summary`, whole or not at all; False where the store cannot be written. Temporary
    files that writers on this host left when they were killed are removed first."""
    _remove_dead_temporaries(root)
    temporary = os.path.join(root, index_temporary_name(socket.gethostname(), os.getpid(), secrets.token_hex(4)))
    try:
        with open(temporary, "xb") as handle:
            handle.write(summary.encode())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, os.path.join(root, INDEX_FILE))
    except OSError:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        return False
    return True


def _has_line(root: str, segment: str, offset: int) -> bool:
    """Whether `segment` holds a whole line after `offset`."""
    try:
        with open(os.path.join(root, segment), "rb") as handle:
            handle.seek(offset)
            return b"\n" in handle.read()
    except OSError:
        return True


def _extended(root: str, index: Summary, sizes: dict[str, int]) -> Summary | None:
    """`index` with what the segments gained since (see the module's docstring), or None where that cannot be
    told from those bytes alone."""
    for name, covered in index.segments.items():
        if sizes.get(name, -1) < covered or (sizes[name] > covered and _has_line(root, name, covered)):
            return None  # gone, cut, or grown by a writer that was alive then (not just a torn last line)
    new = Catalog(root)
    new.offsets, new.dropped = dict(index.segments), dict(index.dropped)
    new.refresh(force=True)
    if any(name in index.entries for name in new.by_name) or any(
            index.dropped.get(name) != time and name in index.entries for name, time in new.dropped.items()):
        return None
    added = Summary.of(new)
    return Summary(added.segments, added.dropped, {**index.entries, **added.entries})


_summaries: dict[str, tuple[dict[str, int], Summary]] = {}  # this process's, by store, with the sizes read
os.register_at_fork(after_in_child=_summaries.clear)


def summary(root: str, write: bool = True) -> Summary:
    """What the segments of the compact store in `root` say now, from its index where that is current (plus new
    segments about other experiments), else from every segment; the index is rewritten where it did not hold
    everything (`write`: where the store can be written to)."""
    sizes = _sizes(root)
    if sizes is None:
        return Summary({}, {}, {})
    cached = _summaries.get(root)
    if cached is not None and cached[0] == sizes:
        return cached[1]
    index = read_index(root)
    found = _extended(root, index, sizes) if index is not None else None
    if found is None:
        found = Summary.of(catalog(root, force=True))
    if write and found.segments and (index is None or (found.segments, found.dropped) != (index.segments,
                                                                                          index.dropped)):
        write_index(root, found)
    _summaries[root] = (sizes, found)
    return found


def refresh(root: str) -> None:
    """Bring the index of `root` up to date (at the end of a run, so that the next one plans from it)."""
    if os.path.isdir(root):
        summary(root)


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

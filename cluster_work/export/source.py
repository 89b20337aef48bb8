"""What the exporters read: a sweep's repetitions, found on disk as the store lays them out, and each one's
rows and state, read with the store's own readers (the store owns the format).

Finding changes without statting 10^5 files every second (`Watch`):
- New experiment folders show in their base folder's mtime, new repetition folders in the experiment's
  `log/` mtime: one stat of each sweep and base folder per poll finds new experiments at once.
- A repetition's signature is three stats (size, mtime, inode of each file its rows and status can be in:
  `RepetitionPaths.files`, its one file or an earlier version's results.jsonl and status.json). Repetitions
  that changed in the last `hot_seconds` are "hot": checked every poll, so a row of
  a running repetition reaches the tracker within about one poll interval.
- Every other experiment (its `log/` folder and its repetitions) is checked in a round robin of at most
  `budget` stats per poll: a sweep of N repetitions is looked at whole every 2N / budget polls (every poll
  up to budget / 2 repetitions), and the file system never sees more than about budget + hot stats a poll.
- A compact store's repetitions (`store: compact`: no folder or file of their own) are its catalog's: each poll
  looks up its segments' sizes, reads the bytes they gained and looks at the repetitions those name only
  (`_CompactDocument`). Their keys, rows (the same JSON lines) and so their cursors are the default layout's.
"""
from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..compact_catalog import catalog
from ..compact_config import DOCUMENT_CONFIG_FILE, point_config, read_shared
from ..compact_store import CompactExperimentStore, CompactRepetition
from ..config import flatten_mapping
from ..paths import EXPORT_FOLDER, LOG_FOLDER, RepetitionPaths, compact_root, export_key, log_folder
from ..repetition_state import decide
from ..rows import parse_results
from ..store import ExperimentStore, RepetitionStore
from ..vocabulary import RepetitionState

Signature = tuple[Any, ...]


@dataclass(frozen=True)
class Repetition:
    """One repetition as the trackers name it: `key` is `<base>/<params>/rep_NN` below `sweep`."""

    key: str
    sweep: str
    folder: str  # the experiment's folder
    experiment: str  # its expanded name
    base: str
    rep: int
    params: dict[str, Any] = field(default_factory=dict)  # flattened: {"model.width": 8}
    iterations: int = 0
    root: str = ""  # its compact store's folder ('': the default layout's folder per point)

    @property
    def store(self) -> RepetitionStore | CompactRepetition:
        if self.root:
            return CompactExperimentStore(self.root, self.experiment, self.folder).repetition(self.rep)
        return ExperimentStore(self.folder).repetition(self.rep)


@dataclass(frozen=True)
class Snapshot:
    """A repetition's files at one moment: its rows (the store's prefix of whole rows), the bytes that hold
    them, and its state. `detail`: why a campaign stopped it, or the error it failed with."""

    rows: list[dict[str, Any]]
    data: bytes
    end: int  # the rows are data[:end]
    state: RepetitionState
    detail: str = ""

    @property
    def final(self) -> bool:
        return self.state in (RepetitionState.FINISHED, RepetitionState.FAILED, RepetitionState.STOPPED)


def signature(files: tuple[str, ...]) -> Signature | None:
    """The stat signature of a repetition's `files` (`RepetitionPaths.files`: its rows and status in either layout;
    None: none exists)."""
    parts: list[tuple[int, int, int] | None] = []
    for path in files:
        try:
            stat = os.stat(path)
            parts.append((stat.st_size, stat.st_mtime_ns, stat.st_ino))
        except OSError:
            parts.append(None)
    return None if not any(parts) else tuple(parts)


def read_snapshot(repetition: Repetition) -> Snapshot:
    """The repetition's rows and state now (the state as `repetition_state` decides it)."""
    store = repetition.store
    prefix = parse_results(store.read_complete_lines())  # the same bytes in either layout: the same cursor
    rows, data = prefix.rows, prefix.data
    end = len(data) if data.count(b"\n") == len(rows) else prefix.end_of_row(len(rows))
    status = store.read_status()
    state = decide(status, repetition.iterations, len(rows), running=store.is_running())
    if state is RepetitionState.STOPPED:
        detail = str(status.get("reason", ""))
    elif state is RepetitionState.FAILED:
        detail = str(status.get("error", ""))
    else:
        detail = ""
    return Snapshot(rows, data, end, state, detail)


def numeric_columns(row: dict[str, Any]) -> dict[str, float]:
    """A row's numeric columns but its iteration (bools are no metric)."""
    return {column: float(value) for column, value in row.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and column != "iteration"}


def row_time(t0: float, row: dict[str, Any]) -> float:
    """A row's time in seconds: the run's start plus its repetition_time (else its iteration)."""
    offset = row.get("repetition_time")
    if not isinstance(offset, (int, float)) or isinstance(offset, bool) or not math.isfinite(offset):
        offset = row.get("iteration", 0)
    return t0 + float(offset)


@dataclass
class _Experiment:
    folder: str
    sweep: str
    log_mtime: int | None = None
    reps: list[int] = field(default_factory=list)
    config_mtime: int | None = None
    info: tuple[str, str, dict[str, Any], int] | None = None  # name, base, params, iterations
    known: dict[int, tuple[Repetition, tuple[str, ...]]] = field(default_factory=dict)  # for `info`, by rep


class Watch:
    """The repetitions below some sweep folders, and which of them to look at in each poll (see the module).

    `sweeps`: (sweep folder, base names to follow or None for all); `skip`: folders that are no experiments'
    (the trackers' own output folders)."""

    def __init__(self, sweeps: Iterable[tuple[str, frozenset[str] | None]], skip: Iterable[str] = (),
                 budget: int = 4000, hot_seconds: float = 30.0):
        self.sweeps = list(sweeps)
        self.skip = {os.path.abspath(path) for path in skip}
        self.budget, self.hot_seconds = budget, hot_seconds
        self._mtimes: dict[str, int | None] = {}
        self._bases: dict[str, list[str]] = {}  # sweep folder -> its base folders
        self._candidates: dict[str, set[str]] = {}  # base folder -> folders that may hold an experiment
        self._experiments: dict[str, _Experiment] = {}
        self._order: list[str] = []  # experiment folders, in round-robin order
        self._next = 0
        self._hot: dict[str, float] = {}  # experiment folder -> when one of its repetitions last changed
        self._compact: dict[str, _CompactDocument] = {}  # base folder -> its compact store

    def touch(self, repetition: Repetition, now: float) -> None:
        """`repetition` changed: look at its experiment in every poll for the next `hot_seconds`."""
        self._hot[repetition.folder] = now

    def poll(self, now: float | None = None, everything: bool = False) -> Iterator[tuple[Repetition, Signature | None]]:
        """The repetitions to look at now, with their signatures: the hot ones and the round robin's share
        (`everything`: all of them). A repetition whose folder vanished comes once more with None."""
        now = time.monotonic() if now is None else now
        fresh = self._discover()
        chosen = dict.fromkeys(fresh)
        for folder, since in list(self._hot.items()):
            if now - since > self.hot_seconds:
                del self._hot[folder]
            else:
                chosen[folder] = None
        stats, count = sum(len(self._experiments[f].reps) * 2 + 1 for f in chosen if f in self._experiments), 0
        while self._order and count < len(self._order) and (everything or stats < self.budget):
            folder = self._order[self._next % len(self._order)]
            self._next = (self._next + 1) % len(self._order)
            count += 1
            if folder not in chosen:
                chosen[folder] = None
                stats += len(self._experiments[folder].reps) * 3 + 1
        for folder in chosen:
            experiment = self._experiments.get(folder)
            if experiment is not None:
                yield from self._check(experiment)
        for compact in self._compact.values():
            yield from compact.poll()

    def _check(self, experiment: _Experiment) -> Iterator[tuple[Repetition, Signature | None]]:
        logs = log_folder(experiment.folder)
        mtime = _mtime(logs)
        if mtime != experiment.log_mtime or mtime is None:
            gone = set(experiment.reps)
            experiment.reps = ExperimentStore(experiment.folder).repetition_numbers()
            experiment.log_mtime = mtime
            gone -= set(experiment.reps)
        else:
            gone = set()
        if not experiment.reps and not gone:
            return
        info = self._info(experiment)
        if info is None:
            return
        for rep in sorted(set(experiment.reps) | gone):
            known = experiment.known.get(rep)
            if known is None:  # built once per repetition (and config): a poll then costs two stats a repetition
                name, base, params, iterations = info
                paths = RepetitionPaths.of(experiment.folder, rep)
                known = experiment.known[rep] = (
                    Repetition(export_key(experiment.folder, experiment.sweep, rep), experiment.sweep,
                               experiment.folder, name, base, rep, params, iterations),
                    paths.files)
            yield known[0], None if rep in gone else signature(known[1])

    def _info(self, experiment: _Experiment) -> tuple[str, str, dict[str, Any], int] | None:
        """The experiment's name, base name, flattened params and iterations, from its stored config (read
        again when the config changed, as `-I` rewrites it)."""
        store = ExperimentStore(experiment.folder)
        mtime = _mtime(store.config_file)
        if mtime != experiment.config_mtime or experiment.info is None:
            config = store.read_config() if mtime is not None else None
            if not isinstance(config, dict):
                return experiment.info
            name = str(config.get("name", os.path.basename(experiment.folder)))
            base = str(config.get("experiment_name", name))
            iterations = config.get("iterations")
            experiment.info = (name, base, flatten_mapping(config.get("params") or {}),
                               iterations if isinstance(iterations, int) else 0)
            experiment.known.clear()
            experiment.config_mtime = mtime
        return experiment.info

    def _discover(self) -> list[str]:
        """Find new experiment folders (base folders' and sweep folders' mtimes tell where to look); return
        them, to be looked at now."""
        fresh = []
        for sweep, bases in self.sweeps:
            if self._changed(sweep):
                self._bases[sweep] = [folder for folder in _subfolders(sweep)
                                      if (bases is None or os.path.basename(folder) in bases)
                                      and os.path.basename(folder) != EXPORT_FOLDER
                                      and os.path.abspath(folder) not in self.skip]
            for base in self._bases.get(sweep, []):
                if base in self._compact:
                    continue
                candidates = self._candidates.setdefault(base, set())
                if self._changed(base):
                    candidates.update({base, *(f for f in _subfolders(base) if os.path.basename(f) != LOG_FOLDER)})
                    if os.path.isdir(compact_root(base)):
                        # a compact store's document: its points have no folders (one made for what an experiment
                        # writes holds no experiment); the experiment folders there now (of the default layout,
                        # before the document became compact) are followed, and the base is not looked at again
                        self._compact[base] = _CompactDocument(base, sweep)
                        del self._candidates[base]
                        candidates = {f for f in candidates if ExperimentStore(f).exists()}
                for folder in sorted(candidates):
                    if folder in self._experiments:
                        candidates.discard(folder)
                    elif ExperimentStore(folder).exists():  # its config is written before its first row
                        self._experiments[folder] = _Experiment(folder, sweep)
                        self._order.append(folder)
                        candidates.discard(folder)
                        fresh.append(folder)
                    elif not os.path.isdir(folder):
                        candidates.discard(folder)
        return fresh

    def _changed(self, folder: str) -> bool:
        mtime = _mtime(folder)
        # a folder changed within the file system's timestamp granularity may change again unseen: look again
        changed = mtime != self._mtimes.get(folder, -1) or (mtime is not None and time.time_ns() - mtime < 2e9)
        self._mtimes[folder] = mtime
        return changed


class _CompactDocument:
    """The repetitions of one compact store (a document's, in `folder`): its catalog, read incrementally each
    poll (a stat per segment and the bytes they gained), says which repetitions had new events (`followers`),
    so that a poll looks at those only, whatever the sweep's size. A repetition's signature is what its
    events are (claims, events of them, its status's time): the same in every process that reads them."""

    def __init__(self, folder: str, sweep: str):
        self.folder, self.sweep, self.root = folder, sweep, compact_root(folder)
        self._reps: dict[str, set[int]] = {}  # by experiment: its repetitions seen (to tell one -d forgot)
        self._shared: tuple[int | None, dict[str, Any] | None] = (None, None)  # document.json's mtime, content
        self._touched: set[tuple[str, int]] | None = None  # this watch's, in the catalog's followers

    def poll(self) -> Iterator[tuple[Repetition, Signature | None]]:
        known = catalog(self.root, force=True)
        if self._touched is None:  # the first look: every repetition
            self._touched = set()
            known.followers.append(self._touched)
            touched = {(name, rep) for name, reps in known.by_name.items() for rep in reps}
        else:
            touched = set(self._touched)
            self._touched.clear()
        if not touched:
            return
        mtime = _mtime(os.path.join(self.root, DOCUMENT_CONFIG_FILE))
        if mtime != self._shared[0] or mtime is None:
            self._shared = (mtime, read_shared(self.root))
        at_of = {name: at for at, name in known.names_at.items()}
        names: dict[str, tuple[set[int], tuple[str, str, dict[str, Any], int]]] = {}
        for name, rep in sorted(touched):
            if name not in names:
                reps = set(known.repetition_numbers(name))
                given = (known.repetition(name, r).params for r in sorted(reps))  # as read_config takes them
                params: Any = next((p for p in given if p is not None), {})
                folder = os.path.join(self.folder, at_of[name]) if at_of.get(name) else self.folder
                config = point_config(self.root, name, params, folder, self._shared[1])
                iterations = config.get("iterations")
                names[name] = (reps, (folder, str(config.get("experiment_name", os.path.basename(self.folder))),
                                      flatten_mapping(params or {}), iterations if isinstance(iterations, int) else 0))
            reps, (folder, base, params, iterations) = names[name]
            repetition = Repetition(export_key(folder, self.sweep, rep), self.sweep, folder, name, base, rep, params,
                                    iterations, self.root)
            seen = self._reps.setdefault(name, set())
            if rep in reps:
                seen.add(rep)
                saved = known.repetition(name, rep)
                yield repetition, ("compact", len(saved.claims), sum(len(claim.events) for claim in saved.claims),
                                   saved.status[0] if saved.status is not None else None)
            elif rep in seen:  # forgotten (-d): once more, with None
                seen.discard(rep)
                yield repetition, None


def _mtime(path: str) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _subfolders(path: str) -> list[str]:
    try:
        return sorted(entry.path for entry in os.scandir(path) if entry.is_dir(follow_symlinks=False))
    except OSError:
        return []

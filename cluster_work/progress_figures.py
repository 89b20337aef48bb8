"""The figures of -p/-P and their --json: per repetition and experiment, from the files, and runs of alike
experiments' (summed per base experiment and sweep by progress_sums).

A sweep of 10^6 experiments is summed without 10^6 objects: each document's folder is listed once, and
its experiments whose folders do not exist form `PendingRun`s (all alike: every repetition pending, nothing
measured), whose figures count in bulk; they are made one by one only where they are shown one by one (-P,
--json). A compact store's document is read from its index BLOCK experiments at a time, and so is a document of
the default layout whose folder index (`folder_index`, written by its last run) holds entries: its experiments
that it holds nothing of (pending) and those whose every repetition it says is finished form
`PendingOrFinishedRun`s, in any order (a half-done sweep's finished points may alternate with pending ones),
whose figures differ only in name and, a finished one's, measured iteration time (summed from the index's
per-repetition sums, without an object per experiment).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import operator
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from . import bulk_runs
from .attempts_index import AttemptIndex
from .bulk_runs import Known
from .compact_columns import Columns
from .compact_index import SummaryStore
from .compact_process import is_held
from .compact_store import store_of
from .expansion import ExpandedDocument, ExpandedExperiment
from .folder_index import FolderIndex
from .paths import compact_root, experiment_folder
from .repetition_state import read_repetition, status_says_finished
from .vocabulary import Record, RepetitionState


@dataclass
class RepetitionProgress:
    rep: int
    state: str
    iterations_done: int
    mean_iteration_time: float | None
    error: str | None = None
    suspected_runs: int = 0  # runs that died while it ran, in a row at the same iteration (see quarantine)


@dataclass
class ExperimentProgress:
    """The figures of one experiment (or, summed, of a base experiment or a whole sweep)."""

    name: str
    repetitions: int
    iterations: int  # all iterations the experiment's repetitions must run
    iterations_done: int
    states: dict[str, int]
    iteration_seconds: float  # sum of measured iteration times (for the mean)
    iterations_timed: int
    work_left: float | None  # seconds of one worker still needed (None: unknown; see `estimated`)
    reps: list[RepetitionProgress] = field(default_factory=list)
    work_measured: float = 0.0  # of work_left: iterations left at their repetition's or experiment's mean time
    iterations_unmeasured: int = 0  # iterations left with no measured time of their own experiment

    @property
    def mean_iteration_time(self) -> float | None:
        return self.iteration_seconds / self.iterations_timed if self.iterations_timed else None

    def as_dict(self, full: bool) -> dict[str, Any]:
        data: dict[str, Any] = {"name": self.name, "repetitions": self.repetitions, "iterations_total": self.iterations,
                "iterations_done": self.iterations_done,
                "done_share": self.iterations_done / self.iterations if self.iterations else 1.0,
                **{state: self.states.get(state, 0) for state in STATES},
                "mean_iteration_time": self.mean_iteration_time, "work_left_seconds": self.work_left}
        if full:
            data["repetition_list"] = [vars(rep) for rep in self.reps]
        return data


STATES = tuple(state.value for state in (
    RepetitionState.FINISHED, RepetitionState.RUNNING, RepetitionState.FAILED, RepetitionState.QUARANTINED,
    RepetitionState.PARTIAL, RepetitionState.PENDING, RepetitionState.STOPPED))


def read_progress(experiment: ExpandedExperiment, attempts: AttemptIndex | None = None) -> ExperimentProgress:
    """The state of each repetition, from what is on disk (safe while a run writes); `attempts`: its sweep
    folder's attempts journals (which repetitions runs died under: quarantined or suspected)."""
    return _progress(experiment.name, experiment.repetitions, experiment.iterations, store_of(experiment), attempts)


def _progress(name: str, repetitions: int, iterations: int, store: Any,
              attempts: AttemptIndex | None) -> ExperimentProgress:
    """Each repetition's figures, read from `store`; whether a live run holds it is asked only where a live process
    holds an attempts journal of the sweep (`AttemptIndex.held`; else none can)."""
    reps = []
    check_lock = attempts is None or attempts.held
    for rep in range(repetitions):
        view = read_repetition(store.repetition(rep), iterations, check_lock=check_lock,
                               attempts=attempts.of(name, rep) if attempts is not None else ())
        suspicion = view.suspicion
        error = view.status.get("error") if view.state == RepetitionState.FAILED else None
        if suspicion is not None:
            error = suspicion.describe() + (f"; before: {error}" if error else "")
        reps.append(RepetitionProgress(rep, view.state.value, view.iterations_saved, view.mean_iteration_time, error,
                                       suspicion.runs if suspicion is not None else 0))
    return _figures(name, iterations, reps)


def _figures(name: str, iterations: int, reps: list[RepetitionProgress]) -> ExperimentProgress:
    timed = [(r.mean_iteration_time, r.iterations_done) for r in reps if r.mean_iteration_time is not None]
    seconds, count = sum(t * n for t, n in timed), sum(n for _, n in timed)
    mean = seconds / count if count else None
    measured, unmeasured = 0.0, 0
    for r in reps:  # (a finished repetition adds 0 * its finite mean: 0.0, as `finished_times` counts on)
        stopped = r.state == RepetitionState.STOPPED.value  # a stopped repetition has no work left
        left = 0 if stopped else iterations - r.iterations_done
        each = r.mean_iteration_time or mean
        if each is None:
            unmeasured += left
        else:
            measured += left * each
    states = {state: sum(r.state == state for r in reps) for state in STATES}
    return ExperimentProgress(name, len(reps), len(reps) * iterations, sum(r.iterations_done for r in reps), states,
                              seconds, count, None if unmeasured else measured, reps, measured, unmeasured)


@dataclass(frozen=True)
class PendingRun:
    """Experiments `start` to `stop - 1` of `document`, none of which has a folder: each one's figures are
    `figures` (named after the first), what `read_progress` gives an experiment without files."""

    document: ExpandedDocument
    start: int
    stop: int
    figures: ExperimentProgress

    @classmethod
    def of(cls, document: ExpandedDocument, start: int, stop: int) -> PendingRun:
        pending = RepetitionState.PENDING.value
        reps = [RepetitionProgress(rep, pending, 0, None) for rep in range(document.document["repetitions"])]
        return cls(document, start, stop, _figures(document[start].name, document.document["iterations"], reps))

    def __len__(self) -> int:
        return self.stop - self.start

    def names(self) -> Iterable[str]:
        """Each experiment's name."""
        return itertools.islice(self.document.names(self.start), len(self))

    def parts(self) -> Iterator[ExperimentProgress]:
        """Each experiment's figures."""
        return (dataclasses.replace(self.figures, name=name) for name in self.names())


@dataclass(frozen=True, eq=False)
class PendingOrFinishedRun:
    """Experiments `start` to `stop - 1` of a document read from an index (a compact store's, or the default
    layout's folder index), each pending (nothing of it on disk) or finished (every repetition, as
    `finished_times` decides), in any order: `finished` has a byte per
    experiment, 1 where it is finished (a half-done sweep whose finished points alternate with pending ones is
    summed in runs of up to BLOCK experiments, not in runs of one). A pending one's figures are `pending`, a
    finished one's `figures`, each but for its name and, a finished one's, its measured iteration time (its
    `seconds` and `timed` as `_figures` sums them), so a group sums them without making them; each one is made
    (a finished one read from the index, `parts`) only where shown one by one."""

    document: ExpandedDocument
    start: int
    stop: int
    store: Known  # what a finished one's figures are read from where shown one by one
    attempts: AttemptIndex
    finished: bytes
    names: tuple[str, ...]  # of its finished experiments, in order
    folders: tuple[str, ...]  # each finished one's folder below the document's, as the index holds it
    seconds: tuple[Any, ...]
    timed: tuple[int, ...]
    pending: ExperimentProgress
    figures: ExperimentProgress

    def __len__(self) -> int:
        return self.stop - self.start

    def each(self) -> Iterator[tuple[str, bool]]:
        """Each experiment's name and whether it is finished, in order."""
        return zip(self.document.names(self.start), map(bool, self.finished))

    def finished_parts(self) -> Iterator[ExperimentProgress]:
        """Each finished experiment's figures, read as an experiment of the index that is not in a run is."""
        document = self.document.document
        return (_progress(name, document["repetitions"], document["iterations"], self.store.experiment(
            name, experiment_folder(self.document.base_folder, at)), self.attempts)
                for name, at in zip(self.names, self.folders))

    def parts(self) -> Iterator[ExperimentProgress]:
        """Each experiment's figures."""
        finished = self.finished_parts()
        return (next(finished) if done else dataclasses.replace(self.pending, name=name) for name, done in self.each())


def finished_times(running: Callable[[str, int], bool] | None, key: str, reps: list[list[Any]], repetitions: int,
                   iterations: int) -> tuple[Any, int] | None:
    """(seconds, timed) of the experiment whose repetitions an index holds as `reps`, as `_progress` sums them,
    where each of its `repetitions` repetitions is FINISHED as `read_repetition` decides (no live process holds
    it: `running(key, rep)`, None where none can; not stopped; its status says finished, or all its rows are
    there) with a finite mean iteration time or none; None otherwise (it is read as itself). (Asked of each
    finished experiment of a half-done sweep: 10^6 times, so written for speed.)"""
    means: list[tuple[int, Any]] = []  # (rep, its mean), of those with one
    count = 0
    for rep, status, rows, seconds, timed in reps:
        if not 0 <= rep < repetitions:
            continue
        count += 1
        if running is not None and running(key, rep):
            return None
        if not status:  # (no status: its rows say it all)
            if rows < iterations:
                return None
            if timed:
                means.append((rep, seconds / timed))  # (`RepetitionSummary.rows_mean`)
            continue
        if status.get("state") == _STOPPED:
            return None
        mean = status.get("mean_iteration_time")
        says = status_says_finished(status, iterations, None)
        if not isinstance(mean, (int, float)):
            if says:
                continue  # the status answered: the rows' mean is not asked
            if rows < iterations:
                return None
            mean = seconds / timed if timed else None
        elif not says and rows < iterations:
            return None
        if mean is not None:
            means.append((rep, mean))
    if count != repetitions:
        return None
    means.sort()  # (as `_progress` takes them: by repetition; no two have the same)
    seconds = sum([mean * iterations for _, mean in means])
    return (seconds, iterations * len(means)) if math.isfinite(seconds) else None


_STOPPED = Record.STOPPED.value


def usual_times(store: SummaryStore, columns: Columns, positions: list[int], repetitions: int,
                iterations: int) -> tuple[tuple[Any, ...], tuple[int, ...]] | None:
    """Each experiment's (seconds, timed) as `finished_times` gives them, of the experiments at `positions` of an
    index whose experiments are all usual (`Columns.usual`: one repetition, number 0, with no status and timed
    rows) where each has all its rows; None where any is not (each is then asked of `finished_times`). Made by C
    loops over the columns, not a Python call per experiment (they are 5 x 10^5 in a half-done 10^6-point sweep)."""
    if repetitions != 1 or store.locked or not positions or not columns.usual or \
            not columns.usual_done(positions, iterations):
        return None
    return _usual_totals(map(columns.seconds.__getitem__, positions), map(columns.timed.__getitem__, positions),
                         iterations)


def usual_folder_times(found: list[list[Any] | None], repetitions: int,
                       iterations: int) -> tuple[tuple[Any, ...], tuple[int, ...]] | None:
    """Each experiment's (seconds, timed) as `finished_times` gives them where no live run can hold a repetition,
    of experiments whose repetitions a folder index holds as `found` (`FolderIndex.finished_repetitions`), where
    each is usual (one repetition, number 0, without a status, all its rows there and timed); None where any is
    not (each is then asked of `finished_times`). C loops, as `usual_times`: the index of a half-done 10^6-point
    sweep holds 5 x 10^5 such experiments."""
    if repetitions != 1 or not found or None in found:
        return None
    held = cast(list[list[Any]], found)  # (none is None)
    if set(map(len, held)) != {1}:
        return None
    reps = list(map(operator.itemgetter(0), held))  # (each [rep, status, rows, seconds, timed])
    if set(map(operator.itemgetter(0), reps)) != {0} or any(map(operator.itemgetter(1), reps)) or \
            min(map(operator.itemgetter(2), reps)) < iterations or min(map(operator.itemgetter(4), reps)) <= 0:
        return None
    return _usual_totals(map(operator.itemgetter(3), reps), map(operator.itemgetter(4), reps), iterations)


def _usual_totals(seconds: Iterable[Any], timed: Iterable[int],
                  iterations: int) -> tuple[tuple[Any, ...], tuple[int, ...]] | None:
    """(seconds, timed) of usual experiments (see `usual_times`) whose one repetition's rows took `seconds`, of
    which `timed` were timed, as `finished_times` sums them (0 + mean x iterations: the same float); None where one
    is not finite."""
    means = map(operator.truediv, seconds, timed)
    totals = tuple(map(operator.add, itertools.repeat(0), map(operator.mul, means, itertools.repeat(iterations))))
    return (totals, (iterations,) * len(totals)) if all(map(math.isfinite, totals)) else None


Part = ExperimentProgress | PendingRun | PendingOrFinishedRun  # one experiment's figures, or a run of them
Bulk = (PendingRun, PendingOrFinishedRun)


def each_experiment(parts: Iterable[Part]) -> Iterator[ExperimentProgress]:
    """The figures of every experiment of `parts`, in order."""
    for part in parts:
        yield from part.parts() if isinstance(part, Bulk) else (part,)


def experiments_in(parts: Iterable[Part]) -> int:
    return sum(len(part) if isinstance(part, Bulk) else 1 for part in parts)


def first_name(parts: Sequence[Part]) -> str:
    part = parts[0]
    return part.name if isinstance(part, ExperimentProgress) else next(iter(part.document.names(part.start)))


def compact_parts(document: ExpandedDocument, attempts: AttemptIndex) -> Iterator[Part]:
    """The figures of a compact store's document from its index: a PendingRun where it holds nothing of it,
    else PendingOrFinishedRuns of experiments it holds nothing of and finished ones (see `finished_times`), and
    each other experiment's own (without making it: its name from the axes). Looked at BLOCK experiments at a
    time: their names found in the index at once, only the held ones one by one; the runs' shared figures are
    made once."""
    store = SummaryStore(compact_root(document.base_folder))
    columns = store.summary.columns
    held = columns.position
    repetitions, iterations = document.document["repetitions"], document.document["iterations"]
    if not held or not len(document):
        yield from (PendingRun.of(document, 0, len(document)),) if len(document) else ()
        return
    shared = _shared_figures(document)
    running = functools.partial(is_held, store.root) if store.locked else None
    names = document.names()

    def read(position: int, name: str, folder: str) -> ExperimentProgress:
        return _progress(name, repetitions, iterations, store.experiment(
            name, experiment_folder(document.base_folder, folder)), attempts)

    for block in range(0, len(document), bulk_runs.BLOCK):
        block_names = list(itertools.islice(names, bulk_runs.BLOCK))
        found: list[int | None] = list(map(held.get, block_names))  # each one's position in the index, if held
        mask = bytes(map(operator.is_not, found, itertools.repeat(None)))
        positions: list[int] = list(itertools.compress(found, mask))  # type: ignore[arg-type]
        finished_names = tuple(itertools.compress(block_names, mask))
        folders = tuple(map(columns.at.__getitem__, positions))
        usual = usual_times(store, columns, positions, repetitions, iterations)
        if usual is not None:  # all it holds finished (the usual case): made at once
            yield PendingOrFinishedRun(document, block, block + len(found), store, attempts, mask, finished_names,
                                       folders, *usual, *shared)
            continue
        times = list(map(finished_times, itertools.repeat(running), finished_names, map(columns.repetitions, positions),
                         itertools.repeat(repetitions), itertools.repeat(iterations)))
        yield from _block_parts(document, block, mask, finished_names, folders, times, store, attempts, shared, read)


def folder_parts(document: ExpandedDocument, present: set[str], index: FolderIndex,
                 attempts: AttemptIndex) -> Iterator[Part]:
    """The figures of a document of the default layout from its folder index (read, never written), as
    `compact_parts`: PendingOrFinishedRuns of experiments without a folder (pending) and finished ones (their
    entries valid now, `FolderIndex.finished_repetitions`: a stat per repetition file, none of config.yml; each
    repetition finished as `finished_times` decides, asked whether a live run holds it, as `read_repetition`
    asks: an open and a flock each, only where a live process holds an attempts journal of the sweep,
    `AttemptIndex.held`), and each other experiment read from its files. -p of a half-done 10^6-point sweep
    without a live run: a stat a finished one-repetition experiment instead of reading its files."""
    repetitions, iterations = document.document["repetitions"], document.document["iterations"]
    shared = _shared_figures(document)
    parts = document.folder_parts()
    running = index.is_running if attempts.held else None

    def read(position: int, name: str, folder: str) -> ExperimentProgress:
        return read_progress(document[position], attempts)

    for block in range(0, len(document), bulk_runs.BLOCK):
        block_parts = list(itertools.islice(parts, bulk_runs.BLOCK))
        mask = bytes(map(present.__contains__, block_parts))
        held = list(itertools.compress(block_parts, mask))
        found = index.finished_repetitions(held, iterations)
        finished_names = tuple(document.names_of(held))  # (of those on disk only: no pending one's name is made)
        usual = usual_folder_times(found, repetitions, iterations) if running is None else None
        if usual is not None:  # all it holds finished (the usual case): made at once
            yield PendingOrFinishedRun(document, block, block + len(mask), index, attempts, mask, finished_names,
                                       tuple(held), *usual, *shared)
            continue
        times = [None if reps is None else finished_times(running, part, reps, repetitions, iterations)
                 for part, reps in zip(held, found)]
        yield from _block_parts(document, block, mask, finished_names, tuple(held), times, index, attempts, shared,
                                read)


def _shared_figures(document: ExpandedDocument) -> tuple[ExperimentProgress, ExperimentProgress]:
    """The figures every pending, and every finished, experiment of `document` has but for its name and, a
    finished one's, its measured iteration time."""
    repetitions, iterations = document.document["repetitions"], document.document["iterations"]
    pending = PendingRun.of(document, 0, 0).figures
    finished_reps = [RepetitionProgress(rep, RepetitionState.FINISHED.value, iterations, None)
                     for rep in range(repetitions)]
    return pending, _figures(pending.name, iterations, finished_reps)


def _block_parts(document: ExpandedDocument, block: int, mask: bytes, names: tuple[str, ...],
                 folders: tuple[str, ...], times: list[tuple[Any, int] | None], store: Known, attempts: AttemptIndex,
                 shared: tuple[ExperimentProgress, ExperimentProgress],
                 read: Callable[[int, str, str], ExperimentProgress]) -> Iterator[Part]:
    """The figures of experiments `block` to `block + len(mask) - 1` of `document`: those with a byte 1 in `mask`
    are on disk (`names`, `folders` and `times`, their (seconds, timed) where finished, else None, in order),
    the others pending. PendingOrFinishedRuns of pending and finished ones, and between them each other one's
    own figures, `read(its position in the document, its name, its folder)`."""
    def run(start: int, stop: int, marks: bytes, done: list[tuple[str, str, Any, int]]) -> PendingOrFinishedRun:
        each: Iterable[tuple[Any, ...]] = zip(*done) if done else ((), (), (), ())
        found, at, seconds, timed = each
        return PendingOrFinishedRun(document, start, stop, store, attempts, marks, tuple(found), tuple(at),
                                    tuple(seconds), tuple(timed), *shared)

    if None not in times:  # all it holds finished (the usual case): made at once
        seconds, timed = zip(*times) if times else ((), ())
        yield PendingOrFinishedRun(document, block, block + len(mask), store, attempts, mask, names, folders,
                                   tuple(seconds), tuple(timed), *shared)
        return
    marks, start = bytearray(len(mask)), 0  # the run gathered: from block + start on
    done: list[tuple[str, str, Any, int]] = []  # (name, folder, seconds, timed) of each finished one of it
    for held, offset in enumerate(itertools.compress(range(len(mask)), mask)):
        found_times = times[held]
        if found_times is not None:
            marks[offset] = 1
            done.append((names[held], folders[held], *found_times))
            continue
        if offset > start:
            yield run(block + start, block + offset, bytes(marks[start:offset]), done)
        yield read(block + offset, names[held], folders[held])
        start, done = offset + 1, []
    if start < len(mask):
        yield run(block + start, block + len(mask), bytes(marks[start:]), done)

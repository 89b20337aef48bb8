"""The figures of -p/-P and their --json: per repetition, experiment, base experiment and sweep, from the files.

A sweep of 10^6 experiments is summed without 10^6 objects: each document's folder is listed once, and
its experiments whose folders do not exist form `PendingRun`s (all alike: every repetition pending, nothing
measured), whose figures count in bulk; they are made one by one only where they are shown one by one (-P,
--json). In a compact store, runs of experiments whose every repetition its index says is finished form
`FinishedRun`s, whose figures differ only in name and measured iteration time (summed from the index's
per-repetition sums, without an object per experiment). Every figure of a group is `sum()` over its
experiments' figures in order, repeated ones included, so it is exactly the figure of summing each experiment
(the same value and type, whatever `sum` does; a column of ints is summed as value times run length).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attempts import AttemptIndex, read_index
from .bulk_runs import far_in, folder_runs, present_folders
from .compact_index import RepetitionSummary, SummaryStore
from .compact_store import is_compact, is_held, store_of
from .expansion import ExpandedDocument, ExpandedExperiment, Expansion, expand_path
from .kinds import CampaignKind, kinds_in
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
    reps = []
    for rep in range(repetitions):
        view = read_repetition(store.repetition(rep), iterations,
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
        if far_in(self.start, self.stop):  # each name made: not every name before it
            return (self.document[position].name for position in range(self.start, self.stop))
        return itertools.islice(self.document.names(), self.start, self.stop)

    def parts(self) -> Iterator[ExperimentProgress]:
        """Each experiment's figures."""
        return (dataclasses.replace(self.figures, name=name) for name in self.names())


@dataclass(frozen=True, eq=False)
class FinishedRun:
    """Experiments `start` to `stop - 1` of a compact store's document whose every repetition its index says is
    finished (as `read_repetition` decides): their figures are `figures` (named after the first) but for their
    names and measured iteration times, each one's `seconds` and `timed` as `_figures` sums them, so a group
    sums them without making them; each one is read from the index (`parts`) only where shown one by one."""

    document: ExpandedDocument
    start: int
    stop: int
    store: SummaryStore
    attempts: AttemptIndex
    names: tuple[str, ...]
    folders: tuple[str, ...]  # each one's folder below the document's, as the index holds it
    seconds: tuple[Any, ...]
    timed: tuple[int, ...]
    figures: ExperimentProgress

    def __len__(self) -> int:
        return self.stop - self.start

    def parts(self) -> Iterator[ExperimentProgress]:
        """Each experiment's figures, read as an experiment of the index that is not in a run is."""
        document = self.document.document
        return (_progress(name, document["repetitions"], document["iterations"], self.store.experiment(
            name, experiment_folder(self.document.base_folder, at)), self.attempts)
                for name, at in zip(self.names, self.folders))


def finished_times(store: SummaryStore, name: str, reps: list[list[Any]], repetitions: int,
                   iterations: int) -> tuple[Any, int] | None:
    """(seconds, timed) of the experiment `name` whose repetitions the index holds as `reps`, as `_progress`
    sums them, where each of its `repetitions` repetitions is FINISHED as `read_repetition` decides (no live
    process holds it, not stopped; its status says finished, or all its rows are there) with a finite mean
    iteration time or none; None otherwise (it is read as itself)."""
    held = {rep: fields for rep, *fields in reps}
    means = []
    for rep in range(repetitions):
        fields = held.get(rep)
        if fields is None or (store.locked and is_held(store.root, name, rep)):
            return None
        found = RepetitionSummary(*fields)
        status = found.status or {}
        if status.get("state") == Record.STOPPED.value:
            return None
        mean = status.get("mean_iteration_time")
        if not isinstance(mean, (int, float)):
            if status_says_finished(status, iterations, None):
                mean = None  # the status answered: the rows' mean is not asked
            elif found.rows >= iterations:
                mean = found.rows_mean
            else:
                return None
        elif not status_says_finished(status, iterations, None) and found.rows < iterations:
            return None
        if mean is not None:
            means.append(mean)
    seconds = sum(mean * iterations for mean in means)
    return (seconds, iterations * len(means)) if math.isfinite(seconds) else None


Part = ExperimentProgress | PendingRun | FinishedRun  # one experiment's figures, or a run of alike ones'
Bulk = (PendingRun, FinishedRun)


def each_experiment(parts: Iterable[Part]) -> Iterator[ExperimentProgress]:
    """The figures of every experiment of `parts`, in order."""
    for part in parts:
        yield from part.parts() if isinstance(part, Bulk) else (part,)


def experiments_in(parts: Iterable[Part]) -> int:
    return sum(len(part) if isinstance(part, Bulk) else 1 for part in parts)


def first_name(parts: Sequence[Part]) -> str:
    return _figures_of(parts[0]).name


def _figures_of(part: Part) -> ExperimentProgress:
    """An experiment's figures, or a run's shared ones."""
    return part.figures if isinstance(part, Bulk) else part


def _seconds(figures: ExperimentProgress) -> Any:
    return figures.iteration_seconds


def _timed(figures: ExperimentProgress) -> int:
    return figures.iterations_timed


Weighted = list[tuple[ExperimentProgress, int, Any]]  # each part's figures, experiments, and the part if a run


def _weighted(parts: Iterable[Part]) -> Weighted:
    return [(part.figures, len(part), part) if isinstance(part, Bulk) else (part, 1, None) for part in parts]


def _sum(weighted: Weighted, figure: Callable[[ExperimentProgress], Any]) -> Any:
    """sum() of `figure` of each experiment, in order (a run's as often as it has experiments; a FinishedRun's
    seconds and timed iterations each one's own); where every one is an int, as the sum of each run's value
    times its length (the same int, without adding each experiment's)."""
    if figure is _seconds or figure is _timed:
        cells: list[tuple[Any, int]] = []
        for figures, n, part in weighted:
            if isinstance(part, FinishedRun):
                cells.extend(zip(part.seconds if figure is _seconds else part.timed, itertools.repeat(1)))
            else:
                cells.append((figure(figures), n))
    else:
        cells = [(figure(figures), n) for figures, n, _ in weighted]
    if all(type(value) is int for value, _ in cells):
        return sum(value * n for value, n in cells)
    return sum(itertools.chain.from_iterable(itertools.repeat(value, n) for value, n in cells))


def estimated(part: Part, mean: float | None) -> Part:
    """`part` with its iterations that have no measured time of their own experiment (it has not started)
    taken at `mean` seconds each; its work left stays unknown (None) without a `mean`."""
    if isinstance(part, PendingRun):
        return dataclasses.replace(part, figures=_estimated(part.figures, mean))
    if isinstance(part, FinishedRun):
        return part  # nothing left
    return _estimated(part, mean)


def _estimated(part: ExperimentProgress, mean: float | None) -> ExperimentProgress:
    if not part.iterations_unmeasured or mean is None:
        return part
    return dataclasses.replace(part, work_left=part.work_measured + part.iterations_unmeasured * mean)


def _mean(parts: Sequence[Part]) -> float | None:
    """`combine(..., parts).mean_iteration_time`, from the two sums it is made of."""
    weighted = _weighted(parts)
    timed = _sum(weighted, _timed)
    return _sum(weighted, _seconds) / timed if timed else None


def combine(name: str, parts: Sequence[Part]) -> ExperimentProgress:
    """The figures of several experiments together (a base experiment, the whole sweep)."""
    weighted = _weighted(parts)
    known = [(figures, n, part) for figures, n, part in weighted if figures.work_left is not None]
    everything = sum(n for _, n, _ in known) == sum(n for _, n, _ in weighted)
    return ExperimentProgress(
        name, _sum(weighted, lambda p: p.repetitions), _sum(weighted, lambda p: p.iterations),
        _sum(weighted, lambda p: p.iterations_done),
        {s: _sum(weighted, lambda p: p.states.get(s, 0)) for s in STATES},  # noqa: B023 (used at once)
        _sum(weighted, _seconds), _sum(weighted, _timed),
        _sum(known, lambda p: p.work_left) if everything else None, [], _sum(weighted, lambda p: p.work_measured),
        _sum(weighted, lambda p: p.iterations_unmeasured))


Report = tuple[dict[str, list[Part]], dict[str, ExperimentProgress], ExperimentProgress]


KindUnits = tuple[CampaignKind, list[Any]]  # a campaign kind, and what -p reports of it


def progress_report(experiments: Sequence[ExpandedExperiment], campaigns: Sequence[KindUnits] = ()) -> Report:
    """Per base experiment the progress of its expanded experiments (runs of pending ones as PendingRuns)
    and their row together, and the sweep's total.

    The work left of an experiment that has not started is estimated from the measured iteration times of
    its base experiment (the same document, so the same kind of work), else of the whole sweep; before
    anything was measured it is unknown (None), never zero. A campaign's kind may replace its row by what
    it plans (`CampaignKind.planned`: a steered campaign's journal, not every iteration of its grid)."""
    groups: dict[str, list[Part]] = {}
    for base, part in _parts(experiments):
        groups.setdefault(base, []).append(part)
    sweep_mean = _mean([p for parts in groups.values() for p in parts])
    bases = {}
    for base, parts in groups.items():
        mean = _mean(parts) or sweep_mean
        parts = groups[base] = [estimated(part, mean) for part in parts]
        alone = experiments_in(parts) == 1 and first_name(parts) == base
        bases[base] = next(each_experiment(parts)) if alone else combine(base, parts)
    for campaign, units in campaigns:
        bases.update(campaign.planned(units, bases, sweep_mean))
    return groups, bases, combine("total", list(bases.values()))


def _parts(experiments: Sequence[ExpandedExperiment]) -> Iterator[tuple[str, Part]]:
    """(base name, figures) of each experiment, those of a document without a folder as PendingRuns; each
    sweep folder's attempts journals read once."""
    attempts = functools.cache(read_index)

    if not isinstance(experiments, Expansion):
        yield from ((experiment.base_name, read_progress(experiment, attempts(experiment.sweep_path)))
                    for experiment in experiments)
        return
    for document in experiments.documents:
        if is_compact(document.document):  # no folder per experiment: its index says which it holds
            yield from ((document.base, part) for part in _compact_parts(document, attempts(expand_path(
                document.document["path"]))))
            continue
        for start, stop, exists in folder_runs(document, present_folders(document) or set()):
            if not exists:
                yield document.base, PendingRun.of(document, start, stop)
            for position in range(start, stop) if exists else ():
                experiment = document[position]
                yield document.base, read_progress(experiment, attempts(experiment.sweep_path))


def _compact_parts(document: ExpandedDocument, attempts: AttemptIndex) -> Iterator[Part]:
    """The figures of a compact store's document from its index: a PendingRun for each run of experiments it
    holds nothing of, a FinishedRun for each run of finished ones (see `finished_times`), each other
    experiment's own (without making it: its name from the axes). The runs' shared figures are made once
    and named after each run's first experiment."""
    store = SummaryStore(compact_root(document.base_folder))
    held = store.summary.entries
    repetitions, iterations = document.document["repetitions"], document.document["iterations"]
    if not held or not len(document):
        yield from (PendingRun.of(document, 0, len(document)),) if len(document) else ()
        return
    pending = PendingRun.of(document, 0, 0).figures
    finished_reps = [RepetitionProgress(rep, RepetitionState.FINISHED.value, iterations, None)
                     for rep in range(repetitions)]
    finished = _figures(pending.name, iterations, finished_reps)
    start, first = 0, pending.name  # the run of experiments without records being gathered, its first's name
    done: list[tuple[str, str, Any, int]] = []  # the finished run before it: (name, at, seconds, timed) of each

    def finished_run() -> Iterator[FinishedRun]:
        if done:
            names, folders, seconds, timed = zip(*done)
            yield FinishedRun(document, start - len(done), start, store, attempts, names, folders, seconds, timed,
                              dataclasses.replace(finished, name=names[0]))
            done.clear()

    for position, name in enumerate(document.names()):
        if position == start:
            first = name
        found = held.get(name)
        if found is None:
            continue
        times = finished_times(store, name, found[2], repetitions, iterations)
        if position > start:
            yield from finished_run()
            yield PendingRun(document, start, position, dataclasses.replace(pending, name=first))
        elif times is None:
            yield from finished_run()
        start = position + 1
        if times is not None:
            done.append((name, found[0], *times))
            continue
        experiment = store.experiment(name, experiment_folder(document.base_folder, found[0]))
        yield _progress(name, repetitions, iterations, experiment, attempts)
    yield from finished_run()
    if start < len(document):
        yield PendingRun(document, start, len(document), dataclasses.replace(pending, name=first))


def campaign_units(experiments: Sequence[ExpandedExperiment]) -> tuple[Sequence[ExpandedExperiment], list[KindUnits]]:
    """The experiments of the plain progress table (without those of kinds that show theirs apart; whole
    documents stay an Expansion), and per campaign kind among `experiments` what it reports (each kind's
    module only where a sweep has one). Whole documents are asked by their blocks, not experiment by
    experiment: a 10^6-point grid makes no experiment here."""
    documents = experiments.documents if isinstance(experiments, Expansion) else None
    configs = ([document.document for document in documents] if documents is not None
               else [experiment.config for experiment in experiments])
    campaigns = [(campaign, campaign.progress_units(experiments)) for campaign in kinds_in(configs)]
    campaigns = [(campaign, units) for campaign, units in campaigns if units]
    apart = [campaign.key for campaign, _ in campaigns if campaign.own_progress_rows]
    if not apart:
        return experiments, campaigns
    if documents is not None:
        return Expansion([d for d in documents if not any(key in d.document for key in apart)]), campaigns
    return [e for e in experiments if not any(key in e.config for key in apart)], campaigns

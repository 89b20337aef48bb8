"""The figures of -p/-P summed: per base experiment and sweep, from each experiment's or run's (progress_figures).

Every figure of a group is `sum()` over its experiments' figures in order, repeated ones included, so it is
exactly the figure of summing each experiment (the same value and type, whatever `sum` does; a column of ints is
summed as value times run length, a run's values that alternate are taken in order without a Python call each).
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple

from . import collector
from .attempts_index import read_index
from .bulk_runs import folder_runs, present_folders
from .compact_store import is_compact
from .expansion import ExpandedExperiment, Expansion, expand_path
from .folder_index import FolderIndex
from .kinds import CampaignKind, kinds_in
from .progress_figures import (
    STATES,
    ExperimentProgress,
    Part,
    PendingOrFinishedRun,
    PendingRun,
    compact_parts,
    each_experiment,
    experiments_in,
    first_name,
    folder_parts,
    read_progress,
)


def _seconds(figures: ExperimentProgress) -> Any:
    return figures.iteration_seconds


def _timed(figures: ExperimentProgress) -> int:
    return figures.iterations_timed


Figure = Callable[[ExperimentProgress], Any]


class Column(NamedTuple):
    """A figure of each experiment of a part: `cells` (values, each with how many experiments have it), `own`
    (each finished one's of a PendingOrFinishedRun, where they differ) and, where the cells' order is not the
    experiments' (the pending and finished experiments of a PendingOrFinishedRun), `each` giving it in order."""

    cells: list[tuple[Any, int]]
    own: tuple[Any, ...] = ()
    each: Callable[[], Iterator[Any]] | None = None

    def ints(self) -> bool:
        return all(type(value) is int for value, _ in self.cells) and set(map(type, self.own)) <= {int}

    def int_sum(self) -> int:
        return sum(value * n for value, n in self.cells) + sum(self.own)

    def values(self) -> Iterator[Any]:
        if self.each is not None:
            return self.each()
        return itertools.chain.from_iterable(itertools.repeat(value, n) for value, n in self.cells)


def _column(part: Part, figure: Figure) -> Column:
    if isinstance(part, PendingRun):
        return Column([(figure(part.figures), len(part))])
    if not isinstance(part, PendingOrFinishedRun):
        return Column([(figure(part), 1)])
    finished, pending = len(part.names), figure(part.pending)
    own = part.seconds if figure is _seconds else part.timed if figure is _timed else None  # each finished one's
    shared = figure(part.figures)
    cells = [(pending, len(part) - finished)] if len(part) > finished else []
    cells += [] if own is not None or not finished else [(shared, finished)]

    def each() -> Iterator[Any]:
        values = (itertools.repeat(pending), iter(own) if own is not None else itertools.repeat(shared))
        return map(next, map(values.__getitem__, part.finished))  # (in C: no Python call per experiment)
    return Column(cells, own or (), each)


def _sum(parts: Iterable[Part], figure: Figure) -> Any:
    """sum() of `figure` of each experiment, in order (a run's shared figures as often as it has experiments
    with them; a finished one's seconds and timed iterations its own); where every one is an int, as the sum of
    each cell's value times its length (the same int, without adding each experiment's)."""
    columns = [_column(part, figure) for part in parts]
    if all(column.ints() for column in columns):
        return sum(column.int_sum() for column in columns)
    return sum(itertools.chain.from_iterable(column.values() for column in columns))


def _known(parts: Iterable[Part], figure: Figure) -> bool:
    """Whether no experiment's `figure` is None."""
    return all(value is not None for part in parts for value, _ in _column(part, figure).cells)


def estimated(part: Part, mean: float | None) -> Part:
    """`part` with its iterations that have no measured time of their own experiment (it has not started)
    taken at `mean` seconds each; its work left stays unknown (None) without a `mean`."""
    if isinstance(part, PendingRun):
        return dataclasses.replace(part, figures=_estimated(part.figures, mean))
    if isinstance(part, PendingOrFinishedRun):
        return dataclasses.replace(part, pending=_estimated(part.pending, mean))  # (a finished one has none left)
    return _estimated(part, mean)


def _estimated(part: ExperimentProgress, mean: float | None) -> ExperimentProgress:
    if not part.iterations_unmeasured or mean is None:
        return part
    return dataclasses.replace(part, work_left=part.work_measured + part.iterations_unmeasured * mean)


def _timed_sums(parts: Sequence[Part]) -> tuple[Any, int]:
    """The sums of the experiments' measured iteration seconds and of their timed iterations."""
    return _sum(parts, _seconds), _sum(parts, _timed)


def _mean(sums: tuple[Any, int]) -> float | None:
    """`combine(..., parts).mean_iteration_time`, from the two sums it is made of (`_timed_sums(parts)`)."""
    seconds, timed = sums
    return seconds / timed if timed else None


def combine(name: str, parts: Sequence[Part], sums: tuple[Any, int] | None = None) -> ExperimentProgress:
    """The figures of several experiments together (a base experiment, the whole sweep); `sums`: their
    `_timed_sums`, where known (each is a pass over every experiment of a 10^6-point sweep)."""
    def work_left(p: ExperimentProgress) -> float | None:
        return p.work_left

    seconds, timed = sums if sums is not None else _timed_sums(parts)
    return ExperimentProgress(
        name, _sum(parts, lambda p: p.repetitions), _sum(parts, lambda p: p.iterations),
        _sum(parts, lambda p: p.iterations_done),
        {s: _sum(parts, lambda p: p.states.get(s, 0)) for s in STATES},  # noqa: B023 (used at once)
        seconds, timed, _sum(parts, work_left) if _known(parts, work_left) else None,
        [], _sum(parts, lambda p: p.work_measured), _sum(parts, lambda p: p.iterations_unmeasured))


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
    with collector.paused():  # a half-done 10^6-point sweep's runs and repetitions, in no cycle: ~10% of -p
        for base, part in _parts(experiments):
            groups.setdefault(base, []).append(part)
    sums = {base: _timed_sums(parts) for base, parts in groups.items()}  # (the same after `estimated`)
    sweep_mean = _mean(next(iter(sums.values())) if len(sums) == 1 else
                       _timed_sums([p for parts in groups.values() for p in parts]))
    bases = {}
    for base, parts in groups.items():
        mean = _mean(sums[base]) or sweep_mean
        parts = groups[base] = [estimated(part, mean) for part in parts]
        alone = experiments_in(parts) == 1 and first_name(parts) == base
        bases[base] = next(each_experiment(parts)) if alone else combine(base, parts, sums[base])
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
            yield from ((document.base, part) for part in compact_parts(document, attempts(expand_path(
                document.document["path"]))))
            continue
        present = present_folders(document) or set()
        index = FolderIndex.load(document, present) if document.varies and present else None
        if index is not None and index.loaded:  # (its last run's: read, never written here)
            yield from ((document.base, part) for part in folder_parts(document, present, index, attempts(
                expand_path(document.document["path"]))))
            continue
        for start, stop, exists in folder_runs(document, present):
            if not exists:
                yield document.base, PendingRun.of(document, start, stop)
            for position in range(start, stop) if exists else ():
                experiment = document[position]
                yield document.base, read_progress(experiment, attempts(experiment.sweep_path))


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

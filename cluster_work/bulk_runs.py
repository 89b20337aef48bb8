"""Runs of a document's experiments that are all alike, planned, counted and listed without making them one by
one (a 10^6-point grid costs its axes, not 10^6 plans): `FreshRun`s (nothing on disk: every repetition a job)
and, in a compact store, `DoneRun`s (every repetition finished or stopped, the parameters unchanged: no job).

Which experiments are on disk is asked once per document: the default layout lists the document's folder
(`present_folders`), a compact store reads its index (`compact_index.summary`). Everything else is planned
experiment by experiment, by the function the caller gives (`planning`).
"""
from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from .compact_index import Entry, ExperimentSummary, SummaryStore, canonical
from .compact_store import is_compact
from .config import KeyPath
from .expansion import ExpandedDocument, ExpandedExperiment
from .repetition_state import status_says_finished
from .rows import to_plain
from .vocabulary import Record


class Known(Protocol):
    """An index a DoneRun's plans are made from: each experiment's store, by its name and folder."""

    def experiment(self, name: str, path: str) -> Any: ...


@dataclass(frozen=True, slots=True)
class Run:
    """Experiments `start` to `stop - 1` of one document."""

    document: ExpandedDocument
    start: int
    stop: int
    first_index: int  # the job index of its first experiment's repetition 0

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def repetitions(self) -> int:
        """Of each of its experiments (a document's are all the same)."""
        return self.document.document["repetitions"]


@dataclass(frozen=True, slots=True)
class FreshRun(Run):
    """A run of experiments whose folders do not exist (so neither does any file of theirs): each is new, with
    every repetition a job, so the run is counted, listed and summed without making its experiments or looking
    at the disk for them (`Plan.chunks`). Only without -r and -j."""


@dataclass(frozen=True, slots=True)
class DoneRun(Run):
    """Experiments of a document whose every repetition is finished or stopped and whose parameters did not
    change, as an index says (a compact store's, or the default layout's `folder_index`): each is done, with no
    job (its plan, made where it is shown, says the same)."""

    store: Known | None = None  # what its plans are made from
    found: tuple[Entry, ...] = ()  # what its index says of each of its experiments

    def iteration_times(self) -> Iterator[float]:
        """Each repetition's mean iteration time, where one was measured, in order (as their plans have them)."""
        for entry in self.found:
            for rep, found in sorted(ExperimentSummary.of(entry).repetitions.items()):
                status = found.status or {}
                mean = status.get("mean_iteration_time")
                if rep >= self.repetitions:
                    continue
                if isinstance(mean, (int, float)):
                    yield mean  # as `read_repetition` decides: the rows' mean only where the status did not answer
                elif found.rows_mean is not None and status.get("state") != Record.STOPPED.value and \
                        not status_says_finished(status, self.document.document["iterations"], None):
                    yield found.rows_mean


def far_in(start: int, stop: int) -> bool:
    """Whether experiments `start` to `stop - 1` of a document are better made one by one (5 us each) than
    named by skipping the `start` names before them (0.2 us each): a short run far into a long document."""
    return start > 32 * (stop - start)


def present_folders(group: Any) -> set[str] | None:
    """For a document of the default layout: the params parts of its experiments' folders that exist ('' for a
    document without grid or list), so the others are planned without a look at the disk. None: look at each
    one (a list of experiments; a compact store's document, whose index says which it holds)."""
    if not isinstance(group, ExpandedDocument) or is_compact(group.document):
        return None
    if not group.varies:
        return {""} if os.path.lexists(group.base_folder) else set()
    try:
        return {entry.name for entry in os.scandir(group.base_folder)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def folder_runs(document: ExpandedDocument, present: set[str]) -> Iterator[tuple[int, int, bool]]:
    """The document's experiments as runs (start, stop, exists) of consecutive positions whose folders are all
    `present` (from `present_folders`), or all missing."""
    return _runs(document.folder_parts() if present else iter(()), present, len(document))


def _runs(keys: Iterator[str], present: Any, size: int) -> Iterator[tuple[int, int, bool]]:
    start, exists = 0, False
    for position, key in enumerate(keys):
        if (key in present) != exists:
            if position > start:
                yield start, position, exists
            start, exists = position, not exists
    if start < size:
        yield start, size, exists


Plan = Callable[[ExpandedExperiment, int], Any]  # an experiment and its first job index -> its plan


def fresh_runs(document: ExpandedDocument, first_index: int, present: set[str], plan: Plan,
               ) -> Iterator[tuple[Any, bool]]:
    """The document's experiments as FreshRuns between those whose folder is `present`, which `plan` plans
    (from the experiment and its first job index); each with whether it was fresh."""
    repetitions = document.document["repetitions"]
    for start, stop, exists in folder_runs(document, present):
        if not exists:
            yield FreshRun(document, start, stop, first_index + start * repetitions), True
        for position in range(start, stop) if exists else ():
            yield plan(document[position], first_index + position * repetitions), False


def compact_runs(document: ExpandedDocument, first_index: int, store: SummaryStore, plan: Plan,
                 ) -> Iterator[tuple[Any, bool]]:
    """A compact store's document as FreshRuns (experiments it holds nothing of), DoneRuns (done, unchanged:
    see `is_done`) and, between them, each other experiment's plan by `plan`; each with whether it was fresh.
    Where the parameters cannot be told from the axes (`params_texts`), each experiment it holds is planned."""
    repetitions, iterations = document.document["repetitions"], document.document["iterations"]
    held = store.summary.entries
    if not held:
        if len(document):
            yield FreshRun(document, 0, len(document), first_index), True
        return
    texts = params_texts(document)
    expected = texts[0]() if texts is not None else itertools.repeat("")

    def kinds() -> Iterator[tuple[type | None, Entry | None]]:
        for name, joined in zip(document.names(), expected):
            found = held.get(name)
            yield (FreshRun, None) if found is None else (DoneRun, found) if (
                texts is not None and texts[1](joined) == found[1] and is_done(found[2], repetitions, iterations)
            ) else (None, None)

    yield from gathered_runs(document, first_index, kinds(), store, plan)


def gathered_runs(document: ExpandedDocument, first_index: int, kinds: Iterator[tuple[type | None, Entry | None]],
                  store: Known, plan: Plan) -> Iterator[tuple[Any, bool]]:
    """The document's experiments, each of which `kinds` says is FreshRun, a DoneRun (with its index entry) or
    None (planned one by one by `plan`), as runs of consecutive FreshRuns and DoneRuns (whose plans are made
    from `store`) and single plans; each with whether it was fresh."""
    repetitions = document.document["repetitions"]
    kind, start = None, 0  # the run being gathered: FreshRun, DoneRun or None (planned one by one)
    done: list[Entry] = []
    for position, (now, found) in enumerate(kinds):
        if now is not kind and kind is not None and position > start:
            yield _run(kind, document, start, position, first_index, store, done), kind is FreshRun
        if now is not kind:
            kind, start, done = now, position, []
        if found is not None and now is not FreshRun:
            done.append(found)
        if now is None:
            yield plan(document[position], first_index + position * repetitions), False
    if kind is not None and start < len(document):
        yield _run(kind, document, start, len(document), first_index, store, done), kind is FreshRun


def _run(kind: type, document: ExpandedDocument, start: int, stop: int, first_index: int, store: Known,
         done: list[Entry]) -> FreshRun | DoneRun:
    first = first_index + start * document.document["repetitions"]
    if kind is FreshRun:
        return FreshRun(document, start, stop, first)
    return kind(document, start, stop, first, store, tuple(done))


def is_done(reps: list[list[Any]], repetitions: int, iterations: int) -> bool:
    """Whether each of `repetitions` repetitions (as an index holds them: [rep, status, rows, ...]) is finished
    or stopped, as `read_repetition` decides without asking for locks (which planning does not)."""
    done = 0
    for rep, status, rows, *_ in reps:
        if rep >= repetitions:
            continue
        status = status or {}
        if not (rows >= iterations or status.get("state") == Record.STOPPED.value
                or status_says_finished(status, iterations, None)):
            return False
        done += 1
    return done == repetitions


_SENTINEL = re.compile(r'"\\u0000(\d+)\\u0000"')  # where a varied value goes in a document's params text


def params_texts(document: ExpandedDocument) -> tuple[Callable[[], Iterator[str]], Callable[[str], str]] | None:
    """Each experiment's parameters as the text `compact_index.canonical(to_plain(params))`, from a template of
    the document's parameters and each axis' values encoded once (~1 us an experiment instead of making it): a
    function giving each experiment's values joined (in order, cheap), and one making its text of them; None
    where that is not sure to be the same text (points of their own, one varied key inside another's value)."""
    if document.custom_points or not document.varies or not len(document):
        return None
    first = document[0]
    paths: list[KeyPath] = list(first.varied)
    if any(a != b and b[:len(a)] == a for a in paths for b in paths):
        return None
    template = to_plain(first.params)
    for number, path in enumerate(paths):
        mapping = template
        for key in path[:-1]:
            mapping = mapping.get(str(key))
            if not isinstance(mapping, dict):
                return None
        mapping[str(path[-1])] = f"\0{number}\0"
    pieces = _SENTINEL.split(canonical(template))  # text, number, text, number, ..., text
    order = [int(number) for number in pieces[1::2]]
    texts = pieces[0::2]
    if sorted(order) != list(range(len(paths))):
        return None

    def encode(path: KeyPath, value: Any) -> str:
        return canonical(to_plain(value))  # no raw NUL: json escapes it

    form = "".join(text.replace("{", "{{").replace("}", "}}") + (f"{{{number}}}" if number is not None else "")
                   for text, number in itertools.zip_longest(texts, order))
    return lambda: document.joined_points(encode, "\0"), lambda joined: form.format(*joined.split("\0"))

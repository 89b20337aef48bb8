"""Runs of a document's experiments that are all alike, planned, counted and listed without making them one by
one (a 10^6-point grid costs its axes, not 10^6 plans): `FreshRun`s (nothing on disk: every repetition a job)
and, where an index says what is on disk (a compact store's, or the default layout's `folder_index`),
`NewOrDoneRun`s (each experiment new, or with every repetition finished or stopped and the parameters
unchanged: no job).

Which experiments are on disk is asked once per document: the default layout lists the document's folder
(`present_folders`), a compact store reads its index (`compact_index.summary`). Everything else is planned
experiment by experiment, by the function the caller gives (`planning`).
"""
from __future__ import annotations

import functools
import itertools
import operator
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .compact_columns import Columns, Entry
from .compact_index import ExperimentSummary, SummaryStore, canonical
from .compact_store import is_compact
from .config import KeyPath
from .expansion import ExpandedDocument, ExpandedExperiment
from .repetition_state import status_says_finished
from .rows import to_plain
from .vocabulary import Record


class Known(Protocol):
    """An index a NewOrDoneRun's done experiments' plans are made from: each one's store, by its name and folder
    (a compact store's `SummaryStore`, the default layout's `folder_index.FolderIndex`)."""

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

    @property
    def new(self) -> int:
        """Its new experiments (every repetition a job): all of a FreshRun's."""
        return len(self)

    def done_at(self, position: int) -> bool:
        """Whether the experiment at `position` of the document (one of the run's) is done (no job)."""
        return False


@dataclass(frozen=True, slots=True)
class FreshRun(Run):
    """A run of experiments whose folders do not exist (so neither does any file of theirs): each is new, with
    every repetition a job, so the run is counted, listed and summed without making its experiments or looking
    at the disk for them (`Plan.chunks`). Only without -r and -j."""


BLOCK = 4096  # experiments of a document looked at together (through an index): a NewOrDoneRun covers at most these


@dataclass(frozen=True, slots=True)
class NewOrDoneRun(Run):
    """Experiments of a document each new (its index holds nothing of it: every repetition a job, as in a
    FreshRun) or done (every repetition finished or stopped, the parameters unchanged: no job, its plan, made
    where it is shown, says the same), in any order, as an index says (a compact store's, or the default
    layout's `folder_index`): a half-done sweep whose finished points alternate with new ones is counted in runs
    of up to BLOCK experiments, not in runs of one. `done`: a byte per experiment, 1 where it is done; `found`:
    what the index holds of each done one, in order."""

    store: Known  # what its done experiments' plans are made from
    done: bytes
    found: Sequence[Entry]

    @property
    def new(self) -> int:
        return len(self) - len(self.found)

    def done_at(self, position: int) -> bool:
        return bool(self.done[position - self.start])

    @property
    def new_ones(self) -> bytes:
        """A byte per experiment, 1 where it is new."""
        return flipped(self.done)

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


def flipped(mask: bytes) -> bytes:
    """`mask` (bytes of 0 and 1) with its 0s and 1s swapped."""
    return mask.translate(_FLIP)


_FLIP = bytes.maketrans(b"\0\1", b"\1\0")


def present_folders(group: Any) -> set[str] | None:
    """For a document of the default layout: the params parts of its experiments' folders that exist ('' for a
    document without grid or list), so the others are planned without a look at the disk. None: look at each
    one (a list of experiments; a compact store's document, whose index says which it holds)."""
    if not isinstance(group, ExpandedDocument) or is_compact(group.document):
        return None
    if not group.varies:
        return {""} if os.path.lexists(group.base_folder) else set()
    try:
        return set(os.listdir(group.base_folder))  # (names alone: faster than scandir's entries)
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
    """A compact store's document as a FreshRun where its index holds nothing of it, else as NewOrDoneRuns
    (experiments it holds nothing of, and done ones unchanged: see `is_done`) and, between them, each other
    experiment's plan by `plan`; each with whether it was fresh. Looked at BLOCK experiments at a time: their
    names found in the index at once, only the held ones one by one. Where the parameters cannot be told from
    the axes (`params_texts`), each experiment it holds is planned."""
    repetitions, iterations = document.document["repetitions"], document.document["iterations"]
    columns = store.summary.columns
    held = columns.position
    if not held:
        yield from ((FreshRun(document, 0, len(document), first_index), True),) if len(document) else ()
        return
    texts = params_texts(document)
    names = document.names()
    joined = texts[0]() if texts is not None else None
    for block in range(0, len(document), BLOCK):
        found: list[int | None] = list(map(held.get, itertools.islice(names, BLOCK)))  # its position, if held
        mask = bytes(map(operator.is_not, found, itertools.repeat(None)))
        expected = list(itertools.islice(joined, len(found))) if joined is not None else None
        if texts is not None and expected is not None:  # all it holds done, unchanged (the usual case): at once
            positions: list[int] = list(itertools.compress(found, mask))  # type: ignore[arg-type]
            if all(map(operator.eq, texts[2](itertools.compress(expected, mask)),
                       map(columns.params.__getitem__, positions))) and \
                    all_done(columns, positions, repetitions, iterations):
                yield NewOrDoneRun(document, block, block + len(found), first_index + block * repetitions, store,
                                   mask, columns.entries_at(positions)), False
                continue
        yield from block_runs(document, first_index, block, [None if position is None else columns.entry(position)
                                                             for position in found], functools.partial(
            _compact_done, texts, expected, repetitions, iterations), store, plan)


def all_done(columns: Columns, positions: list[int], repetitions: int, iterations: int) -> bool:
    """Whether each experiment at `positions` of an index is done (`is_done`); by a C loop over its rows where
    its experiments are all usual (`Columns.usual`: one repetition, no status: done where its rows are all
    there)."""
    if columns.usual and repetitions == 1:
        return columns.usual_done(positions, iterations)
    return all(map(is_done, map(columns.repetitions, positions), itertools.repeat(repetitions),
                   itertools.repeat(iterations)))


def _compact_done(texts: Any, expected: list[str] | None, repetitions: int, iterations: int, offset: int,
                  entry: Entry) -> Entry | None:
    """`entry`, what a compact store's index holds of a block's experiment at `offset`, where it is done."""
    return entry if texts is not None and expected is not None and texts[1](expected[offset]) == entry[1] and \
        is_done(entry[2], repetitions, iterations) else None


def block_runs(document: ExpandedDocument, first_index: int, block: int, found: list[Any],
               done_entry: Callable[[int, Any], Entry | None], store: Known, plan: Plan,
               kind: type[NewOrDoneRun] = NewOrDoneRun) -> Iterator[tuple[Any, bool]]:
    """Experiments `block` to `block + len(found) - 1` of the document as NewOrDoneRuns (of `kind`, their done
    experiments' plans made from `store`) and, between them, each other experiment's plan by `plan`; each with
    whether it was fresh. `found`: falsy for a new experiment (nothing of it on disk), else what `done_entry`
    (its offset in the block, its `found`) makes the run's entry of, or None where it is not done: planned."""
    done, entries, start = bytearray(len(found)), [], 0  # the run gathered: from block + start on
    for offset in itertools.compress(range(len(found)), found):
        entry = done_entry(offset, found[offset])
        if entry is not None:
            done[offset] = 1
            entries.append(entry)
            continue
        if offset > start:
            yield _run(kind, document, block + start, block + offset, first_index, store, done[start:offset],
                       entries)
        yield plan(document[block + offset], first_index + (block + offset) * document.document["repetitions"]), \
            False
        start, entries = offset + 1, []
    if start < len(found):
        yield _run(kind, document, block + start, block + len(found), first_index, store, done[start:], entries)


def _run(kind: type[NewOrDoneRun], document: ExpandedDocument, start: int, stop: int, first_index: int,
         store: Known, done: bytearray, found: list[Entry]) -> tuple[NewOrDoneRun, bool]:
    first = first_index + start * document.document["repetitions"]
    return kind(document, start, stop, first, store, bytes(done), tuple(found)), False


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


def params_texts(document: ExpandedDocument) -> tuple[Callable[[], Iterator[str]], Callable[[str], str],
                                                      Callable[[Iterable[str]], Iterator[str]]] | None:
    """Each experiment's parameters as the text `compact_index.canonical(to_plain(params))`, from a template of
    the document's parameters and each axis' values encoded once (~1 us an experiment instead of making it): a
    function giving each experiment's values joined (in order, cheap), one making its text of them, and one
    making the texts of many (by C loops: no Python call per experiment); None
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
    return (lambda: document.joined_points(encode, "\0"), lambda joined: form.format(*joined.split("\0")),
            lambda joined: itertools.starmap(form.format, map(str.split, joined, itertools.repeat("\0"))))

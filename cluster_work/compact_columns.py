"""A compact store's index held as parallel columns (its on-disk form since index version 3): a list per field of
the experiments (`names`, `at`, `params`, `counts`: how many repetitions each has) and a list per field of their
repetitions, experiment after experiment (`rep`, `status`, `rows`, `seconds`, `timed`).

Why columns: a half-done 10^6-point sweep's index holds 5 x 10^5 experiments. Held as one list per experiment and
one per repetition (index version 2), its parse made ~2 x 10^6 Python lists (~1 s of its ~1.3 s), and -p and
planning then took them apart again, experiment by experiment. Columns parse in a third of that (a list of strings
or small numbers is what json's C parser makes fastest), and what -p and planning ask of a block of experiments
(their rows, their times) is a `map` over a column by position, in C. An experiment's own lists (`Entry`, as
version 2 held it) are made only where one is asked for (`entry`, `entries`).

`seconds` (floats) is written as the base64 text of their IEEE 754 doubles, little-endian (`packed`): read ten
times faster than their decimal texts, and the same bits (NaN and infinities included).

Invariants (checked by `decode`; a value that breaks one is not an index): the experiment columns have one item
per experiment, the repetition columns `sum(counts)` items, the names are strings, each once.
"""
from __future__ import annotations

import array
import base64
import binascii
import itertools
import operator
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

Entry = list  # an experiment as the index's version 2 held it: [at, params, [[rep, status, rows, seconds, timed], ...]]
EXPERIMENT_FIELDS = ("names", "at", "params", "counts")
REPETITION_FIELDS = ("rep", "status", "rows", "seconds", "timed")


class Columns:
    """The index's experiments, in the order they were summed, as columns (see the module's docstring)."""

    def __init__(self, names: list[str], at: list[str], params: list[str], counts: list[int], rep: list[int],
                 status: list[Any], rows: list[int], seconds: Sequence[float], timed: list[int]):
        self.names, self.at, self.params, self.counts = names, at, params, counts
        self.rep, self.status, self.rows, self.seconds, self.timed = rep, status, rows, seconds, timed
        self.position = dict(zip(names, range(len(names))))  # a name -> its experiment's position
        self._starts: list[int] | None = None
        self._usual: bool | None = None

    @classmethod
    def of(cls, entries: dict[str, Entry]) -> Columns:
        """The columns of `entries` (name -> Entry), in their order."""
        values = list(entries.values())
        groups = list(map(operator.itemgetter(2), values))
        flat = list(itertools.chain.from_iterable(groups))
        reps: Any = zip(*flat) if flat else ((),) * len(REPETITION_FIELDS)
        return cls(list(entries), list(map(operator.itemgetter(0), values)), list(map(operator.itemgetter(1), values)),
                   list(map(len, groups)), *map(list, reps))

    @classmethod
    def decode(cls, value: dict[str, Any]) -> Columns | None:
        """The columns an index's parsed text holds (its fields by EXPERIMENT_FIELDS and REPETITION_FIELDS); None
        where they break an invariant."""
        experiments = [value[field] for field in EXPERIMENT_FIELDS]
        repetitions = [value[field] for field in REPETITION_FIELDS]
        repetitions[3] = unpacked(repetitions[3])
        if not all(isinstance(column, (list, array.array)) for column in (*experiments, *repetitions)):
            return None
        size, total = len(experiments[0]), sum(experiments[3])
        if not isinstance(total, int) or min(experiments[3], default=0) < 0 or \
                any(len(column) != size for column in experiments) or \
                any(len(column) != total for column in repetitions) or \
                not all(map(isinstance, experiments[0], itertools.repeat(str))):
            return None
        found = cls(*experiments, *repetitions)
        return found if len(found.position) == size else None

    def fields(self) -> dict[str, Any]:
        """The columns by their fields' names (what the index's text holds of them)."""
        return {"names": self.names, "at": self.at, "params": self.params, "counts": self.counts, "rep": self.rep,
                "status": self.status, "rows": self.rows, "seconds": packed(self.seconds), "timed": self.timed}

    def __len__(self) -> int:
        return len(self.names)

    @property
    def starts(self) -> list[int]:
        """Where each experiment's repetitions begin in the repetition columns."""
        if self._starts is None:
            self._starts = list(itertools.accumulate(self.counts, initial=0))[:-1]
        return self._starts

    @property
    def usual(self) -> bool:
        """Whether every experiment has exactly one repetition, number 0, with no status (its rows say it all) and
        timed rows, as a run of one-repetition experiments that ran to their end leaves them: then an experiment's
        position is its repetition's too, and what -p and planning ask of a block is a `map` over a column."""
        if self._usual is None:
            self._usual = self.counts.count(1) == len(self.counts) and self.rep.count(0) == len(self.rep) and \
                self.status.count(None) == len(self.status) and 0 not in self.timed
        return self._usual

    def usual_done(self, positions: list[int], iterations: int) -> bool:
        """Whether the experiments at `positions` of usual columns (`usual`) each have their `iterations` rows: one
        C loop over the rows column."""
        return not positions or min(map(self.rows.__getitem__, positions)) >= iterations

    def repetitions(self, position: int) -> list[list[Any]]:
        """The repetitions of the experiment at `position`, each [rep, status, rows, seconds, timed]."""
        start = self.starts[position]
        stop = start + self.counts[position]
        return list(map(list, zip(self.rep[start:stop], self.status[start:stop], self.rows[start:stop],
                                  self.seconds[start:stop], self.timed[start:stop])))

    def entry(self, position: int) -> Entry:
        """The experiment at `position` as version 2 held it."""
        return [self.at[position], self.params[position], self.repetitions(position)]

    def entries(self) -> dict[str, Entry]:
        """Every experiment as version 2 held it, by name, in order (where they are changed: `compact_tails`)."""
        reps = list(map(list, zip(self.rep, self.status, self.rows, self.seconds, self.timed)))
        groups = map(reps.__getitem__, map(slice, self.starts, itertools.accumulate(self.counts)))
        return dict(zip(self.names, map(list, zip(self.at, self.params, groups))))

    def entries_at(self, positions: list[int]) -> HeldEntries:
        return HeldEntries(self, positions)

    def view(self) -> EntryView:
        return EntryView(self)

    def folders(self) -> dict[str, str]:
        """Each experiment's folder (`at`) -> its name."""
        return dict(zip(self.at, self.names))

    def updated(self, changed: dict[str, Entry]) -> Columns:
        """These columns with the experiments of `changed` (name -> Entry) instead of their own, after the others
        (an index extended by its segments' tails: the others are sliced, not made into entries)."""
        if not changed:
            return self
        gone = sorted(self.position[name] for name in changed if name in self.position)
        kept = list(zip([0, *(position + 1 for position in gone)], [*gone, len(self.names)]))  # (start, stop)
        bounds = [*self.starts, len(self.rep)]
        kept_reps = [(bounds[start], bounds[stop]) for start, stop in kept]
        more = Columns.of(changed)
        own_experiments: tuple[Sequence[Any], ...] = (self.names, self.at, self.params, self.counts)
        new_experiments: tuple[Sequence[Any], ...] = (more.names, more.at, more.params, more.counts)
        experiments = [_kept(column, kept) + list(added) for column, added in zip(own_experiments, new_experiments)]
        own_reps = (self.rep, self.status, self.rows, self.seconds, self.timed)
        new_reps = (more.rep, more.status, more.rows, more.seconds, more.timed)
        repetitions = [_kept(column, kept_reps) + list(added) for column, added in zip(own_reps, new_reps)]
        return Columns(*experiments, *repetitions)


def _kept(column: Sequence[Any], ranges: list[tuple[int, int]]) -> list[Any]:
    """The items of `column` in each of `ranges` (start, stop), in order."""
    return list(itertools.chain.from_iterable(column[start:stop] for start, stop in ranges))


def packed(numbers: Sequence[float]) -> str:
    """The base64 text of `numbers` as little-endian IEEE 754 doubles."""
    doubles = array.array("d", numbers)
    if sys.byteorder == "big":
        doubles.byteswap()
    return base64.b64encode(doubles.tobytes()).decode("ascii")


def unpacked(text: Any) -> array.array | None:
    """The doubles `packed` wrote as `text`; None where it is not such a text."""
    try:
        doubles = array.array("d", base64.b64decode(text, validate=True))
    except (TypeError, ValueError, binascii.Error):
        return None
    if sys.byteorder == "big":
        doubles.byteswap()
    return doubles


class EntryView(Mapping[str, Entry]):
    """The columns' experiments as a mapping name -> Entry, each made where it is asked for."""

    def __init__(self, columns: Columns):
        self.columns = columns

    def __getitem__(self, name: str) -> Entry:
        return self.columns.entry(self.columns.position[name])

    def __contains__(self, name: object) -> bool:
        return name in self.columns.position

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns.names)

    def __len__(self) -> int:
        return len(self.columns.names)


class HeldEntries(Sequence[Entry]):
    """The entries of the experiments at `positions`, each made where it is asked for (a NewOrDoneRun's done
    experiments: counted always, made one by one only where their plans are)."""

    def __init__(self, columns: Columns, positions: list[int]):
        self.columns, self.positions = columns, positions

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return HeldEntries(self.columns, self.positions[index])
        return self.columns.entry(self.positions[index])

    def __iter__(self) -> Iterator[Entry]:
        return map(self.columns.entry, self.positions)

"""The reading side of a compact store (see compact_store): what its segments say, per repetition.

Read incrementally: each refresh reads only the bytes a segment gained since the last (`offsets`), parses
them in one call of the C parser, and keeps each row as its JSON bytes (a third of a parsed row's memory),
parsed when asked for. A process's own writes are taken in as they are made (compact_process.StoreProcess.append);
other processes' within REFRESH_SECONDS, or at once where a refresh is forced.

A claim (under the repetition's lock) needs only its repetition's events: `claimed` reads what the other
segments gained and only looks for the lines that name that repetition (a regular expression over the bytes, in
C), keeping the keys it saw; the bytes are parsed (from `offsets` again) only where they name it, hold a line of
another kind (a drop, damage), or by the next refresh. A worker of W then costs a claim the same whatever W is,
instead of parsing every event of every other worker.
"""
from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .paths import SEGMENT_PREFIX, compact_root
from .rows import encode_row

REFRESH_SECONDS = 0.5  # a reader's view of the segments is at most this old, except where exactness matters
_ITERATION = re.compile(rb'\{"iteration":(-?\d+)[,}]')  # how every row the runner writes begins
_ROW = b',"row":'
# a line of a claim, row, status or keep, and its repetition's key as encode_row writes it: ["name",rep]
_KEYED_LINE = re.compile(rb'^\{"[cwsk]":(\["(?:[^"\\\n]|\\.)*",-?\d+\])[,}]', re.MULTILINE)


def iteration_of(row: bytes) -> int | None:
    """The `iteration` of a row kept as its JSON bytes (None: it has none), without parsing the row where it
    begins as the runner writes every row."""
    found = _ITERATION.match(row)
    if found:
        return int(found.group(1))
    try:
        value = json.loads(row)
    except ValueError:
        return None
    return value.get("iteration") if isinstance(value, dict) else None


@dataclass
class Claim:
    """One claim of a repetition by one segment's writer, at `time`, and the events that segment wrote for that
    repetition after it, in order (compact_tails folds them into the index's summary the way `row_lines` does)."""
    time: float
    events: list[tuple[str, Any]] = field(default_factory=list)  # ("k", count) or ("w", the row's JSON bytes)


@dataclass
class SavedRepetition:
    claims: list[Claim] = field(default_factory=list)
    status: tuple[float, dict[str, Any]] | None = None
    params: Any = None
    base: str | None = None

    def row_lines(self) -> list[bytes]:
        """The repetition's rows 0, 1, 2..., each as its line of JSON (what a results file would hold)."""
        rows: list[bytes] = []
        for claim in sorted(self.claims, key=lambda c: c.time):
            for kind, value in claim.events:
                if kind == "k":
                    del rows[value:]
                elif iteration_of(value) == len(rows):
                    rows.append(value)
        return rows

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.row_lines()]


class Catalog:
    """What the segments of one compact store say, read incrementally (only bytes new since the last read)."""

    def __init__(self, root: str):
        self.root = root
        self.offsets: dict[str, int] = {}
        self.current: dict[tuple[str, tuple[str, int]], Claim] = {}  # (segment, repetition) -> its last claim
        self.repetitions: dict[tuple[str, int], SavedRepetition] = {}
        self.dropped: dict[str, float] = {}
        self.names_at: dict[str, str] = {}  # an experiment's folder below the document's -> its name
        self.by_name: dict[str, set[int]] = {}  # an experiment's name -> its repetitions with events
        self.last_claim: dict[str, tuple[str, int]] = {}  # a segment -> the repetition of its last claim
        self.at_moved = False  # whether a folder was named for another experiment than before (see compact_tails)
        self.own: set[str] = set()  # this process's segments: taken in as written (`apply_written`), never looked at
        self.scanned: dict[str, int] = {}  # how far `claimed` looked into a segment, beyond `offsets`
        self.mentioned: set[bytes] = set()  # the keys of the lines between `offsets` and `scanned`
        self.read_at = -1.0
        # each follower's (an exporter's watch) set of the repetitions whose events were read since it last
        # emptied it (a drop touches all of its experiment's)
        self.followers: list[set[tuple[str, int]]] = []

    def refresh(self, force: bool = False) -> Catalog:
        """Take in what the segments gained (at most every REFRESH_SECONDS unless `force`d; at once where `claimed`
        left bytes unparsed)."""
        now = time.monotonic()
        if not force and not self.scanned and now - self.read_at < REFRESH_SECONDS:
            return self
        self.read_at = now
        self.scanned.clear()  # what `claimed` looked at is read below (from `offsets`), with the rest
        self.mentioned.clear()
        try:
            segments = sorted((e.name, e) for e in os.scandir(self.root) if e.name.startswith(SEGMENT_PREFIX))
        except FileNotFoundError:
            return self
        for name, entry in segments:
            if name in self.own:
                continue
            try:
                grown = entry.stat().st_size > self.offsets.get(name, 0)
            except FileNotFoundError:
                continue
            if grown:
                self._read(name)
        return self

    def claimed(self, name: str, rep: int) -> SavedRepetition:
        """Repetition (name, rep) as all segments say it now (what a forced refresh would give), for its claim
        under its lock: the other segments' new lines are parsed only where one names it or is not a keyed line
        (see the module's docstring)."""
        key = json.dumps([name, rep], separators=(",", ":")).encode()  # as encode_row writes it
        try:
            segments = [entry for entry in os.scandir(self.root)
                        if entry.name.startswith(SEGMENT_PREFIX) and entry.name not in self.own]
        except FileNotFoundError:
            return self.repetition(name, rep)
        settle = False
        for entry in segments:
            start = self.scanned.get(entry.name, self.offsets.get(entry.name, 0))
            try:
                if entry.stat().st_size <= start:
                    continue
                with open(entry.path, "rb") as handle:
                    handle.seek(start)
                    data = handle.read()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1  # a torn last line: left for later, as _read leaves it
            keys = _KEYED_LINE.findall(data, 0, end)
            settle = settle or len(keys) != data.count(b"\n", 0, end)
            self.mentioned.update(keys)
            self.scanned[entry.name] = start + end
        if settle or key in self.mentioned:
            self.refresh(force=True)
        return self.repetition(name, rep)

    def _read(self, name: str) -> None:
        offset = self.offsets.get(name, 0)
        try:
            with open(os.path.join(self.root, name), "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1  # a torn last line is left for a later read (or forever: its writer died)
        self.offsets[name] = offset + end
        lines = data[:end].split(b"\n")[:-1]
        # every line's JSON in one call of the C parser (a row's key only: its row is kept as bytes)
        splits = [line.find(_ROW) if line.startswith(b'{"w":') and line.endswith(b"}") else -1 for line in lines]
        try:
            parsed = json.loads(b"[" + b",".join(line[5:split] if split > 0 else line
                                               for line, split in zip(lines, splits)) + b"]")
        except ValueError:  # a damaged line somewhere: line by line, skipping it
            for line in lines:
                self.apply_line(name, line)
            return
        for line, split, value in zip(lines, splits, parsed):
            try:
                if split > 0:
                    self._apply_row(name, value, line[split + len(_ROW):-1])
                else:
                    self._apply(name, value)
            except (TypeError, KeyError, IndexError, ValueError):
                pass

    def _apply_row(self, segment: str, key: Any, row: bytes) -> None:
        name, rep = key
        key = (str(name), int(rep))
        claim = self.current.get((segment, key))
        if claim is not None:
            claim.events.append(("w", row))
            for touched in self.followers:
                touched.add(key)

    def apply_line(self, segment: str, line: bytes) -> None:
        """Take one line of `segment` into account (in the segment's order); a damaged one (a power loss's
        zeros) is skipped. A row is kept as its bytes (a third of a parsed row's memory), parsed when read."""
        try:
            split = line.find(_ROW) if line.startswith(b'{"w":') and line.endswith(b"}") else -1
            if split > 0:
                self._apply_row(segment, json.loads(line[5:split]), line[split + len(_ROW):-1])
            else:
                self._apply(segment, json.loads(line))
        except (ValueError, TypeError, KeyError, IndexError):
            pass

    def apply_written(self, segment: str, event: Mapping[str, Any], line: bytes) -> None:
        """Take in an event this process just appended to `segment` as `line` (its JSON, newline included), as
        reading it back would, without parsing it again: a row is kept as its bytes, cut from `line`. Call it
        for every event this process appends, once all before it were taken in: a refresh then skips the segment."""
        self.own.add(segment)
        if "w" in event:
            self._apply_row(segment, event["w"], line[line.find(_ROW) + len(_ROW):-2])
        else:
            try:
                self._apply(segment, event)
            except (TypeError, KeyError, IndexError, ValueError):
                pass

    def _apply(self, segment: str, event: Mapping[str, Any]) -> None:
        """Take in one event (see the module's docstring); a TypeError, KeyError, IndexError or ValueError means an
        event no writer of ours writes, which the callers skip: a time or a count that is no number is one (it would
        fail later, where claims are sorted by time and rows cut back)."""
        if not _is_number(event.get("t", 0)) or not _is_number(event.get("n", 0)) or isinstance(event.get("n"), float):
            raise TypeError("a time or a count that is no number")
        if "d" in event:
            self.dropped[event["d"]] = max(self.dropped.get(event["d"], 0.0), event["t"])
            for touched in self.followers:
                touched.update((event["d"], rep) for rep in self.by_name.get(event["d"], ()))
            return
        kind = "c" if "c" in event else "s" if "s" in event else "k" if "k" in event else "w"
        key = (str(event[kind][0]), int(event[kind][1]))
        for touched in self.followers:
            touched.add(key)
        repetition = self.repetitions.get(key)
        if repetition is None:
            repetition = self.repetitions[key] = SavedRepetition()
            self.by_name.setdefault(key[0], set()).add(key[1])
        if kind == "c":
            claim = self.current[segment, key] = Claim(event["t"])
            self.last_claim[segment] = key
            repetition.claims.append(claim)
            repetition.params = event.get("params", repetition.params)
            repetition.base = event.get("base", repetition.base)
            self.at_moved = self.at_moved or self.names_at.get(event.get("at", ""), key[0]) != key[0]
            self.names_at[event.get("at", "")] = key[0]
        elif kind == "s":
            if repetition.status is None or event["t"] >= repetition.status[0]:
                repetition.status = (event["t"], event["status"])
            if "at" in event and repetition.params is None:  # a status without a claim says what one would
                repetition.params, repetition.base = event.get("params"), event.get("base")
                self.at_moved = self.at_moved or self.names_at.setdefault(event["at"], key[0]) != key[0]
        elif (segment, key) in self.current:
            value = event["n"] if kind == "k" else encode_row(event["row"])[:-1]
            self.current[segment, key].events.append((kind, value))

    def repetition(self, name: str, rep: int) -> SavedRepetition:
        """Repetition (name, rep) as its events after the experiment's last drop say."""
        found = self.repetitions.get((name, rep))
        dropped = self.dropped.get(name)
        if found is None or dropped is None:
            return found or SavedRepetition()
        status = found.status if found.status is not None and found.status[0] > dropped else None
        return SavedRepetition([c for c in found.claims if c.time > dropped], status, found.params, found.base)

    def repetition_numbers(self, name: str) -> list[int]:
        """The repetitions of experiment `name` with a claim or a status (since its last drop), in order."""
        found = []
        for rep in sorted(self.by_name.get(name, ())):
            repetition = self.repetition(name, rep)
            if repetition.claims or repetition.status:
                found.append(rep)
        return found

    def experiments(self) -> dict[str, list[int]]:
        """The experiments with a claim or a status, and their repetitions, in order of name and number."""
        found = {name: self.repetition_numbers(name) for name in sorted(self.by_name)}
        return {name: reps for name, reps in found.items() if reps}


def _is_number(value: Any) -> bool:
    return type(value) in (int, float)  # (not a bool: json writes true, no writer of ours a time or count so)


_catalogs: dict[str, Catalog] = {}  # this process's, by store: by its absolute path (a relative one names
# another store once the working folder changed, as between two sweeps read from one notebook)
os.register_at_fork(after_in_child=_catalogs.clear)


def loaded(root: str) -> Catalog | None:
    """This process's catalog of `root`, if it has read one (its own writes are taken into it)."""
    return _catalogs.get(root) or _catalogs.get(os.path.abspath(root))  # a key is absolute: the first is a shortcut


def forget(root: str) -> None:
    """Drop this process's catalog of `root` (the next `catalog` reads every segment again)."""
    _catalogs.pop(os.path.abspath(root), None)


def claimed(root: str, name: str, rep: int) -> SavedRepetition:
    """Repetition (name, rep) of the store in `root` as all segments say it now, for its claim (`Catalog.claimed`)."""
    return catalog(root, refresh=False).claimed(name, rep)


def catalog(root: str, force: bool = False, refresh: bool = True) -> Catalog:
    """This process's catalog of the store in `root`, `refresh`ed (`force`d: at once)."""
    found = _catalogs.get(root)  # a key is an absolute path: `root` found as it is needs no abspath
    if found is None:
        key = os.path.abspath(root)
        found = _catalogs.get(key)
        if found is None:
            found = _catalogs[key] = Catalog(key)
    return found.refresh(force) if refresh else found


def segment_sizes(root: str) -> dict[str, int] | None:
    """Each segment's size now, by name (None: no store here)."""
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


def find_compact_roots(sweep_folder: str) -> Iterator[str]:
    """The compact stores of a sweep folder (their folders, `compact_root`s), in order of their documents' names."""
    try:
        bases = sorted(entry.path for entry in os.scandir(sweep_folder) if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for base in bases:
        if os.path.isdir(compact_root(base)):
            yield compact_root(base)


def find_catalogs(sweep_folder: str) -> Iterator[tuple[str, Catalog]]:
    """The compact stores of a sweep folder: (document folder, its catalog), in order of name."""
    for root in find_compact_roots(sweep_folder):
        yield os.path.dirname(root), catalog(root, force=True)



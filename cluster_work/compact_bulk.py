"""A compact store's rows read in bulk for `load_results`: a million one-row repetitions in seconds, not minutes.

`compact_catalog.Catalog` is the definition: it takes every event of every segment in, one Python call a line, so
that claims made again (a resume, a requeue), cut-backs (`-r/-i`), statuses and drops say which rows count: ~35 s
of CPU for a store of 10^6 one-row repetitions. Most repetitions of a store need none of that: claimed once, by
one writer, whose rows 0, 1, 2... follow its claim in its segment, together. Their rows are one run of lines that
differ from a results file's lines only by the same prefix and one closing brace, so they are found with one
regular expression over each segment (a claim line, or a run of one repetition's row lines, per match) and cut to
a results file's lines by two byte replacements, in C. Every other repetition (claimed twice, a status, a
cut-back, rows not exactly 0, 1, 2... as the runner writes them, rows its segment did not claim before them) is
replayed: its lines alone, in each segment's order, through a catalog of its own, which is exact because what a
catalog says of a repetition depends only on that repetition's lines and on drops. A store with a drop (`-d`), or
with a line that is an event keyed otherwise than encode_row keys it, is left to the catalog whole (`read_bulk`
says None). What it gives is what the catalog gives for the same bytes: each repetition's rows as
`SavedRepetition.row_lines` joins them, its status, the params and base of the first of an experiment's
repetitions that has any, experiments in order of name and repetitions in order of number
(tests/test_compact_bulk compares the two).
"""
from __future__ import annotations

import json
import operator
import os
import re
from dataclasses import dataclass, field
from typing import Any

from .compact_catalog import Catalog, catalog, segment_sizes

_KEY = rb'\["(?:[^"\\\n]|\\.)*",-?\d+\]'  # a repetition's key as encode_row writes it: ["name",rep]
# each match, as the groups findall gives (b"" where a group took no part): a claim's line and its key; a run of one
# repetition's row lines and its key (the same key throughout: the backreference); a status's or a cut-back's line
# and its key; any other line
_EVENT = re.compile(rb'(\{"c":(' + _KEY + rb'),[^\n]*\}\n)'
                    rb'|(\{"w":(' + _KEY + rb'),"row":[^\n]*\}\n(?:\{"w":\4,"row":[^\n]*\}\n)*)'
                    rb'|(\{"[sk]":(' + _KEY + rb')[,}][^\n]*\n)'
                    rb'|([^\n]*\n)')
# how every row the runner writes begins, after a newline: a literal prefix, searched 2x faster than a line's start
_ITERATION = re.compile(rb'\n\{"iteration":(\d+)[,}]')
_NUMBERS: list[bytes] = []  # b"0", b"1", ...: the iterations a run's rows must have, grown as needed


Held = tuple[int, Any, Any, bytes, dict[str, Any]]  # a repetition on its way: number, params, base, rows, status


@dataclass(slots=True)
class BulkRepetition:
    rep: int
    rows: bytes  # its rows 0, 1, 2..., each a line (what a results file would hold); b"" where it has none
    status: dict[str, Any] = field(default_factory=dict)  # its latest status (none in a store read in bulk)


@dataclass(slots=True)
class BulkExperiment:
    name: str
    params: Any  # the first of its repetitions' claims (in order of number) that has any, as the catalog's
    base: str | None
    repetitions: list[BulkRepetition] = field(default_factory=list)  # in order of number


def read_bulk(root: str) -> list[BulkExperiment] | None:
    """The experiments of the compact store in `root` in order of name, read in bulk (see the module's docstring);
    None where a line is a drop or an event not keyed as encode_row keys it: the catalog must read the store."""
    names, datas = _segments(root)
    claims: dict[bytes, tuple[int, int, int]] = {}  # a key -> (segment, place among claim_lines, place in the
    claim_lines: list[bytes] = []  # segment) of its first claim, and that claim's line
    runs: dict[bytes, tuple[int, int, bytes]] = {}  # a key -> (segment, place, lines) of its run of rows
    later: list[tuple[bytes, int, int, bytes]] = []  # (key, segment, place, lines) of every other keyed line
    for segment, data in enumerate(datas):
        # findall: tuples made in C, no match object and no method call per line (half the time of finditer's)
        for place, (claim, claimed, run, run_key, keyed_line, keyed, other) in enumerate(_EVENT.findall(data)):
            if claimed and claimed not in claims:
                claims[claimed] = (segment, len(claim_lines), place)
                claim_lines.append(claim)
            elif run_key and run_key not in runs and claims.get(run_key, (-1,))[0] == segment:
                runs[run_key] = (segment, place, run)
            elif claimed or run_key or keyed:
                later.append((claimed or run_key or keyed, segment, place, claim or run or keyed_line))
            elif _an_event(other):
                return None
    try:
        events = json.loads(b"[" + b",".join(claim_lines) + b"]")
    except ValueError:
        return None
    replayed = {entry[0] for entry in later}
    rows_by_key = {}
    for key, (_, _, run) in runs.items():
        if key not in replayed:
            rows = _rows(key, run)
            if rows is None:
                replayed.add(key)
            else:
                rows_by_key[key] = rows
    by_name: dict[str, list[Held]] = {}
    try:
        for (key, _), event in zip(claims.items(), events):
            if key not in replayed:
                by_name.setdefault(str(event["c"][0]), []).append(
                    (int(event["c"][1]), event.get("params"), event.get("base"), rows_by_key.get(key, b""), {}))
    except (TypeError, KeyError, IndexError, ValueError, AttributeError):
        return None
    if replayed and not _replay(root, names, replayed, claims, claim_lines, runs, later, by_name):
        return None
    return _experiments(by_name)


def read_catalogued(root: str) -> list[BulkExperiment]:
    """The experiments of the compact store in `root` as this process's catalog of it reads them (the definition,
    for a store `read_bulk` leaves to it), in the same form."""
    by_name: dict[str, list[Held]] = {}
    _add_catalogued(catalog(root, force=True), by_name)
    return _experiments(by_name)


def _experiments(by_name: dict[str, list[Held]]) -> list[BulkExperiment]:
    """Each experiment of `by_name` (its repetitions: number, params, base, rows, status) in order of name, its
    repetitions in order of number, its params and base those of the first that has any (as the catalog's)."""
    experiments = []
    for name in sorted(by_name):
        repetitions = by_name[name]
        if len(repetitions) == 1:  # (a huge sweep's usual point: what the general case below gives, made directly)
            [(rep, params, base, rows, status)] = repetitions
            experiments.append(BulkExperiment(name, params or None, base or None, [BulkRepetition(rep, rows, status)]))
            continue
        repetitions.sort(key=_number)
        params = next((params for _, params, _, _, _ in repetitions if params), None)
        base = next((base for _, _, base, _, _ in repetitions if base), None)
        experiments.append(BulkExperiment(name, params, base, [BulkRepetition(rep, rows, status)
                                                               for rep, _, _, rows, status in repetitions]))
    return experiments


_number = operator.itemgetter(0)  # a held repetition's number


def _replay(root: str, names: list[str], replayed: set[bytes], claims: dict[bytes, tuple[int, int, int]],
            claim_lines: list[bytes], runs: dict[bytes, tuple[int, int, bytes]],
            later: list[tuple[bytes, int, int, bytes]],
            by_name: dict[str, list[Held]]) -> bool:
    """Add to `by_name` the repetitions of the `replayed` keys as a catalog reads them: every line of theirs, in
    each segment's order, into a catalog of their own (what it says of a repetition depends on that repetition's
    lines alone, and on drops, which no store read in bulk holds). False where one of them has another's name and
    number (a key written otherwise than encode_row writes it)."""
    lines = [entry[1:] for entry in later]
    for key in replayed:
        if key in claims:
            segment, number, place = claims[key]
            lines.append((segment, place, claim_lines[number]))
        if key in runs:
            lines.append(runs[key])
    lines.sort(key=lambda entry: entry[:2])
    replay = Catalog(root)
    for segment, _, data in lines:
        for line in data.split(b"\n")[:-1]:
            replay.apply_line(names[segment], line)
    return _add_catalogued(replay, by_name)


def _add_catalogued(read: Catalog, by_name: dict[str, list[Held]]) -> bool:
    """Add to `by_name` each repetition as the catalog `read` says it; False where one is there already (a key
    written otherwise than encode_row writes it, read in bulk under another)."""
    for name, reps in read.experiments().items():
        held = by_name.setdefault(name, [])
        known = {rep for rep, *_ in held}
        for rep in reps:
            if rep in known:
                return False
            saved = read.repetition(name, rep)
            held.append((rep, saved.params, saved.base, b"".join(line + b"\n" for line in saved.row_lines()),
                         dict(saved.status[1]) if saved.status else {}))
    return True


def _an_event(line: bytes) -> bool:
    """Whether a line the bulk reader did not take is an event the catalog would (a drop, a key written otherwise):
    one it skips (damaged, a power loss's zeros) is skipped here too."""
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


def _segments(root: str) -> tuple[list[str], list[bytes]]:
    """The segments' names and their complete lines, in order of name (a torn last line is left out, as the catalog
    leaves it)."""
    names, datas = [], []
    for name in sorted(segment_sizes(root) or {}):
        try:
            with open(os.path.join(root, name), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            continue
        names.append(name)
        datas.append(data[:data.rfind(b"\n") + 1])
    return names, datas


def _rows(key: bytes, run: bytes) -> bytes | None:
    """The rows of a run of `key`'s row lines as a results file holds them (each line's prefix up to the row, and
    the closing brace after it, cut away: the catalog's row bytes, joined); None unless they are rows 0, 1, 2...
    as the runner writes them. A JSON line holds no raw newline, so each line has exactly one "}\\n", its end."""
    count = run.count(b"\n")
    if count == 1:  # (a one-iteration repetition: the common case of a huge sweep, cut without the replaces)
        rows = run[len(key) + 12:-2] + b"\n"  # after '{"w":' key ',"row":', before '}\n'
        return rows if rows.startswith((b'{"iteration":0,', b'{"iteration":0}')) else None
    prefix = b'\n{"w":' + key + b',"row":'
    rows = (b"\n" + run).replace(prefix, b"\n").replace(b"}\n", b"\n")  # (after a newline: the first row too)
    while len(_NUMBERS) < count:
        _NUMBERS.append(str(len(_NUMBERS)).encode())
    if _ITERATION.findall(rows) != _NUMBERS[:count]:
        return None
    return rows[1:]

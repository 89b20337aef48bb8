"""A compact store's rows read in bulk for `load_results`, where its segments hold nothing but first claims and rows.

`compact_catalog.Catalog` is the definition: it takes every event of every segment in, one Python call a line, so
that claims made again (a resume, a requeue), cut-backs (`-r/-i`), statuses and drops say which rows count. A sweep
that ran once to its end holds none of those: each repetition was claimed once, by one writer, whose rows
0, 1, 2... follow its claim in its segment, together. There the rows of a repetition are one run of lines that
differ from a results file's lines only by the same prefix and one closing brace, so a store of 10^6 one-row
repetitions is read with a few regular expressions and byte replacements in C per repetition instead of some
twenty Python calls per line (the catalog: ~35 s of CPU for 10^6 repetitions).

`read_simple` says None wherever a store is not that simple, and `load_results` then reads it through the catalog:
a line of any other kind (a status, a cut-back, a drop, a damaged or foreign line), a repetition claimed twice, a
row whose repetition its own segment did not claim before it, a repetition's rows not together in one run, or rows
that are not exactly 0, 1, 2... as the runner writes them. What it gives is what the catalog gives for the same
bytes: each repetition's rows as `SavedRepetition.row_lines` joins them, its claim's params and base, experiments
in order of name and repetitions in order of number (tests/test_compact_bulk compares the two).
"""
from __future__ import annotations

import contextlib
import gc
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from .paths import SEGMENT_PREFIX

_KEY = rb'\["(?:[^"\\\n]|\\.)*",-?\d+\]'  # a repetition's key as encode_row writes it: ["name",rep]
# a claim's line, or a run of row lines of one repetition (the same key: the backreference); nothing else
_EVENT = re.compile(rb'(\{"c":(' + _KEY + rb'),[^\n]*\}\n)'
                    rb'|\{"w":(' + _KEY + rb'),"row":[^\n]*\}\n(?:\{"w":\3,"row":[^\n]*\}\n)*')
_ITERATION = re.compile(rb'^\{"iteration":(\d+)[,}]', re.MULTILINE)  # how every row the runner writes begins
_NUMBERS: list[bytes] = []  # b"0", b"1", ...: the iterations a run's rows must have, grown as needed


@dataclass
class BulkRepetition:
    rep: int
    rows: bytes  # its rows 0, 1, 2..., each a line (what a results file would hold); b"" where it has none
    status: dict[str, Any] = field(default_factory=dict)  # its latest status (none in a store read in bulk)


@dataclass
class BulkExperiment:
    name: str
    params: Any  # the first of its repetitions' claims (in order of number) that has any, as the catalog's
    base: str | None
    repetitions: list[BulkRepetition] = field(default_factory=list)  # in order of number


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while a bulk read makes its ~10^6 objects, none of them in a cycle: its
    passes over them, which the allocations trigger, cost 30 - 40% of such a read. As it was afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def read_simple(root: str) -> list[BulkExperiment] | None:
    """The experiments of the compact store in `root` in order of name, read in bulk; None where its segments hold
    anything but first claims and their rows (see the module's docstring): the catalog must read it."""
    claims: dict[bytes, tuple[int, int]] = {}  # a key -> (its segment, its place among the claim lines)
    claim_lines: list[bytes] = []
    runs: dict[bytes, bytes] = {}  # a key -> its run of row lines
    for segment, data in enumerate(_segments(root)):
        position = 0
        for found in _EVENT.finditer(data):
            if found.start() != position:  # a line of another kind (or damaged) before this one
                return None
            position = found.end()
            claimed = found.group(2)
            if claimed is not None:
                if claimed in claims:
                    return None
                claims[claimed] = (segment, len(claim_lines))
                claim_lines.append(found.group(1))
            else:
                key = found.group(3)
                if claims.get(key, (-1,))[0] != segment or key in runs:
                    return None
                runs[key] = found.group(0)
        if position != len(data):
            return None
    try:
        events = json.loads(b"[" + b",".join(claim_lines) + b"]")
        keys = [(str(event["c"][0]), int(event["c"][1])) for event in events]
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    by_name: dict[str, list[tuple[int, Any, bytes]]] = {}
    for (key, (_, place)), (name, rep) in zip(claims.items(), keys):
        rows = _rows(key, runs[key]) if key in runs else b""
        if rows is None:
            return None
        by_name.setdefault(name, []).append((rep, place, rows))
    experiments = []
    for name in sorted(by_name):
        repetitions = sorted(by_name[name])
        params = next((events[place].get("params") for _, place, _ in repetitions
                       if events[place].get("params")), None)
        base = next((events[place].get("base") for _, place, _ in repetitions if events[place].get("base")), None)
        experiments.append(BulkExperiment(name, params, base,
                                          [BulkRepetition(rep, rows) for rep, _, rows in repetitions]))
    return experiments


def _segments(root: str) -> list[bytes]:
    """Each segment's complete lines, in order of name (a torn last line is left out, as the catalog leaves it)."""
    try:
        names = sorted(entry.name for entry in os.scandir(root) if entry.name.startswith(SEGMENT_PREFIX))
    except FileNotFoundError:
        return []
    segments = []
    for name in names:
        try:
            with open(os.path.join(root, name), "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            continue
        segments.append(data[:data.rfind(b"\n") + 1])
    return segments


def _rows(key: bytes, run: bytes) -> bytes | None:
    """The rows of a run of `key`'s row lines as a results file holds them (each line's prefix up to the row, and
    the closing brace after it, cut away: the catalog's row bytes, joined); None unless they are rows 0, 1, 2...
    as the runner writes them. A JSON line holds no raw newline, so each line has exactly one "}\\n", its end."""
    count = run.count(b"\n")
    if count == 1:  # (a one-iteration repetition: the common case of a huge sweep, cut without the replaces)
        rows = run[len(key) + 12:-2] + b"\n"  # after '{"w":' key ',"row":', before '}\n'
        return rows if rows.startswith((b'{"iteration":0,', b'{"iteration":0}')) else None
    prefix = b'\n{"w":' + key + b',"row":'
    rows = (b"\n" + run).replace(prefix, b"\n")[1:].replace(b"}\n", b"\n")
    while len(_NUMBERS) < count:
        _NUMBERS.append(str(len(_NUMBERS)).encode())
    if _ITERATION.findall(rows) != _NUMBERS[:count]:
        return None
    return rows

"""Results files read by pyarrow's JSON reader into the very frame the plain reader makes, 3-4x faster.

The plain reader (`results._parsed_rows`) is the definition: each file's longest prefix of rows 0, 1, 2...
as `parse_results` reads them with Python's json, and one frame that pandas infers from all those rows.
pyarrow parses and infers otherwise at the edges, so every difference that could change a column, a dtype
or a value is either ruled out by a check here or makes the reader give up (None): then the plain reader
reads everything. Each check says which difference it rules out. Never given up on: torn last lines, rows
out of order, columns in some files only, ints and floats in one column, NaN and infinities, dates.

Files are parsed in pieces of about PIECE_SIZE bytes on a pool of threads while the caller reads more.
Imports pyarrow, numpy and pandas only when used: `import cluster_work` needs none of them.
"""
from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from mmap import mmap
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from concurrent.futures import Future, ThreadPoolExecutor

    import pandas as pd

PIECE_SIZE = 4 << 20  # bytes one call of pyarrow's reader parses, as one block on one thread (tests make it small)


@contextmanager
def malloc_pool() -> Iterator[None]:
    """pyarrow allocates from the C library's malloc within (its system pool), unless the user chose a pool
    (ARROW_DEFAULT_MEMORY_POOL); the pool it found is its default again afterwards.

    Why: reading 10^6 lines allocates ~1 GB that a fresh process must fault in, and with pyarrow's default pool
    (mimalloc) that costs 2 - 3 s of system time, nearly all of it the kernel zeroing pages (perf: clear_page;
    fewer faults than malloc's, each zeroing more: huge pages, it seems), against ~1 s from malloc. load_results
    of 10^6 one-row repetitions of a compact store, in a fresh process on 2 cores: 3.5 - 4.1 s with mimalloc,
    2.5 - 2.8 s with malloc (jemalloc alike)."""
    try:
        import pyarrow
    except ImportError:
        yield
        return
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL"):
        yield
        return
    found = pyarrow.default_memory_pool()
    pyarrow.set_memory_pool(pyarrow.system_memory_pool())
    try:
        yield
    finally:
        pyarrow.set_memory_pool(found)


def give_back_freed_memory() -> None:
    """Hand the C library's freed memory back to the system (glibc's `malloc_trim`, as dask's workers do; elsewhere
    nothing). A parse frees ~3x the bytes it read, which glibc keeps in its threads' arenas, so that a second parse
    in the same process comes on top of the first's peak: sealing a 10^6-point store's two segments in one process,
    747 MB at most without it, 497 - 544 MB with it between the two."""
    import ctypes

    try:
        ctypes.CDLL(None).malloc_trim(0)  # (the process's own symbols: the C library it runs on)
    except (OSError, AttributeError):  # (a C library without malloc_trim: musl, macOS)
        pass


def start_reader() -> Reader:
    """A Reader with a pool of threads, or one that gives None where pyarrow is missing."""
    try:
        import pyarrow.json  # noqa: F401  (here, not first in a thread)
    except ImportError:
        return Reader(None)
    return Reader(parse_pool())


def parse_pool() -> ThreadPoolExecutor:
    """A pool of a thread per core this process may use (a job's share) for pyarrow's parses; pyarrow imported."""
    from concurrent.futures import ThreadPoolExecutor

    import pyarrow.json  # noqa: F401  (here, not first in a thread)

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return ThreadPoolExecutor(cores or 1)


class Reader:
    """Takes the repetitions' chunks in order (`add`): a results file's complete lines, or the original's rows,
    which make it give up; `rows` then gives what `results._parsed_rows` gives for the same chunks: one frame
    of every file's rows and the number of rows of each, or None. Its pool ends with `rows`, or when it is
    dropped unused (the pool's threads end when it is garbage)."""

    def __init__(self, pool: ThreadPoolExecutor | None):
        self._pool = pool  # None: pyarrow is missing, or the reader gave up
        self._chunks: list[bytes] = []
        self._pending: list[bytes] = []  # chunks not yet in a piece
        self._pending_size = 0
        self._pieces: list[tuple[int, Future[Any]]] = []  # (first byte, parse) of each piece, in order
        self._size = 0

    def add(self, chunk: bytes | list[dict[str, Any]]) -> None:
        if self._pool is None:
            return
        if not isinstance(chunk, bytes) or (chunk and not chunk.endswith(b"\n")):
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool, self._chunks, self._pending, self._pieces = None, [], [], []
            return
        self._chunks.append(chunk)
        self._pending.append(chunk)
        self._pending_size += len(chunk)
        if self._pending_size >= PIECE_SIZE:
            self._submit()

    def _submit(self) -> None:
        """Parse the pending chunks: one piece, or pieces of whole lines where one file is larger."""
        assert self._pool is not None
        data, start = b"".join(self._pending), 0
        self._pending, self._pending_size = [], 0
        while start < len(data):
            end = data.index(b"\n", min(start + PIECE_SIZE, len(data)) - 1) + 1
            self._pieces.append((self._size + start, self._pool.submit(read_piece, data[start:end])))
            start = end
        self._size += len(data)

    def rows(self) -> tuple[pd.DataFrame, list[int]] | None:
        if self._pool is None:
            return None
        try:
            return self._rows()
        finally:
            self._pool.shutdown(cancel_futures=True)

    def _rows(self) -> tuple[pd.DataFrame, list[int]] | None:
        assert self._pool is not None
        import numpy as np
        import pandas as pd
        import pyarrow

        self._submit()
        parsed = [(offset, piece.result()) for offset, piece in self._pieces]
        if any(piece is None for _, piece in parsed):
            return None
        lengths = np.array([len(chunk) for chunk in self._chunks], dtype=np.int64)
        if not parsed:
            return pd.DataFrame(), [0] * len(self._chunks)
        ends = np.concatenate([offset + piece[1] for offset, piece in parsed])  # every newline
        counts = np.diff(np.searchsorted(ends, np.cumsum(lengths)), prepend=0)  # lines (rows) per file
        table = concatenated([piece[0] for _, piece in parsed])
        if table is None or not is_plain(table) or "iteration" not in table.column_names:
            return None
        iterations = table.column("iteration")
        if not (pyarrow.types.is_int64(iterations.type) or pyarrow.types.is_float64(iterations.type)):
            return None  # (Python takes True for 1: pyarrow refuses true beside numbers)
        starts = np.cumsum(counts) - counts  # each file's first row
        position = np.arange(len(ends)) - np.repeat(starts, counts)  # each row's in its file: its iteration
        in_order = iterations.to_numpy() == position  # (a missing iteration reads as NaN: out of order)
        if in_order.all():
            return table.to_pandas(), counts.tolist()
        kept = counts.copy()  # per file: the rows before its first out of order; read those again
        np.minimum.at(kept, np.repeat(np.arange(len(counts)), counts)[~in_order], position[~in_order])
        again = Reader(self._pool)
        for chunk, start, keep, offset in zip(self._chunks, starts.tolist(), kept.tolist(),
                                              (np.cumsum(lengths) - lengths).tolist()):
            again.add(chunk[:ends[start + keep - 1] + 1 - offset] if keep else b"")
        return again._rows()


def read_piece(data: bytes) -> tuple[Any, Any] | None:
    """A piece of whole lines as a pyarrow table with one row per line, and the positions of its newlines;
    None unless each line is one object that Python's json reads alike (see `plain_floats` for numbers).

    A line that starts with "{" and ends with "}" cannot go on on the next one (after a "}" that closes a
    nested value, "{" is no valid JSON), so as many rows as lines means one object per line (pyarrow skips
    blank lines and reads two objects on one line, where Python's json stops). pyarrow passes invalid UTF-8
    through. It is given the piece as one block: across blocks of one call pyarrow 26 crashes, or turns
    numbers into strings without a word, where a column's type changes; within a block it says so. It makes
    ISO dates timestamps, so a piece with dates is read again with those columns as the strings they are."""
    import numpy as np
    import pyarrow
    import pyarrow.json

    text = np.frombuffer(data, np.uint8)
    ends = np.flatnonzero(text == ord("\n"))
    if text[0] != ord("{") or (text[ends - 1] != ord("}")).any() or (text[ends[:-1] + 1] != ord("{")).any():
        return None
    if not data.isascii():
        try:
            data.decode()
        except UnicodeDecodeError:
            return None
    options = pyarrow.json.ReadOptions(block_size=len(data) + 1, use_threads=False)
    try:
        table = pyarrow.json.read_json(pyarrow.BufferReader(data), read_options=options)
        dates = [field.name for field in table.schema if pyarrow.types.is_timestamp(field.type)]
        if dates:
            strings = pyarrow.json.ParseOptions(explicit_schema=pyarrow.schema([(n, pyarrow.string()) for n in dates]))
            table = pyarrow.json.read_json(pyarrow.BufferReader(data), read_options=options,
                                           parse_options=strings).select(table.column_names)
    except pyarrow.ArrowException:  # invalid JSON, a column whose type changes, nested types it cannot build
        return None
    if table.num_rows != len(ends) or not plain_floats(table, data):
        return None
    return table, ends


def plain_floats(table: Any, data: bytes | mmap) -> bool:
    """Whether the float columns hold nothing that pyarrow read otherwise than Python: integers beyond int64
    (floats there, exact in Python), the integer -0 among floats (-0.0 there, 0 in Python), and non-finite
    numbers only pyarrow takes (-NaN, Inf, -Inf; both take NaN, Infinity, -Infinity)."""
    import numpy as np
    import pyarrow

    non_finite = negative_zero = False
    for column in table.columns:
        if not pyarrow.types.is_float64(column.type):
            continue
        values = column.to_numpy()
        finite = np.isfinite(values)
        if (np.abs(values[finite]) >= 2.0**63).any():
            return False
        non_finite = non_finite or np.count_nonzero(~finite) > column.null_count
        negative_zero = negative_zero or bool(np.signbit(values[values == 0]).any())
    if non_finite and (b"-NaN" in data or re.search(rb"Inf(?!inity)", data)):  # (-NaN, Inf: pyarrow's alone)
        return False
    return not (negative_zero and re.search(rb"-0(?![.0-9eE])", data))


def concatenated(pieces: list[Any]) -> Any:
    """The pieces one after the other, a column's type the one type it has in every piece that holds values in
    it (a piece's column of nulls only takes it), ints made floats where other pieces hold floats (as pyarrow
    does within a block, and pandas too); None where a column has other types in other pieces."""
    import pyarrow

    kinds: dict[str, set[Any]] = {}
    for piece in pieces:
        for field in piece.schema:
            if not pyarrow.types.is_null(field.type):
                kinds.setdefault(field.name, set()).add(field.type)
    floats = {name for name, types in kinds.items() if types == {pyarrow.int64(), pyarrow.float64()}}
    if any(len(types) > 1 for name, types in kinds.items() if name not in floats):
        return None
    for index, piece in enumerate(pieces):
        for name in floats & set(piece.column_names):
            if pyarrow.types.is_int64(piece.schema.field(name).type):
                position = piece.schema.get_field_index(name)
                piece = piece.set_column(position, name, piece.column(name).cast(pyarrow.float64(), safe=False))
        pieces[index] = piece
    return pyarrow.concat_tables(pieces, promote_options="default")


def is_plain(table: Any) -> bool:
    """Whether pandas converts every column as it converts the Python values of the same rows: int64 (float64
    where rows lack it), float64 and str do; booleans only without gaps (pandas keeps a missing value (NaN)
    apart from a null (None), pyarrow has one null); nested values and columns of nulls only do not."""
    import pyarrow

    types = pyarrow.types
    return all(types.is_int64(column.type) or types.is_float64(column.type) or types.is_string(column.type)
               or (types.is_boolean(column.type) and column.null_count == 0) for column in table.columns)

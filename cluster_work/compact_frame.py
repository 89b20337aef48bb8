"""A large compact store's rows read into load_results' frame in columns, by pyarrow: 10^6 one-row repetitions in
2.0 - 3.0 s on 2 cores, where the bulk reader (`compact_bulk`), Python objects per repetition, takes 12 - 14 s;
1.0 - 1.7 s where a run's end sealed its segments (`seal`: each one's parse kept beside it, compact_sealed).

Every line of a store's segments is an event keyed as encode_row keys it, `{"c":["name",rep],...}` (a claim,
its params), `{"w":["name",rep],"row":{...}}` (a row) and so on. A key's list mixes a string and a number, which
pyarrow's JSON reader cannot type, so each key's bracket, comma, digits and closing bracket are overwritten with
blanks, in place, after its number was read off in numpy: `{"c": "name"   ,...}`, the same event but for the
number, and valid JSON. pyarrow then parses the segments (pieces on a pool of threads, each as soon as its lines
are read) into one table, a row per line. An experiment whose every repetition was claimed once, wrote its rows
0, 1, 2... after its claim in its claim's segment and has no status and no cut-back, its claims all of the same
params (most of a sweep), is read off its claims and rows in numpy, all such experiments at once; any other is
replayed, its lines in the segments' order, as the catalog takes them in (`_replayed`), and its rows are the lines
that replay keeps. The frame is made of the table's columns in load_results' order (name, number, iteration).

What it gives is what load_results gives for the same store read by `compact_bulk` and `arrow_rows` (the
definition: tests/test_compact_frame compares the two), or None wherever that could differ, and the caller reads
the store that way. None for: a store of fewer than MIN_BYTES bytes, or of more than ROWS_PER_CLAIM rows a claim
(that way is as fast), no pyarrow, a line not keyed as encode_row keys it (a drop, a power loss's zeros), a name
escaped otherwise than encode_row escapes it, a repetition numbered with more than _MAX_DIGITS digits, a claim
without a parameter another has, a column pyarrow types otherwise than pandas types Python's values (see
arrow_rows; where rows were left out, pyarrow typed them too: a float column of whole numbers that the store also
writes as integers), and a result column whose place among the columns a null written leaves open.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from mmap import mmap
from typing import TYPE_CHECKING, Any

from . import arrow_rows, compact_sealed
from .compact_catalog import Catalog, segment_sizes
from .compact_process import any_held
from .config import flatten_mapping
from .rows import encode_row
from .vocabulary import Record

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

MIN_BYTES = 4 << 20  # a smaller store (~2 x 10^4 lines) is read by compact_bulk, as fast there; tests set it to 0
ROWS_PER_CLAIM = 50  # a store with more lines per claim (long repetitions, few) is read as fast by compact_bulk:
# its cost is per repetition, and both parse rows with pyarrow (10^4 repetitions x 100 rows: 1.4 s either way)
SEAL_MIN_BYTES = 1 << 20  # a smaller segment is not sealed (compact_sealed): parsed as fast (~5000 lines)
SAMPLE = 1 << 20  # bytes of a store's largest segment that say how long its repetitions are
PIECE_SIZE = 16 << 20  # bytes of whole lines pyarrow parses as one block on one thread (2x faster than 4 MB here)
READ_SIZE = 4 << 20  # bytes read at once: pieces go to the threads as soon as their lines are read
SCAN_SIZE = 4 << 20  # bytes numpy compares at once: the comparison's array stays small (no page faults of 200 MB)
_MAX_DIGITS = 7  # a repetition's number has at most this many digits (read off the 8 bytes before its "]")
_KINDS = b"cwsk"  # the keyed events: claim, row, status, cut-back (a drop, `{"d":name}`, is not keyed)
C, W, S, K = _KINDS
_HEAD = int.from_bytes(b'{"\0":["\0', "little")  # how a keyed line begins, its kind's byte and 8th byte aside
_HEAD_MASK = int.from_bytes(b"\xff\xff\0\xff\xff\xff\xff\0", "little")
_DROP = int.from_bytes(b'{"d":"\0\0', "little")  # how a drop (-d) begins: keyed by its experiment's name alone
_DROP_MASK = int.from_bytes(b"\xff" * 6 + b"\0\0", "little")
D = ord("d")
META_NAMES = ("experiment", "rep", "iteration", "stop_reason")


@dataclass
class StoreFrame:
    """A compact store's share of load_results: its rows' frame (None: no row kept), which of its columns are
    the meta columns (experiment, rep, iteration, params.*, stop_reason), and the names and bases of all its
    experiments (pyarrow arrays: made a set only where asked, `names`)."""
    frame: pd.DataFrame | None
    meta: list[str]
    experiment_names: Any
    bases: Any

    def names(self) -> set[str]:
        return set(self.experiment_names.to_pylist()) | set(self.bases.to_pylist() if self.bases is not None else ())


def read_frame(root: str, kept_names: set[str] | None = None,
               params: Mapping[str, Any] | None = None) -> StoreFrame | None:
    """The rows of the compact store in `root` as load_results gives them (only experiments whose name or base is
    in `kept_names`, and whose params have `params`' values), read in columns; None where this reader cannot be
    sure of that (see the module's docstring): read the store with compact_bulk."""
    if params and not all(type(value) in (int, float, str, bool) for value in params.values()):
        return None  # (a list's or a mapping's equality is not a column's)
    try:
        import pyarrow  # noqa: F401
        import pyarrow.json  # noqa: F401
    except ImportError:
        return None
    files = _segment_files(root)
    if not _read_in_columns(files):
        return None
    read = _parsed(files)
    if read is None:
        return None
    try:
        return _frame(*read, kept_names, params)
    except pyarrow.ArrowNotImplementedError:
        return None  # a column of a type no kernel compares or sorts (a store's lines as no writer of ours writes)


def seal(root: str) -> int:
    """Seal (compact_sealed) each segment of the store in `root` of at least SEAL_MIN_BYTES that ends with a whole
    line and has no sealed segment to take, where read_frame reads the store in columns and no live process holds
    a repetition of it (no run writes it now); how many were sealed. One segment at a time: a run's launcher, at its
    end, needs memory for the largest one's parse (~3.5x its bytes) and ~2 s of CPU per 100 MB (10^6 one-row
    repetitions in one 211 MB segment: 2.1 - 2.7 s on 2 cores, 720 MB at most)."""
    files = _segment_files(root)
    if not _read_in_columns(files) or any_held(root):
        return 0  # (before pyarrow is imported: most stores are small)
    try:
        import pyarrow.json  # noqa: F401
    except ImportError:
        return 0
    count = 0
    with arrow_rows.malloc_pool():
        for path, size in files:
            if size < SEAL_MIN_BYTES or compact_sealed.is_sealed(path, size):
                continue
            try:
                with open(path, "rb", buffering=0) as handle:
                    stat = os.fstat(handle.fileno())
                    whole = stat.st_size == size and os.pread(handle.fileno(), 1, size - 1) == b"\n"
            except OSError:  # (gone since it was listed, or not ours to read)
                continue
            read = _parsed([(path, size)]) if whole else None  # (a torn last line: a writer killed, or writing)
            if read is not None:
                table, keys = read[:2]
                del read  # (its buffer of the segment's bytes, freed before the sealed one is made)
                count += compact_sealed.write(path, size, stat.st_mtime_ns, (keys.starts, keys.kinds, keys.reps,
                                                                            keys.name_sizes), table)
                del table, keys
                arrow_rows.give_back_freed_memory()  # (else the next segment's parse comes on top of this one's)
    return count


def _segment_files(root: str) -> list[tuple[str, int]]:
    """The store's segments (their paths), in order of name, and their sizes."""
    return [(os.path.join(root, name), size) for name, size in sorted((segment_sizes(root) or {}).items())]


def _read_in_columns(files: list[tuple[str, int]]) -> bool:
    """Whether a store of the segments `files` is one read_frame reads (else compact_bulk, as fast): MIN_BYTES or
    more, of short repetitions."""
    return sum(size for _, size in files) >= MIN_BYTES and bool(files) and _short_repetitions(files)


def _short_repetitions(files: list[tuple[str, int]]) -> bool:
    """Whether the store's repetitions write at most ROWS_PER_CLAIM rows a claim, judged by the first SAMPLE bytes
    of its largest segment (a judgement of speed only: either way reads the store right)."""
    path, _ = max(files, key=lambda file: file[1])
    try:
        with open(path, "rb") as handle:
            sample = handle.read(SAMPLE)
    except FileNotFoundError:
        return False
    return sample.count(b'{"c":[') * ROWS_PER_CLAIM >= sample.count(b"\n")


def _read_lines(files: list[tuple[str, int]], buffer: mmap, segment_ends: list[int]) -> Iterator[int]:
    """Read the segments `files` one after the other into `buffer`, READ_SIZE bytes at a time; after each read, say
    where the complete lines read so far end (what is before that is final). A segment's torn last line is left out,
    as the catalog leaves it (the next segment is read over it); where each segment's lines end is appended to
    `segment_ends`. A segment is read up to the size it had when listed (it may have grown since)."""
    complete = 0  # the end of the complete lines read so far
    for path, size in files:
        start = end = complete  # (where this segment's bytes begin, and end so far)
        try:
            with open(path, "rb", buffering=0) as handle, memoryview(buffer) as view:
                while end - start < size:
                    got = handle.readinto(view[end:start + min(size, end - start + READ_SIZE)])
                    if not got:
                        break
                    end += got
                    complete = max(complete, buffer.rfind(b"\n", end - got, end) + 1)  # (its new bytes only)
                    yield complete
        except FileNotFoundError:
            pass
        segment_ends.append(complete)
    yield complete


@dataclass
class _Keys:
    """Each line's start, its event's kind (a byte of _KINDS, or D: a drop), its repetition's number, its segment,
    and the length of its name as written (between its quotes, which start 7 bytes into the line; -1: a drop's)."""
    starts: np.ndarray
    kinds: np.ndarray
    reps: np.ndarray
    segments: np.ndarray
    name_sizes: np.ndarray


def _positions(text: np.ndarray, byte: int) -> np.ndarray:
    """Where `byte` is in `text`, compared SCAN_SIZE bytes at a time."""
    import numpy as np

    found = [np.flatnonzero(text[at:at + SCAN_SIZE] == byte) + at for at in range(0, len(text), SCAN_SIZE)]
    return np.concatenate(found) if found else np.zeros(0, np.int64)


def _read_keys(text: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Read the key of each line of `text` (whole lines) and blank its list's punctuation and number out, in place
    (see the module's docstring): the lines' starts, kinds, numbers and names' sizes (see _Keys); None unless every
    line is a drop (`{"d":"`, its name a JSON string pyarrow reads) or starts `{"X":["` (X one of _KINDS) and its
    list is a quoted name, a comma and a number of at most _MAX_DIGITS digits without a sign or a leading zero,
    then `]`."""
    import numpy as np

    ends = _positions(text, ord("\n"))
    starts = np.concatenate([[0], ends[:-1] + 1]).astype(np.int64)
    if not len(ends) or (ends - starts < 12).any():
        return None
    # the 8 bytes from each place as one little-endian integer (an unaligned view, no copy): one gather per line
    # reads its head, another the digits before its list's end
    words = np.ndarray(shape=(len(text) - 7,), dtype="<u8", buffer=text, strides=(1,))
    heads = words[starts]
    kinds = ((heads >> np.uint64(16)) & np.uint64(0xFF)).astype(np.uint8)
    keyed = ((heads & _HEAD_MASK) == _HEAD) & np.isin(kinds, list(_KINDS))
    drops = (heads & _DROP_MASK) == _DROP
    if not (keyed | drops).all():
        return None
    if not drops.any():  # (most stores: every line keyed, no subset made)
        lists = _read_lists(text, words, starts, ends)
        if lists is None:
            return None
        reps, name_sizes = lists
        return starts, kinds, reps, name_sizes
    lines = np.flatnonzero(keyed)
    lists = _read_lists(text, words, starts[lines], ends[lines])
    if lists is None:
        return None
    reps, name_sizes = np.zeros(len(starts), np.int64), np.full(len(starts), -1, np.int64)
    reps[lines], name_sizes[lines] = lists
    return starts, kinds, reps, name_sizes


def _read_lists(text: np.ndarray, words: np.ndarray, starts: np.ndarray,
                ends: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The numbers and names' sizes of the keyed lines that start at `starts` (see `_read_keys`), their lists
    blanked out in place; None where one is not as encode_row writes it."""
    import numpy as np

    if not len(starts):  # (a piece of drops only)
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    brackets = _positions(text, ord("]"))
    found = np.searchsorted(brackets, starts + 7)
    if (found >= len(brackets)).any():
        return None
    close = brackets[found]  # the first "]" after the name's opening quote: the list's end, unless the name holds one
    if (close >= ends).any():
        return None
    before = words[close - 8]  # (a line's "]" is at least 10 bytes into it)
    digits = np.zeros(len(close), np.int64)
    reps = np.zeros(len(close), np.int64)
    scale = np.ones(len(close), np.int64)
    going = np.ones(len(close), bool)
    for back in range(1, _MAX_DIGITS + 2):
        byte = ((before >> np.uint64(64 - 8 * back)) & np.uint64(0xFF)).astype(np.int64)
        going &= (byte >= ord("0")) & (byte <= ord("9"))
        if not going.any():
            break
        reps += np.where(going, (byte - ord("0")) * scale, 0)
        scale *= 10
        digits += going
    comma, quote = close - digits - 1, close - digits - 2
    name_sizes = quote - (starts + 7)
    if not ((digits >= 1) & (digits <= _MAX_DIGITS) & ((digits == 1) | (text[close - digits] != ord("0")))
            & (text[comma] == ord(",")) & (text[quote] == ord('"')) & (name_sizes >= 0)
            & np.isin(text[close + 1], [ord(","), ord("}")])).all():
        return None
    if np.isin(text[quote - 1], [ord("\\")]).any():
        return None  # (a name ending in an escape: the exact name check below would reject it too)
    text[starts + 5] = ord(" ")
    text[comma] = ord(" ")
    text[close] = ord(" ")
    for back in range(1, int(digits.max()) + 1):
        text[(close - back)[digits >= back]] = ord(" ")
    return reps, name_sizes


def _parsed(files: list[tuple[str, int]]) -> tuple[Any, _Keys, mmap] | None:
    """The complete lines of the segments `files`, their keys read and blanked (`_read_keys`), parsed by pyarrow into
    one flat table, a row per line: `name` (the key's name), `base`, `t`, `n`, `at`, `params.<path>` (every
    parameter, flattened as flatten_mapping flattens) and `row.<column>` (the row's columns, one level); the lines'
    keys; and the buffer they were read into, one segment's after the other's (zeros after the last). Parsed in
    pieces of whole lines on a pool of threads (numpy and pyarrow let go of the interpreter's lock) while more are
    read; a sealed segment's lines (compact_sealed) are taken as sealed, not parsed (nor blanked: blanks where a key
    was are all that parsing changes in the buffer, and what reads it after the table finds the same either way).
    None where a key is not as encode_row writes it, a piece is not what Python's json reads alike
    (arrow_rows.read_piece) or a column's type differs between pieces (arrow_rows.concatenated)."""
    import numpy as np

    total = sum(size for _, size in files)
    if not total:
        return None
    buffer = mmap(-1, total)  # (its pages are zeroed as they are first read into, not all before the first piece)
    segment_ends: list[int] = []
    sealed = [compact_sealed.read(path, size) for path, size in files]
    cuts = [0]  # pieces of whole lines: each ends with the first line that reaches PIECE_SIZE bytes into it
    pool = arrow_rows.parse_pool()
    try:
        pieces: list[Future[Any]] = []
        taken = 0  # the segments read whole and taken in (a sealed one's lines as sealed)
        for complete in _read_lines(files, buffer, segment_ends):
            for index in range(taken, len(segment_ends)):
                start = segment_ends[index - 1] if index else 0
                found = sealed[index]
                if found is not None:  # (its lines before it cut into pieces: see below)
                    if cuts[-1] != start or segment_ends[index] - start != files[index][1]:
                        return None  # (gone or shorter since it was listed)
                    if _lines_start_at(buffer, start, segment_ends[index], found[0][0]):
                        pieces.append(Future())
                        pieces[-1].set_result(found)
                        cuts.append(segment_ends[index])
                    else:  # (not this segment's parse: its lines are parsed as another's are, below)
                        sealed[index] = None
            taken = reading = len(segment_ends)  # the segment being read (all read: len(files))
            end_of_piece = complete if reading == len(files) or sealed[reading] is None else \
                (segment_ends[-1] if segment_ends else 0)  # (the lines before a sealed segment)
            while end_of_piece - cuts[-1] >= PIECE_SIZE or (end_of_piece < complete or reading == len(files)) \
                    and end_of_piece > cuts[-1]:  # (those, or the last lines: however short)
                end = buffer.find(b"\n", min(cuts[-1] + PIECE_SIZE, end_of_piece) - 1, end_of_piece) + 1 \
                    or end_of_piece
                pieces.append(pool.submit(_keyed_piece, buffer, cuts[-1], end))
                cuts.append(end)
        read = [piece.result() for piece in pieces]
    finally:
        pool.shutdown()
    buffer[cuts[-1]:] = bytes(total - cuts[-1])  # (a torn last line, what a segment gone since it was listed left)
    if not read or any(piece is None for piece in read):
        return None
    starts, kinds, reps, name_sizes = (np.concatenate(parts) for parts in zip(*(
        (piece[0][0] + start, *piece[0][1:]) for piece, start in zip(read, cuts))))  # type: ignore[index]
    table = arrow_rows.concatenated([piece[1] for piece in read])  # type: ignore[index]
    if table is None:
        return None
    segments = np.searchsorted(np.asarray(segment_ends, np.int64), starts, side="right")
    return table, _Keys(starts, kinds, reps, segments, name_sizes), buffer


def _lines_start_at(buffer: mmap, start: int, end: int, starts: np.ndarray) -> bool:
    """Whether each of `starts` (from `start`) is where a line of buffer[start:end] starts, and its last ends there:
    a sealed segment's lines are those of its segment (its stamp says so; a damaged one is not taken)."""
    import numpy as np

    text = np.frombuffer(buffer, np.uint8, end - start, start)
    return bool(text[-1] == ord("\n") and (text[starts] == ord("{")).all()
                and (text[starts[1:] - 1] == ord("\n")).all())


def _keyed_piece(buffer: mmap, start: int, end: int) -> tuple[tuple[np.ndarray, ...], Any] | None:
    """The keys (`_read_keys`, blanking them) and the table (`_flat_piece`) of the whole lines buffer[start:end]."""
    import numpy as np

    keys = _read_keys(np.frombuffer(buffer, np.uint8, end - start, start))
    if keys is None:
        return None
    table = _flat_piece(buffer[start:end])
    return None if table is None else (keys, table)


def _flat_piece(data: bytes) -> Any:
    """A piece's lines as `_parsed`'s columns (None: see arrow_rows.read_piece)."""
    import pyarrow
    import pyarrow.compute

    read = arrow_rows.read_piece(data)
    if read is None:
        return None
    table = read[0]
    present = [table.column(kind) for kind in "cwskd" if kind in table.column_names]
    columns: dict[str, Any] = {"name": pyarrow.compute.coalesce(*present) if len(present) > 1 else present[0]}
    for field in ("base", "t", "n", "at"):  # (a claim's or status's base and time, a cut-back's count)
        if field in table.column_names:
            columns[field] = table.column(field)
    if "params" in table.column_names:  # (a claim without params keeps its repetition's before: told apart)
        columns["has_params"] = table.column("params").is_valid()
    for field, prefix, deep in (("params", "params.", True), ("row", "row.", False)):
        if field in table.column_names:
            _flatten_into(columns, prefix, table.column(field), deep)
    return pyarrow.table(columns)


def _flatten_into(columns: dict[str, Any], prefix: str, column: Any, deep: bool) -> None:
    """A struct column's fields as columns named `prefix` + field (nested structs, where `deep`, as flatten_mapping
    flattens nested mappings); a column that is no struct, as it is (not plain: load_results' reader gives up)."""
    import pyarrow

    if not pyarrow.types.is_struct(column.type):
        columns[prefix.rstrip(".")] = column
        return
    fields = [chunk.flatten() for chunk in column.chunks]  # (flatten: a field is null where its struct is)
    for index in range(column.type.num_fields):
        field = column.type.field(index)
        child = pyarrow.chunked_array([chunk[index] for chunk in fields], field.type)
        if deep and pyarrow.types.is_struct(field.type) and field.type.num_fields:
            _flatten_into(columns, f"{prefix}{field.name}.", child, deep)
        else:
            columns[prefix + field.name] = child


@dataclass
class _Experiments:
    """The store's experiments, in order of name (an experiment's number is its place): each one's line whose
    params and base are its own (-1: none), whether it has a claim or a status (the catalog knows it), and each
    repetition's stop reason (stopped by a campaign) by its key."""
    params_line: np.ndarray
    known: np.ndarray
    stop_reasons: dict[int, str]


def _frame(table: Any, keys: _Keys, buffer: mmap, kept_names: set[str] | None,
           params: Mapping[str, Any] | None) -> StoreFrame | None:
    """The frame of the parsed lines (see `_parsed`): rows, in order, of what `_rows` says counts."""
    import numpy as np
    import pyarrow
    import pyarrow.compute as compute

    names = table.column("name").combine_chunks()
    if names.null_count or not pyarrow.types.is_string(names.type) or not _names_as_written(names, keys, buffer):
        return None
    encoded = compute.dictionary_encode(names)
    in_order = compute.sort_indices(encoded.dictionary)  # names in order: as sorted() orders them (UTF-8's bytes)
    rank = np.empty(len(in_order), np.int64)
    rank[in_order.to_numpy()] = np.arange(len(in_order))
    experiment = rank[encoded.indices.to_numpy()]  # each line's experiment's number
    columns = table.column_names
    if "row.iteration" not in columns or not pyarrow.types.is_int64(table.column("row.iteration").type):
        return None  # (a float iteration: the row reader's rule; none: no row, or not a row the runner wrote)
    param_names = [name for name in columns if name.startswith("params.")]
    counted = _rows(table, keys, experiment, param_names, buffer)
    if counted is None:
        return None
    rows, experiments = counted
    experiment_names = encoded.dictionary.take(in_order)
    heads = experiments.params_line
    if "base" in columns and (not pyarrow.types.is_string(table.column("base").type)
                              or table.column("base").take(pyarrow.array(heads[heads >= 0])).null_count):
        return None  # (a base that is no string, or an experiment's without one)
    bases = table.column("base").take(pyarrow.array(np.maximum(heads, 0))) if "base" in columns else None
    known = (experiment_names.filter(pyarrow.array(experiments.known)),
             bases.filter(pyarrow.array(experiments.known & (heads >= 0))) if bases is not None else None)
    if known[1] is not None and compute.any(compute.equal(known[1], "")).as_py():
        return None  # (load_results takes an empty base for none: its name stands for it)
    head_params = table.select(param_names).take(pyarrow.array(np.maximum(heads, 0)))
    if any(column.filter(pyarrow.array(heads >= 0)).null_count for column in head_params.columns):
        return None  # an experiment's params (a status's, of a repetition never claimed) lack one of another's
    keep = _kept_experiments(experiment_names, bases, head_params, heads >= 0, kept_names, params)
    if keep is None:
        return None
    of_row = experiment[rows]
    every_row = len(rows) == int(np.count_nonzero(keys.kinds == W))
    rows = rows[keep[of_row]]
    if not len(rows):
        return StoreFrame(None, [], *known)
    of_row = experiment[rows]
    if param_names and (heads[of_row] < 0).any():
        return None  # rows of an experiment without params beside others' params
    ordered = _param_order(buffer, keys, int(heads[of_row[0]]), param_names) if param_names else []
    if ordered is None:
        return None
    meta = head_params.select(ordered).take(pyarrow.array(of_row))
    if not arrow_rows.is_plain(meta) or not arrow_rows.plain_floats(meta, buffer) or _ambiguous_floats(meta, buffer):
        return None  # (params: the first claim's, typed with every claim's)
    read = _results(table, keys, buffer, rows, every_row and bool(keep.all()))
    if read is None:
        return None
    results, result_names = read
    frame = pyarrow.table({"experiment": names.take(pyarrow.array(rows)), "rep": pyarrow.array(keys.reps[rows]),
                           "iteration": table.column("row.iteration").take(pyarrow.array(rows)),
                           **{name: meta.column(name) for name in ordered},
                           **dict(zip(result_names, results.columns))}).to_pandas()
    meta_names = ["experiment", "rep", "iteration", *ordered]
    reasons = experiments.stop_reasons
    key = (of_row << 32) | keys.reps[rows]
    if reasons and any(value in reasons for value in np.unique(key).tolist()):  # a campaign stopped a kept one
        frame.insert(len(meta_names), "stop_reason", [reasons.get(value, np.nan) for value in key.tolist()])
        meta_names.append("stop_reason")
    return StoreFrame(frame, meta_names, *known)


def _results(table: Any, keys: _Keys, buffer: mmap, rows: np.ndarray,
             every_row: bool) -> tuple[Any, list[str]] | None:
    """The result columns of the lines `rows` (all rows of the store, where `every_row`) and their names, in the
    order load_results makes them; None where pandas would make them otherwise (see the module's docstring)."""
    import pyarrow

    row_names = [name for name in table.column_names if name.startswith("row.") and name != "row.iteration"]
    if any(name[len("row."):] in META_NAMES or name.startswith("row.params.") for name in row_names):
        return None  # a result column named as a meta column: the frame would hold the name twice
    results = table.select(row_names).take(pyarrow.array(rows))
    if not every_row:  # a column only rows left out hold: none (where no row holds a null written)
        unheld = [index for index, column in enumerate(results.columns) if column.null_count == len(column)]
        if unheld and _null_in_rows(buffer, keys):
            return None
        results = results.select([name for index, name in enumerate(row_names) if index not in unheld])
    if not arrow_rows.is_plain(results) or not arrow_rows.plain_floats(results, buffer):
        return None
    if not every_row and _ambiguous_floats(results, buffer):
        return None  # the rows kept alone might make a column an int one (pyarrow typed every row)
    names = [name[len("row."):] for name in results.column_names]
    order = _result_order(buffer, keys, rows, results, names)
    if order is None:
        return None
    return results.select([results.column_names[index] for index in order]), [names[index] for index in order]


def _rows(table: Any, keys: _Keys, experiment: np.ndarray, param_names: list[str],
          buffer: mmap) -> tuple[np.ndarray, _Experiments] | None:
    """The lines whose rows count, in load_results' order (by experiment, repetition, iteration), and the
    experiments; None where that cannot be said alike (a claim short of a parameter another has, params written as
    null, an experiment whose lines say two bases, a replay that cannot be made: see `_replayed`).

    An experiment is read off its claims and rows where each of its repetitions is claimed once, its rows 0, 1,
    2... follow its claim in its claim's segment, it has no status and no cut-back, and all its claims hold the
    same params (numpy, over all such experiments at once); any other is replayed, line by line, as the catalog
    takes its lines in (`_replayed`)."""
    import numpy as np
    import pyarrow

    kinds, segments = keys.kinds, keys.segments
    count = int(experiment.max()) + 1
    key = (experiment << 32) | keys.reps
    replayed = np.zeros(count, bool)
    replayed[experiment[(kinds == S) | (kinds == K) | (kinds == D)]] = True
    claims = np.flatnonzero(kinds == C)
    claims = claims[np.argsort(key[claims], kind="stable")]
    claimed = key[claims]
    replayed[experiment[claims[1:][claimed[1:] == claimed[:-1]]]] = True  # claimed again (a resume, a requeue)
    rows = np.flatnonzero(kinds == W)
    if len(claims):  # each row's claim: there, in its segment, before it (else the catalog does not take it in)
        of_row = np.minimum(np.searchsorted(claimed, key[rows]), len(claims) - 1)
        taken = (claimed[of_row] == key[rows]) & (segments[claims[of_row]] == segments[rows]) & (claims[of_row] < rows)
        replayed[experiment[rows[~taken]]] = True
    else:
        replayed[experiment[rows]] = True
    rows = rows[np.argsort(key[rows], kind="stable")]  # by name, number, then place
    starts = np.flatnonzero(np.concatenate([[True], key[rows][1:] != key[rows][:-1]])) if len(rows) else rows
    place = np.arange(len(rows)) - np.repeat(starts, np.diff(np.append(starts, len(rows))))
    iterations = table.column("row.iteration").fill_null(-1).to_numpy()
    replayed[experiment[rows[iterations[rows] != place]]] = True  # rows not 0, 1, 2... as the runner writes them
    given = table.column("has_params").fill_null(False).to_numpy(zero_copy_only=False) \
        if "has_params" in table.column_names else np.zeros(len(key), bool)  # (null: a piece without params)
    for line in np.flatnonzero(~given & ((kinds == C) | (kinds == S))).tolist():  # (few: the writers write params)
        if buffer.find(b'"params":null', int(keys.starts[line]), buffer.find(b"\n", int(keys.starts[line]))) >= 0:
            return None  # params written as null: none, where params not written keep those before
    replayed[experiment[claims[~given[claims]]]] = True  # a claim without params: its repetition's before stand
    base = ["base"] if "base" in table.column_names and not _one_value(table.column("base")) else []
    claim_params = table.select(param_names + base).take(pyarrow.array(claims))  # (a base all share: no check)
    if any(column.filter(pyarrow.array(given[claims])).null_count for column in claim_params.columns):
        return None  # a claim without a parameter another has, or without a base
    if "base" in table.column_names and not _one_base_each(table.column("base"), experiment, replayed):
        return None
    firsts = np.flatnonzero(np.concatenate([[True], experiment[claims][1:] != experiment[claims][:-1]]))
    first_claim = np.repeat(firsts, np.diff(np.append(firsts, len(claims))))
    for column in claim_params.columns:
        replayed[experiment[claims[~_same_as_first(column, first_claim)]]] = True
    heads = np.full(count, -1, np.int64)
    heads[experiment[claims[firsts]]] = claims[firsts]
    known = np.zeros(count, bool)
    known[experiment[(kinds == C) | (kinds == S)]] = True
    simple = rows[~replayed[experiment[rows]]]
    lines, order = [simple], [place[~replayed[experiment[rows]]]]
    stop_reasons: dict[int, str] = {}
    if replayed.any():
        again = _replayed(table, keys, experiment, np.flatnonzero(replayed[experiment]), given, buffer)
        if again is None:
            return None
        heads[replayed] = -1
        known[replayed] = False  # (known again where a repetition is left after the drops)
        for (number, rep), (rep_rows, params_line, reason) in sorted(again.items()):
            known[number] = True
            lines.append(np.asarray(rep_rows, np.int64))
            order.append(np.arange(len(rep_rows)))
            if heads[number] < 0 and params_line >= 0:
                heads[number] = params_line
            if reason is not None:
                stop_reasons[(number << 32) | rep] = reason
    counted = lines[0]  # (in order already, where no experiment was replayed)
    if len(lines) > 1:
        counted, places = np.concatenate(lines), np.concatenate(order)
        counted = counted[np.lexsort((places, key[counted]))]
    return counted, _Experiments(heads, known, stop_reasons)


def _replayed(table: Any, keys: _Keys, experiment: np.ndarray, lines: np.ndarray, given: np.ndarray,
              buffer: mmap) -> dict[tuple[int, int], tuple[list[int], int, str | None]] | None:
    """Each repetition of the replayed experiments (their `lines`, in the segments' order) as a catalog of their own
    takes them in (compact_catalog is the definition: claims in order of time, cut-backs, drops, statuses): each
    line is given to it as its event, with the line's number in place of a row, of params (where they hold any)
    and of a status, so that what the catalog says of a repetition names lines: the lines of its rows; the line
    whose params are its own (-1: none); its stop reason. Only the repetitions the catalog knows (a claim or a
    status after their experiment's last drop); None where a time or a count is no number."""
    import numpy as np
    import pyarrow

    columns, types = table.column_names, pyarrow.types
    if "t" in columns and not (types.is_floating(table.column("t").type) or types.is_integer(table.column("t").type)) \
            or ("n" in columns and not types.is_integer(table.column("n").type)):
        return None  # (a time or a count that is no number: the catalog skips such a line, we cannot say which)
    taken = pyarrow.array(lines)

    def values(name: str) -> list[Any]:  # the column's values at `lines` (None: null, or no such column)
        return table.column(name).take(taken).to_pylist() if name in columns else [None] * len(lines)

    holding = np.zeros(len(lines), bool)  # params that hold a parameter (not `{}`: none, for the catalog)
    for name in columns:
        if name.startswith("params."):
            holding |= table.column(name).take(taken).is_valid().to_numpy(zero_copy_only=False)
    has_at = [value is not None for value in values("at")]
    replay = Catalog("")
    for line, time, count, iteration, at, holds in zip(lines.tolist(), values("t"), values("n"),
                                                       values("row.iteration"), has_at, holding.tolist()):
        kind, key = keys.kinds[line], [str(experiment[line]), int(keys.reps[line])]
        event: dict[str, Any] = {}
        if kind == D:
            event["d"] = key[0]
        elif kind == W:
            event = {"w": key, "row": {"iteration": iteration, "line": line}}
        elif kind == K:
            event = {"k": key} if count is None else {"k": key, "n": count}
        else:
            event = {"c": key} if kind == C else {"s": key, "status": {"line": line}}
            if given[line]:
                event["params"] = line + 1 if holds else {}
            if at:
                event["at"] = ""
        if kind != W and kind != K and time is not None:
            event["t"] = time
        replay.apply_written(str(keys.segments[line]), event, encode_row(event) if kind == W else b"")
    read = {}
    for name, reps in replay.experiments().items():
        for rep in reps:
            saved = replay.repetition(name, rep)
            status = _line(buffer, keys, saved.status[1]["line"]).get("status") if saved.status else None
            stopped = isinstance(status, dict) and status.get("state") == Record.STOPPED.value
            read[int(name), rep] = ([json.loads(row)["line"] for row in saved.row_lines()],
                                    saved.params - 1 if isinstance(saved.params, int) else -1,
                                    str(status.get("reason", "")) if stopped else None)  # type: ignore[union-attr]
    return read


def _names_as_written(names: Any, keys: _Keys, buffer: mmap) -> bool:
    """Whether each line's name, as pyarrow read it, is the text between its quotes: its bytes, or (a name not in
    ASCII, or with a quote) exactly as encode_row escapes it. So the text is one JSON string, and pyarrow read the
    name the catalog reads."""
    import numpy as np
    import pyarrow.compute as compute

    escaped = np.flatnonzero((compute.binary_length(names).to_numpy(zero_copy_only=False) != keys.name_sizes)
                             & (keys.name_sizes >= 0))  # (a drop's name is a plain JSON string: pyarrow reads it)
    for line in escaped.tolist():
        start = int(keys.starts[line]) + 6  # its opening quote
        written = buffer[start:start + int(keys.name_sizes[line]) + 2]
        if written != encode_basestring_ascii(names[line].as_py()).encode():
            return False
    return True


def _one_value(column: Any) -> bool:
    """Whether a column's values (its nulls aside) are all one (a store's base, the document's name, usually)."""
    import pyarrow.compute as compute

    extremes = compute.min_max(column)
    return extremes["min"].as_py() == extremes["max"].as_py()


def _one_base_each(bases: Any, experiment: np.ndarray, replayed: np.ndarray) -> bool:
    """Whether each replayed experiment's lines that say a base say the same one: then which of its claims or
    statuses gives its base (the catalog's first repetition with one) does not matter."""
    import numpy as np
    import pyarrow

    lines = np.flatnonzero(bases.is_valid().to_numpy(zero_copy_only=False) & replayed[experiment])
    if not len(lines):
        return True
    lines = lines[np.argsort(experiment[lines], kind="stable")]
    firsts = np.flatnonzero(np.concatenate([[True], experiment[lines][1:] != experiment[lines][:-1]]))
    first = np.repeat(firsts, np.diff(np.append(firsts, len(lines))))
    return bool(_same_as_first(bases.take(pyarrow.array(lines)), first).all())


def _same_as_first(column: Any, first: np.ndarray) -> np.ndarray:
    """Whether each value of `column` equals the value at `first` of its place (its experiment's first claim), as
    numpy booleans; NaN equals NaN here (the same text in both claims)."""
    import numpy as np
    import pyarrow
    import pyarrow.compute as compute

    firsts = column.take(pyarrow.array(first))
    if pyarrow.types.is_floating(column.type):
        values, others = column.to_numpy(), firsts.to_numpy()
        return (values == others) | (np.isnan(values) & np.isnan(others))
    try:
        return compute.equal(column, firsts).fill_null(False).to_numpy(zero_copy_only=False)
    except pyarrow.ArrowNotImplementedError:
        return np.zeros(len(column), bool)  # (a nested value: not plain, given up on anyway)


def _ambiguous_floats(columns: Any, buffer: mmap) -> bool:
    """Whether a float column holds only whole numbers while the segments write its key with an integer somewhere.
    pyarrow typed the column over every line; pandas types the values the frame holds, and where those are ints
    only (an experiment's first claim's `1` beside a later claim's `1.0`, the rows kept beside rows left out), it
    makes an int column."""
    import numpy as np
    import pyarrow

    for name in columns.column_names:
        column = columns.column(name)
        if not pyarrow.types.is_floating(column.type):
            continue
        values = column.to_numpy()
        finite = values[np.isfinite(values)]
        leaf = json.dumps(name.split(".")[-1]).encode()
        if (finite == np.floor(finite)).all() and re.search(re.escape(leaf) + rb":-?[0-9]+[,}]", buffer):
            return True
    return False


def _line(buffer: mmap, keys: _Keys, index: int) -> Any:
    """Line `index` as Python's json reads it (blanked, it is the same event but for its key's number)."""
    end = buffer.find(b"\n", int(keys.starts[index]))  # (a line's end: there, in the buffer's complete lines)
    return json.loads(buffer[int(keys.starts[index]):end])


def _param_order(buffer: mmap, keys: _Keys, claim: int, names: list[str]) -> list[str] | None:
    """The params columns in the order load_results makes them: the first experiment's params, flattened (every
    experiment has the same ones, checked before); None where those are not the columns."""
    ordered = [f"params.{name}" for name in flatten_mapping(_line(buffer, keys, claim).get("params") or {})]
    return ordered if sorted(ordered) == sorted(names) else None


def _null_in_rows(buffer: mmap, keys: _Keys) -> bool:
    """Whether a row line holds the text `null` (a null written, or in a string): where none does, a result column's
    null is a row without it."""
    import numpy as np

    found = np.fromiter((match.start() for match in re.finditer(b"null", buffer)), np.int64)
    return bool((keys.kinds[np.searchsorted(keys.starts, found, side="right") - 1] == W).any())


def _result_order(buffer: mmap, keys: _Keys, rows: np.ndarray, results: Any, names: list[str]) -> list[int] | None:
    """The result columns' places in `names` in the order load_results makes them: the order of first appearance
    in its rows. Where every row has every column, the first row's order; where some lack one, each column's first
    row with it says, as long as no row holds a null written (then a missing column and a null read alike)."""
    import numpy as np

    if not names:
        return []
    if any(column.null_count for column in results.columns) and _null_in_rows(buffer, keys):
        return None
    firsts = [int(np.argmax(column.is_valid().to_numpy(zero_copy_only=False))) if column.null_count else 0
              for column in results.columns]
    order: dict[str, tuple[int, int]] = {}
    for row in sorted(set(firsts)):
        written = list(_line(buffer, keys, int(rows[row]))["row"])
        for index, first in enumerate(firsts):
            if first == row:
                if names[index] not in written:
                    return None
                order[names[index]] = (row, written.index(names[index]))
    return sorted(range(len(names)), key=lambda index: order[names[index]])


def _kept_experiments(names: Any, bases: Any, params_of: Any, has_params: np.ndarray, kept_names: set[str] | None,
                      params: Mapping[str, Any] | None) -> np.ndarray | None:
    """Which experiments load_results keeps: its name or base in `kept_names`, its params (its head line's, where
    it `has_params`) equal to `params`' values (flat_params_match); None where a comparison is not a column's."""
    import numpy as np
    import pyarrow
    import pyarrow.compute as compute

    keep = np.ones(len(names), bool)
    if kept_names is not None:
        wanted = pyarrow.array(list(kept_names), pyarrow.string())
        named = compute.is_in(names, value_set=wanted).to_numpy(zero_copy_only=False)
        if bases is not None:
            named |= compute.is_in(bases, value_set=wanted).to_numpy(zero_copy_only=False) & has_params
        keep &= named
    for name, value in (params or {}).items():
        column = f"params.{name}"
        if column not in params_of.column_names:
            return np.zeros(len(names), bool)
        values = params_of.column(column).to_pandas()
        if values.dtype == object and not isinstance(value, str):
            return None
        keep &= (values == value).to_numpy() & has_params
    return keep

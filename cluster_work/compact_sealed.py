"""A compact store's sealed segments: a segment's lines as compact_frame parses them (their keys and the flat
table pyarrow made of them) kept beside it in Arrow's file format, so that load_results of a large store reads
columns where it would parse JSON (10^6 one-row repetitions on 2 cores: 1.0 - 1.7 s, against 2.2 - 3.0 s).

    <root>/cols-<host>-<pid>-<token>.arrow   beside   <root>/seg-<host>-<pid>-<token>.jsonl

A sealed segment is a cache, only ever derived from its segment, so deleting it loses nothing:
- written whole to a temporary file, synced, then renamed (`atomic_write`): a kill -9 leaves the whole file or
  none (and a temporary named by its writer, removed by the next write); one that a power loss damaged is either
  no Arrow file (ignored) or one whose keys do not say what they should (`read` checks their types and that the
  lines' starts rise, compact_frame that each is where a line of the segment starts: ignored);
- taken only where its segment has the size and the modification time it had when sealed, by the versions of this
  format, of cluster_work and of pyarrow that wrote it (segments are append-only: one that grew since is parsed
  again; a parse of another version may make other columns);
- written by a run's launcher at its end (`compact_frame.seal`), for each segment of a large store that ends with a
  whole line, where no live process holds a repetition of the store (no run writes it now: where several runs share
  it, the last to end seals).
"""
from __future__ import annotations

import json
import os
from typing import Any

from .errors import StoreError
from .files import atomic_write
from .paths import SEALED_TEMPORARY_PREFIX, sealed_path
from .version import __version__

VERSION = 1  # of what compact_frame makes of a segment: one more where that changes
KEY_COLUMNS = ("key.start", "key.kind", "key.rep", "key.name_size")  # (no parsed column starts with "key.")
_KEY_TYPES = ("int64", "uint8", "int64", "int64")
_METADATA = b"cluster_work"


def _stamp(segment: str, size: int, mtime_ns: int) -> bytes:
    """What a sealed segment says of what it was made from (compared whole: any difference, and it is not taken)."""
    import pyarrow

    stamp = {"v": VERSION, "cluster_work": __version__, "pyarrow": pyarrow.__version__,
             "segment": os.path.basename(segment), "size": size, "mtime_ns": mtime_ns}
    return json.dumps(stamp, sort_keys=True).encode()


def _expected(segment: str, size: int) -> bytes | None:
    """The stamp a sealed segment of `segment` must have to be taken now (None: the segment is not `size` bytes)."""
    try:
        stat = os.stat(segment)
    except OSError:
        return None
    return _stamp(segment, size, stat.st_mtime_ns) if stat.st_size == size else None


def _stamped(segment: str, size: int, whole: bool) -> Any:
    """The sealed segment of `segment` where its stamp says it is to be taken now: its table (`whole`), or True (its
    stamp alone read: the file's footer); None where there is none to take, or it is no Arrow file."""
    import pyarrow
    import pyarrow.ipc

    expected = _expected(segment, size)
    if expected is None:
        return None
    try:
        with pyarrow.OSFile(sealed_path(segment)) as source:
            reader = pyarrow.ipc.open_file(source)
            if (reader.schema.metadata or {}).get(_METADATA) != expected:
                return None
            return reader.read_all() if whole else True
    except (OSError, pyarrow.ArrowException):
        return None


def is_sealed(segment: str, size: int) -> bool:
    """Whether `segment`, of `size` bytes, has a sealed segment to take (its stamp alone read)."""
    return _stamped(segment, size, whole=False) is not None


def read(segment: str, size: int) -> tuple[tuple[Any, ...], Any] | None:
    """The keys (starts, kinds, numbers, names' sizes: compact_frame._read_keys', starts from the segment's first
    byte) and the flat table of `segment`'s lines, as sealed; None where none is to be taken (see the module's
    docstring) or its keys cannot be a parse's (of other types, or starts that do not rise from 0 within the
    segment's bytes)."""
    import numpy as np

    table = _stamped(segment, size, whole=True)
    if table is None:
        return None
    if not set(KEY_COLUMNS) <= set(table.column_names) or not table.num_rows:
        return None
    if [str(table.schema.field(name).type) for name in KEY_COLUMNS] != list(_KEY_TYPES):
        return None
    keys = tuple(table.column(name).to_numpy() for name in KEY_COLUMNS)
    starts = keys[0]
    if starts[0] != 0 or starts[-1] >= size or (np.diff(starts) <= 0).any():
        return None
    return keys, table.drop_columns(list(KEY_COLUMNS)).replace_schema_metadata(None)


def write(segment: str, size: int, mtime_ns: int, keys: tuple[Any, ...], table: Any) -> bool:
    """Seal `segment` (`size` bytes, modified at `mtime_ns`, as stat said before it was read): its lines' `keys` and
    flat `table`, as compact_frame parsed them; False where the store cannot be written (a full disk, another
    user's store): it is read all the same."""
    import pyarrow
    import pyarrow.ipc

    for name, values in zip(KEY_COLUMNS, keys):
        table = table.append_column(name, pyarrow.array(values))
    table = table.replace_schema_metadata({_METADATA: _stamp(segment, size, mtime_ns)})
    compression = "lz4" if pyarrow.Codec.is_available("lz4") else None  # (a third of the bytes, read as fast)
    sink = pyarrow.BufferOutputStream()
    with pyarrow.ipc.new_file(sink, table.schema, options=pyarrow.ipc.IpcWriteOptions(compression=compression)) \
            as writer:
        writer.write_table(table)
    try:
        atomic_write(sealed_path(segment), memoryview(sink.getvalue()), writer_prefix=SEALED_TEMPORARY_PREFIX)
    except StoreError:
        return False
    return True

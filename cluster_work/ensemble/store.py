"""The on-disk record of a weighted ensemble: one append-only file, one framed record per iteration.

    <experiment folder>/ensemble/iterations.cwe

The file starts with `FILE_HEADER`; then, per committed iteration n = 0, 1, 2, ..., a frame

    b"CWR1" | payload length (u64) | crc32 of the payload (u32) | n (u64) | payload

whose payload is a u32 length, a JSON head (the rows by column, the flux, the number of walkers of
this iteration and the next), the per-walker arrays (`ARRAYS`, little-endian: weights, parents, recycled
flags, bins, the states' lengths, the next iteration's parents and weights) and the walkers' pickled
states, concatenated. One write per iteration, whatever the number of walkers: an iteration is committed when
its frame is complete, so a `kill -9` at any instant leaves the committed iterations and at most a torn
last frame, which every reader drops (a frame is valid only if it is complete, its checksum matches
and its iteration follows the one before) and the next writer cuts off. The writer holds an `flock`
on the file, so two runs never extend one ensemble. A file without the header is not ours: it is
neither read nor changed.

Analysis reads weights and rows (JSON: floats round-trip exactly) without unpickling anything; only a
resume unpickles states, the user's own objects.
"""
from __future__ import annotations

import array
import collections
import contextlib
import fcntl
import json
import math
import os
import struct
import sys
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..errors import StoreError
from ..files import is_locked
from ..rows import to_plain

FOLDER = "ensemble"
FILE = "iterations.cwe"
FILE_HEADER = b"cluster_work weighted ensemble, format 1\n"
_FRAME = struct.Struct("<4sQIQ")
_MAGIC = b"CWR1"
_HEAD_LENGTH = struct.Struct("<I")
# (field, typecode, whether it has one item per walker of the next iteration rather than of this one)
ARRAYS = (("weights", "d", False), ("parents", "i", False), ("recycled", "b", False), ("bins", "i", False),
          ("state_lengths", "I", False), ("next_parents", "i", True), ("next_weights", "d", True))
_LITTLE = sys.byteorder == "little"


class EnsembleBusy(StoreError):
    """Another live run holds this ensemble's file."""


@dataclass
class IterationRecord:
    """One committed iteration: its walkers (by id), their segments' rows and states, and the next
    iteration's walkers. `parents[i]` is walker i's parent in the iteration before, -1 if it started
    from a basis state (the first iteration, or a parent that was recycled); likewise `next_parents`."""

    iteration: int
    weights: list[float]
    parents: list[int]
    recycled: list[bool]
    bins: list[int]
    columns: dict[str, list[Any]]
    states: list[bytes]
    next_parents: list[int]
    next_weights: list[float]
    flux_total: float = 0.0  # the recycled weight of iterations 0 .. this one
    occupied_bins: int = 0
    flux: float = field(init=False)

    def __post_init__(self) -> None:
        self.flux = math.fsum(w for w, r in zip(self.weights, self.recycled) if r)

    @property
    def walkers(self) -> int:
        return len(self.weights)


def ensemble_file(experiment_path: str) -> str:
    return os.path.join(experiment_path, FOLDER, FILE)


def encode(record: IterationRecord) -> bytes:
    """A record as one frame (see the module docstring)."""
    head = {"walkers": record.walkers, "next_walkers": len(record.next_weights), "columns": record.columns,
            "flux_total": record.flux_total, "occupied_bins": record.occupied_bins}
    text = json.dumps(head, separators=(",", ":"), default=_plain).encode()
    values = {**vars(record), "state_lengths": [len(s) for s in record.states]}
    arrays = [_packed(typecode, values[name]) for name, typecode, _ in ARRAYS]
    payload = b"".join([_HEAD_LENGTH.pack(len(text)), text, *arrays, *record.states])
    return _FRAME.pack(_MAGIC, len(payload), zlib.crc32(payload), record.iteration) + payload


def _packed(typecode: str, values: list[Any]) -> bytes:
    packed = array.array(typecode, values)
    if not _LITTLE:
        packed.byteswap()
    return packed.tobytes()


def _plain(value: Any) -> Any:
    plain = to_plain(value)
    return str(value) if plain is value else plain


def decode(iteration: int, payload: bytes, with_states: bool = True) -> IterationRecord:
    (length,) = _HEAD_LENGTH.unpack_from(payload)
    offset = _HEAD_LENGTH.size + length
    head = json.loads(payload[_HEAD_LENGTH.size:offset])
    values: dict[str, list[Any]] = {}
    for name, typecode, of_next in ARRAYS:
        unpacked = array.array(typecode)
        size = unpacked.itemsize * head["next_walkers" if of_next else "walkers"]
        unpacked.frombytes(payload[offset:offset + size])
        if not _LITTLE:
            unpacked.byteswap()
        values[name], offset = unpacked.tolist(), offset + size
    states: list[bytes] = []
    for size in values["state_lengths"] if with_states else ():
        states.append(payload[offset:offset + size])
        offset += size
    return IterationRecord(iteration, values["weights"], values["parents"], [bool(r) for r in values["recycled"]],
                           values["bins"], head["columns"], states, values["next_parents"], values["next_weights"],
                           head["flux_total"], head["occupied_bins"])


def _frames(handle: BinaryIO, read_payloads: bool) -> Iterator[tuple[int, int, bytes | None]]:
    """(iteration, end offset, payload) of each valid frame in order; stops at the first invalid one.
    `read_payloads`: read and check every payload; else only seek from header to header (payload None)."""
    size = os.fstat(handle.fileno()).st_size
    handle.seek(0)
    if handle.read(len(FILE_HEADER)) != FILE_HEADER:
        return
    offset, expected = len(FILE_HEADER), 0
    while offset + _FRAME.size <= size:
        handle.seek(offset)
        magic, length, crc, iteration = _FRAME.unpack(handle.read(_FRAME.size))
        end = offset + _FRAME.size + length
        if magic != _MAGIC or iteration != expected or end > size:
            return
        payload = None
        if read_payloads:
            payload = handle.read(length)
            if zlib.crc32(payload) != crc:
                return
        yield iteration, end, payload
        offset, expected = end, expected + 1


def _last_valid(handle: BinaryIO, with_states: bool = True,
                check_all: bool = False) -> tuple[int, IterationRecord | None]:
    """The end of the last valid frame and its record (None: no frame). `check_all` (the writer, on resume):
    every frame's checksum, so that nothing is appended after a damaged one. Else (progress) seek over the
    frames' headers and check the payload of the last ones only: a kill tears only the tail."""
    if check_all:
        last = collections.deque(_frames(handle, read_payloads=True), maxlen=1)  # reads them all, keeps one
        if not last:
            return len(FILE_HEADER), None
        iteration, end, payload = last[0]
        return end, decode(iteration, payload or b"", with_states)
    ends = [(len(FILE_HEADER), -1)] + [(end, iteration) for iteration, end, _ in _frames(handle, False)]
    for (start, _), (end, iteration) in zip(reversed(ends[:-1]), reversed(ends[1:])):
        handle.seek(start)
        _magic, length, crc, _ = _FRAME.unpack(handle.read(_FRAME.size))
        payload = handle.read(length)
        if zlib.crc32(payload) == crc:
            return end, decode(iteration, payload, with_states)
    return len(FILE_HEADER), None


def read_records(experiment_path: str, with_states: bool = False) -> Iterator[IterationRecord]:
    """Every committed iteration of the ensemble in `experiment_path`, in order; nothing if there is none.
    Safe while a run appends: a frame being written is not valid yet."""
    try:
        handle = open(ensemble_file(experiment_path), "rb")
    except FileNotFoundError:
        return
    with handle:
        for iteration, _end, payload in _frames(handle, read_payloads=True):
            assert payload is not None
            yield decode(iteration, payload, with_states)


def last_record(experiment_path: str) -> IterationRecord | None:
    """The last committed iteration (for progress), without reading the ones before."""
    try:
        with open(ensemble_file(experiment_path), "rb") as handle:
            return _last_valid(handle, with_states=False)[1]
    except FileNotFoundError:
        return None


def ensemble_running(experiment_path: str) -> bool:
    """Whether a live run holds the ensemble's lock (for `-p`; as `RepetitionStore.is_running`)."""
    return is_locked(ensemble_file(experiment_path))


def delete_ensemble(experiment_path: str) -> None:
    """Remove the ensemble's file if cluster_work wrote it (never through a symbolic link), then its folder if
    that leaves it empty (for `-d`); anything else stays."""
    path = ensemble_file(experiment_path)
    folder = os.path.dirname(path)
    if os.path.islink(folder) or os.path.islink(path) or not os.path.isfile(path):
        return
    try:
        with open(path, "rb") as handle:
            ours = handle.read(len(FILE_HEADER)) == FILE_HEADER
        if ours:
            os.remove(path)
        if not os.listdir(folder):
            os.rmdir(folder)
    except OSError as exc:
        raise StoreError(f"cannot delete {path}: {exc.strerror or exc}") from exc


class EnsembleStore:
    """The writer of one ensemble's file. `open()` locks it, cuts off a torn tail and returns the last
    committed iteration; `commit(record)` appends the next; `close()` releases it. `sync`: fsync every
    commit, so a committed iteration also survives a power loss."""

    def __init__(self, experiment_path: str, sync: bool = True):
        self.path = ensemble_file(experiment_path)
        self.sync = sync
        self._fd: int | None = None
        self._end = 0
        self._next = 0

    def open(self) -> IterationRecord | None:
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise StoreError(f"cannot open {self.path}: {exc.strerror or exc}") from exc
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise EnsembleBusy(f"{self.path} is held by another run") from None
            with os.fdopen(os.dup(fd), "rb") as handle:
                start = handle.read(len(FILE_HEADER))
                if len(start) < len(FILE_HEADER) and FILE_HEADER.startswith(start):  # new, or its header torn
                    self._write(fd, FILE_HEADER)
                elif start != FILE_HEADER:
                    raise StoreError(f"{self.path} was not written by cluster_work; it is left as it is")
                self._end, last = _last_valid(handle, check_all=True)
            os.ftruncate(fd, self._end)  # a torn last frame (a kill during a commit) goes
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._next = fd, 0 if last is None else last.iteration + 1
        return last

    def commit(self, record: IterationRecord) -> None:
        """Append `record` (the iteration after the last committed one) as one frame; on failure cut the
        file back to its committed end, so that the next commit does not follow a torn frame."""
        if self._fd is None:
            raise StoreError(f"{self.path} is not open")
        if record.iteration != self._next:
            raise ValueError(f"iteration {record.iteration} committed after {self._next - 1}")
        frame = encode(record)
        try:
            self._write(self._fd, frame)
            if self.sync:
                os.fsync(self._fd)
        except StoreError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)
            raise
        self._end += len(frame)
        self._next += 1

    def _write(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.pwrite(fd, view, self._end + len(data) - len(view)):]
        except OSError as exc:
            raise StoreError(f"cannot write {self.path}: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # releases the lock

    def __enter__(self) -> EnsembleStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

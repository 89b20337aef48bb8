"""The compact store (`store: compact` in a document): no folder or file per point or repetition, for sweeps
of 10^5 points and more (HPC sites cap inodes per user; every create is a metadata round trip on Lustre).

    <path>/<base>/.cluster_work_compact/locks                    never written: a byte-range lock per repetition
    <path>/<base>/.cluster_work_compact/seg-<host>-<pid>-<token>.jsonl   one per writing process, append-only

A segment holds events, one JSON line each, of the repetitions its process wrote:
    {"c": [name, rep], "t": time, "params": {...}, "base": base name, "at": params part}   a claim: the lock taken
      (`at`: the experiment's folder below the document's, '' for the document's own, as the default layout's)
    {"k": [name, rep], "n": count}                      keep the repetition's first `count` rows (a resume, -r/-i)
    {"w": [name, rep], "row": {...}}                    a row (iteration `row["iteration"]`)
    {"s": [name, rep], "t": time, "status": {...}}      a status (as status.json's), the latest `t` wins
    {"d": name, "t": time}                              -d: everything of experiment `name` before `t` is gone
A repetition's rows are its claims' events in the order of their claims' times, each claim's rows following
the rows it kept; a row that does not continue them is ignored, as a stray row of a results file is.

The guarantees of the default layout hold: a row is one `write` of a whole line into the process's own
segment (kill -9 leaves at most a torn last line, which readers drop: no process appends to another's
segment, and a new process starts a new one); segments are synced by the group commit; a repetition is
locked with a POSIX byte-range lock on byte hash(name, rep) of `locks` (one file for all repetitions, dropped
by the kernel when its holder dies): two runs never write one repetition, and a held lock is RUNNING.
POSIX locks belong to the process and are all dropped when it closes any descriptor of the file, so each
process opens `locks` once and asks through that descriptor only (`_Process`). -d appends a drop event:
nothing is deleted, and nothing a user wrote is touched. The experiment's own files (`_log_path_rep`,
rep.log) go where the default layout puts them, in folders made only when something is written there.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .durability import committer
from .errors import StoreError
from .paths import COMPACT_FOLDER, RepetitionPaths
from .rows import ResultsPrefix, encode_row, to_plain
from .store import ExperimentStore, RepetitionBusy, RepetitionStore, ResultsWriter, _StoreIO
from .vocabulary import Record

if TYPE_CHECKING:
    from .expansion import ExpandedExperiment

SEGMENT_PREFIX, SEGMENT_SUFFIX, LOCKS_FILE = "seg-", ".jsonl", "locks"
REFRESH_SECONDS = 0.5  # a reader's view of the segments is at most this old, except where exactness matters
SUGGESTED_FROM = 100_000  # points from which a sweep's run suggests `store: compact`


def is_compact(config: Mapping[str, Any]) -> bool:
    return config.get("store") == "compact"


def compact_root(document_folder: str) -> str:
    return os.path.join(document_folder, COMPACT_FOLDER)


def _lock_byte(name: str, rep: int) -> int:
    """Where repetition (name, rep) is locked in `locks`: 62 bits of a hash (a collision costs a BUSY)."""
    return int.from_bytes(hashlib.blake2b(f"{name}\0{rep}".encode(), digest_size=8).digest(), "big") >> 2


class _Process:
    """This process's side of one compact store: its `locks` descriptor, the repetitions it holds, its segment
    (created by its first event). A child of a fork starts without any (POSIX locks are not inherited)."""

    def __init__(self, root: str):
        self.root = root
        self.locks = -1  # opened by the first lock, or by the first question where the file exists
        self.held: set[int] = set()
        self.segment_fd = -1
        self.segment = ""
        self.size = 0

    def _open_locks(self, create: bool) -> bool:
        """Open `locks` once (see the module's docstring); False where it does not exist and `create` is not asked."""
        if self.locks >= 0:
            return True
        path = os.path.join(self.root, LOCKS_FILE)
        with _StoreIO("open", path):
            if create:
                os.makedirs(self.root, exist_ok=True)
                self.locks = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
                return True
            try:
                self.locks = os.open(path, os.O_RDWR)
            except FileNotFoundError:
                return False
        return True

    def lock(self, byte: int) -> None:
        self._open_locks(create=True)
        try:
            fcntl.lockf(self.locks, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, byte)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RepetitionBusy(self.root) from None
            raise StoreError(f"cannot lock {self.root}/{LOCKS_FILE}: {exc.strerror}") from exc
        self.held.add(byte)

    def unlock(self, byte: int) -> None:
        if byte in self.held:
            fcntl.lockf(self.locks, fcntl.LOCK_UN, 1, byte)
            self.held.discard(byte)

    def is_locked(self, byte: int) -> bool:
        if byte in self.held:
            return True
        if not self._open_locks(create=False):  # no run has locked anything here yet
            return False
        try:  # a shared lock of our own, given back at once: it fails only where another process holds it
            fcntl.lockf(self.locks, fcntl.LOCK_SH | fcntl.LOCK_NB, 1, byte)
        except OSError:
            return True
        fcntl.lockf(self.locks, fcntl.LOCK_UN, 1, byte)
        return False

    def append(self, event: Mapping[str, Any]) -> None:
        """Append one event as one line to this process's segment."""
        if self.segment_fd < 0:
            name = f"{SEGMENT_PREFIX}{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}{SEGMENT_SUFFIX}"
            self.segment = os.path.join(self.root, name)
            with _StoreIO("create", self.segment):
                os.makedirs(self.root, exist_ok=True)
                self.segment_fd = os.open(self.segment, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        data = encode_row(event)
        with _StoreIO("write", self.segment):
            written = os.write(self.segment_fd, data)
            if written != len(data):  # a full disk: cut the torn line off
                os.ftruncate(self.segment_fd, os.fstat(self.segment_fd).st_size - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        before, self.size = self.size, self.size + written
        known = _catalogs.get(self.root)
        name = os.path.basename(self.segment)
        if known is not None and known.offsets.get(name, 0) == before:  # this process sees what it wrote at once
            known.offsets[name] = self.size                             # (others' writes within REFRESH_SECONDS)
            known.apply_line(name, data[:-1])


_processes: dict[str, _Process] = {}
_catalogs: dict[str, Catalog] = {}


def _process(root: str) -> _Process:
    process = _processes.get(root)
    if process is None:
        process = _processes[root] = _Process(root)
    return process


def _forget_after_fork() -> None:
    _processes.clear()  # the parent's descriptors stay open in the child, unused: closing one would drop nothing
    _catalogs.clear()


os.register_at_fork(after_in_child=_forget_after_fork)


_ITERATION = re.compile(rb'\{"iteration":(-?\d+)[,}]')  # how every row the runner writes begins
_ROW = b',"row":'


def _iteration_of(row: bytes) -> int | None:
    found = _ITERATION.match(row)
    if found:
        return int(found.group(1))
    try:
        value = json.loads(row)
    except ValueError:
        return None
    return value.get("iteration") if isinstance(value, dict) else None


@dataclass
class _Claim:
    time: float
    events: list[tuple[str, Any]] = field(default_factory=list)  # ("k", count) or ("w", the row's JSON bytes)


@dataclass
class _Repetition:
    claims: list[_Claim] = field(default_factory=list)
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
                elif _iteration_of(value) == len(rows):
                    rows.append(value)
        return rows

    def rows(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.row_lines()]


class Catalog:
    """What the segments of one compact store say, read incrementally (only bytes new since the last read)."""

    def __init__(self, root: str):
        self.root = root
        self.offsets: dict[str, int] = {}
        self.current: dict[tuple[str, tuple[str, int]], _Claim] = {}  # (segment, repetition) -> its last claim
        self.repetitions: dict[tuple[str, int], _Repetition] = {}
        self.dropped: dict[str, float] = {}
        self.names_at: dict[str, str] = {}  # an experiment's folder below the document's -> its name
        self.by_name: dict[str, set[int]] = {}  # an experiment's name -> its repetitions with events
        self.read_at = -1.0

    def refresh(self, force: bool = False) -> Catalog:
        now = time.monotonic()
        if not force and now - self.read_at < REFRESH_SECONDS:
            return self
        self.read_at = now
        try:
            segments = sorted((e.name, e) for e in os.scandir(self.root) if e.name.startswith(SEGMENT_PREFIX))
        except FileNotFoundError:
            return self
        for name, entry in segments:
            try:
                grown = entry.stat().st_size > self.offsets.get(name, 0)
            except FileNotFoundError:
                continue
            if grown:
                self._read(name)
        return self

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
        claim = self.current.get((segment, (str(name), int(rep))))
        if claim is not None:
            claim.events.append(("w", row))

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

    def _apply(self, segment: str, event: dict[str, Any]) -> None:
        if "d" in event:
            self.dropped[event["d"]] = max(self.dropped.get(event["d"], 0.0), event["t"])
            return
        kind = "c" if "c" in event else "s" if "s" in event else "k" if "k" in event else "w"
        key = (str(event[kind][0]), int(event[kind][1]))
        repetition = self.repetitions.get(key)
        if repetition is None:
            repetition = self.repetitions[key] = _Repetition()
            self.by_name.setdefault(key[0], set()).add(key[1])
        if kind == "c":
            claim = self.current[segment, key] = _Claim(event["t"])
            repetition.claims.append(claim)
            repetition.params = event.get("params", repetition.params)
            repetition.base = event.get("base", repetition.base)
            self.names_at[event.get("at", "")] = key[0]
        elif kind == "s":
            if repetition.status is None or event["t"] >= repetition.status[0]:
                repetition.status = (event["t"], event["status"])
        elif (segment, key) in self.current:
            value = event["n"] if kind == "k" else encode_row(event["row"])[:-1]
            self.current[segment, key].events.append((kind, value))

    def repetition(self, name: str, rep: int) -> _Repetition:
        """Repetition (name, rep) as its events after the experiment's last drop say."""
        found = self.repetitions.get((name, rep))
        dropped = self.dropped.get(name)
        if found is None or dropped is None:
            return found or _Repetition()
        status = found.status if found.status is not None and found.status[0] > dropped else None
        return _Repetition([c for c in found.claims if c.time > dropped], status, found.params, found.base)

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


def catalog(root: str, force: bool = False) -> Catalog:
    found = _catalogs.get(root)
    if found is None:
        found = _catalogs[root] = Catalog(root)
    return found.refresh(force)


def find_catalogs(sweep_folder: str) -> Iterator[tuple[str, Catalog]]:
    """The compact stores of a sweep folder: (document folder, its catalog), in order of name."""
    try:
        bases = sorted(entry.path for entry in os.scandir(sweep_folder) if entry.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return
    for base in bases:
        if os.path.isdir(compact_root(base)):
            yield base, catalog(compact_root(base), force=True)


class CompactRepetition:
    """One repetition of a compact store, with RepetitionStore's methods."""

    def __init__(self, root: str, name: str, experiment_path: str, rep: int, params: Any = None, base: str = ""):
        self.root, self.name, self.rep, self.params, self.base = root, name, rep, params, base
        document = os.path.dirname(root)
        self.at = "" if os.path.normpath(experiment_path) == os.path.normpath(document) else os.path.basename(
            os.path.normpath(experiment_path))
        paths = RepetitionPaths.of(experiment_path, rep)  # the experiment's own files only, made when written
        self.path, self.log_file = paths.folder, paths.log_file
        self.byte = _lock_byte(name, rep)

    def _state(self, force: bool = False) -> _Repetition:
        return catalog(self.root, force).repetition(self.name, self.rep)

    def read_results(self) -> ResultsPrefix:
        return ResultsPrefix(self._state().rows())

    def read_complete_lines(self) -> list[dict[str, Any]]:
        return self._state().rows()

    def read_status(self) -> dict[str, Any]:
        status = self._state().status
        return dict(status[1]) if status is not None else {}

    def has_status(self) -> bool:
        return self._state().status is not None

    def results_size(self) -> int | None:
        return None  # a status's rows are in the same append-only segment, before it

    def is_running(self) -> bool:
        return _process(self.root).is_locked(self.byte)

    def write_status(self, state: Record, sync: bool = True, **fields: Any) -> None:
        status = {"state": state.value, "host": socket.gethostname(), "pid": os.getpid(), "updated": time.time(),
                  **fields}
        process = _process(self.root)
        process.append({"s": [self.name, self.rep], "t": time.time(), "status": to_plain(status)})
        if sync:
            committer.wrote(process.segment)

    def open_writer(self) -> CompactWriter:
        process = _process(self.root)
        process.lock(self.byte)
        try:
            rows = self._state(force=True).rows()  # under the lock: no other process adds to it now
            process.append({"c": [self.name, self.rep], "t": time.time(), "params": to_plain(self.params),
                            "base": self.base, "at": self.at})
        except BaseException:
            process.unlock(self.byte)
            raise
        return CompactWriter(process, self, rows)


class CompactWriter:
    """ResultsWriter's methods on a locked repetition of a compact store."""

    def __init__(self, process: _Process, repetition: CompactRepetition, rows: list[dict[str, Any]]):
        self.process, self.repetition, self.rows = process, repetition, rows
        self.key = [repetition.name, repetition.rep]
        self.path = process.segment
        self._open = True

    def read(self) -> ResultsPrefix:
        return ResultsPrefix(list(self.rows))

    def keep(self, prefix: ResultsPrefix, count: int) -> None:
        if count < len(self.rows):
            self.process.append({"k": self.key, "n": count})
            del self.rows[count:]

    def size(self) -> int:
        return len(self.rows)

    def append(self, row: Mapping[str, Any]) -> None:
        self.process.append({"w": self.key, "row": row})
        self.rows.append(dict(row))

    def close(self, sync: bool = True) -> None:
        if not self._open:
            return
        self._open = False
        self.process.unlock(self.repetition.byte)
        if sync:
            committer.wrote(self.process.segment)


class CompactExperimentStore:
    """One expanded experiment of a compact store, with ExperimentStore's methods."""

    def __init__(self, root: str, name: str, path: str, params: Any = None, base: str = ""):
        self.root, self.name, self.path, self.params, self.base = root, name, path, params, base

    def _catalog(self) -> Catalog:
        return catalog(self.root)

    def exists(self) -> bool:
        return bool(self._catalog().repetition_numbers(self.name))

    def is_ours(self) -> bool:
        return self.exists()

    def has_original_results(self) -> bool:
        return False

    def read_config(self) -> dict[str, Any] | None:
        """What the store knows of the experiment's config: its parameters (as its last claim gave them)."""
        reps = self._catalog().repetition_numbers(self.name)
        if not reps:
            return None
        params = [self._catalog().repetition(self.name, rep).params for rep in reps]
        return {"name": self.name, "params": next((p for p in params if p is not None), {})}

    def write_config(self, config: Mapping[str, Any], sync: bool = True) -> None:
        """Nothing: each claim carries the experiment's parameters."""

    def repetition(self, rep: int) -> CompactRepetition:
        return CompactRepetition(self.root, self.name, self.path, rep, self.params, self.base)

    def repetition_numbers(self) -> list[int]:
        return self._catalog().repetition_numbers(self.name)

    def deletion_refusal(self) -> str | None:
        return None

    def delete(self) -> list[str]:
        """Forget the experiment's rows and statuses (a drop event); its own files are the default layout's."""
        if not self.exists():
            return []
        process = _process(self.root)
        process.append({"d": self.name, "t": time.time()})
        committer.wrote(process.segment)
        catalog(self.root, force=True)
        return sorted(os.listdir(self.path)) if os.path.isdir(self.path) else []


def suggest_compact(expanded: Any, say: Any) -> None:
    """Say (one line per document) where a document of SUGGESTED_FROM points or more keeps a folder per point."""
    for document in getattr(expanded, "documents", ()):
        points = len(document) * document.document.get("repetitions", 1)
        if points >= SUGGESTED_FROM and not is_compact(document.document):
            say(f"{document.document['name']}: {points:,} repetitions, each with a folder and files of its own; "
                "`store: compact` in the document keeps them in a few segment files instead (see the README)")


def find_compact(experiment_path: str) -> CompactExperimentStore | None:
    """The compact store's experiment whose folder (as the default layout would have it) is `experiment_path`,
    if a compact store holds one: for the readers that are given a folder (PlotWork's, the original API's)."""
    for document, at in ((experiment_path, ""), (os.path.dirname(experiment_path), os.path.basename(experiment_path))):
        if os.path.isdir(compact_root(document)):
            name = catalog(compact_root(document), force=True).names_at.get(at)
            if name is not None:
                return CompactExperimentStore(compact_root(document), name, experiment_path)
    return None


AnyRepetition = RepetitionStore | CompactRepetition  # a repetition of either layout, as the runner uses it
AnyWriter = ResultsWriter | CompactWriter


def store_of(experiment: ExpandedExperiment) -> ExperimentStore | CompactExperimentStore:
    """The store of an expanded experiment (its config is built only where the store is compact)."""
    return experiment_store(experiment.path, experiment.config if experiment.store == "compact" else None)


def experiment_store(path: str, config: Mapping[str, Any] | None = None) -> ExperimentStore | CompactExperimentStore:
    """The store of the experiment in folder `path` with this `config`: the compact one where its document
    asks for it (`store: compact`), else the default layout's ExperimentStore."""
    if config is None or not is_compact(config):
        return ExperimentStore(path)
    return CompactExperimentStore(compact_root(config["_experiment_path"]), config["name"], path,
                                  config.get("params"), config.get("experiment_name", config["name"]))

"""The default layout's index of a document's experiment folders: what planning reads of each experiment (its
stored parameters, its repetitions' statuses and rows), with what each file it was read from was then, so that
a resume checks a few stats per started experiment instead of parsing its config.yml (YAML, ~100 us) and
reading its statuses and rows (the compact store's counterpart is `compact_index`).

    <base>/.cluster_work_index.json   {"v": 1, "experiments": {part: [stats, params, reps]}}

`part`: the experiment's folder in the document's; `params`: its stored parameters as the text
`compact_index.canonical(to_plain(params))` (what a change is told by, as `changed_params` compares); `reps`:
per repetition 0 .. R - 1, [rep, status or null, rows, seconds, timed] as a compact store's index has them
(the status cut to the fields a decision reads); `stats`: size, mtime_ns and inode of its config.yml, then of
each repetition's results.jsonl and status.json (-1, 0, 0 for a file that did not exist).

A cache, only ever derived from the files, so deleting it loses nothing, and trusted only where it matches:
- an entry is used only where each file it names has the size, mtime_ns and inode it had (a missing one is
  still missing), it has exactly the experiment's repetitions now, and its parameters are the experiment's
  now; else the experiment's files are read as before (and its entry replaced);
- a file is stat'ed before it is read, and an entry is written only where its newest file was over 2 s
  (`RACY_NS`) older than the pass that read it, on the file system's clock (git's racy-index rule: a file
  changed again within the clock tick it was read in keeps its mtime, and maybe its size);
- written whole to a temporary file beside it, then renamed over it: a kill -9 leaves the old one or the new
  one (and a temporary file, removed by the next writer on that host); one that cannot be parsed (torn by a
  power loss, garbage, another version) is ignored and rewritten; where no entry is settled, none is left;
- only entries of config.yml files with cluster_work's marker exist, so it is written only into document
  folders holding experiments of ours, and only by a run (`apply_plan`, and `refresh` at its end), never by
  -p or --list; a folder that cannot be written (another user's) is read all the same.
Not watched: an experiment.yml (the original ClusterWork's) put into a folder after its entry was written.
"""
from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

from .bulk_runs import DoneRun, FreshRun, Plan, gathered_runs, is_done, params_texts, present_folders
from .compact_index import ExperimentSummary, RepetitionSummary, SummaryExperiment, SummaryRepetition, canonical
from .errors import StoreError
from .expansion import ExpandedDocument, ExpandedExperiment
from .files import is_locked
from .paths import (
    CONFIG_FILE,
    FOLDER_INDEX_TEMPORARY_PREFIX,
    RepetitionPaths,
    experiment_folder,
    folder_index_file,
    folder_index_temporary,
)
from .repetition_state import status_says_finished
from .rows import to_plain
from .store import ExperimentStore
from .vocabulary import Record

VERSION = 1
RACY_NS = 2_000_000_000  # a file this much younger than the pass that read it is not trusted later
STATUS_FIELDS = ("state", "iterations_done", "results_bytes", "mean_iteration_time")  # what `read_repetition` asks
MISSING = [-1, 0, 0]
UNREAD = -1  # an entry's count of rows that were not read, the status deciding (see `usable`)

Entry = list  # [stats, params, reps] (see the module's docstring)


def _stat(path: str) -> list[int]:
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return MISSING
    return [found.st_size, found.st_mtime_ns, found.st_ino]


def _same(path: str, size: int, mtime: int, inode: int) -> bool:
    """Whether `path` is as recorded (a missing one: still missing, asked without an exception's cost)."""
    if size < 0:
        return not os.access(path, os.F_OK)
    try:
        found = os.stat(path)
    except OSError:
        return False
    return found.st_mtime_ns == mtime and found.st_size == size and found.st_ino == inode


@functools.cache
def _relative(rep: int) -> tuple[str, str]:
    """A repetition's results and status files, relative to its experiment's folder."""
    paths = RepetitionPaths.of("", rep)
    return paths.results_file, paths.status_file


def _decides(status: dict[str, Any], iterations: int, size: int) -> bool:
    """Whether a repetition's status decides its state without its rows (as in `read_repetition`)."""
    return status.get("state") == Record.STOPPED.value or status_says_finished(status, iterations,
                                                                               size if size >= 0 else None)


def _newest(stats: list[int]) -> int:
    return max(stats[1::3])


def read_entry(folder: str, repetitions: int, iterations: int) -> Entry | None:
    """The entry of the experiment in `folder` with `repetitions` repetitions of `iterations`, from its files
    (each stat'ed before it is read; the rows of a repetition whose status decides are not: UNREAD); None where
    planning must read them itself: no config of ours, the original ClusterWork's files, or anything it cannot
    read (planning then says why, as before)."""
    store = ExperimentStore(folder)
    stats = list(_stat(store.config_file))
    if stats[0] < 0:
        return None
    reps = []
    try:
        config = store.read_config(own=True)
        if config is None or store.has_original_results():
            return None
        params = canonical(to_plain(config.get("params") or {}))
        for rep in range(repetitions):
            repetition = store.repetition(rep)
            results, status_stat = _stat(repetition.results_file), _stat(repetition.status_file)
            status = repetition.read_status() if status_stat[0] >= 0 else {}
            if not isinstance(status, dict):
                return None
            kept = {key: status[key] for key in STATUS_FIELDS if key in status} if status else None
            if _decides(status, iterations, results[0]):
                reps.append([rep, kept, UNREAD, 0.0, 0])  # its rows are not read (as `read_repetition` does)
                stats += results + status_stat
                continue
            rows = repetition.read_results().rows if results[0] >= 0 else []
            times = [row["iteration_time"] for row in rows if isinstance(row.get("iteration_time"), (int, float))]
            reps.append([rep, kept, len(rows), float(sum(times)), len(times)])
            stats += results + status_stat
    except (OSError, StoreError, ValueError, TypeError, AttributeError):
        return None
    return [stats, params, reps]


class FolderIndex:
    """One document's index for one plan: the entries its file held (`load`), checked against the files where
    asked (`valid`), and those read from the files since (`read`), written back by `write`."""

    def __init__(self, document: ExpandedDocument, entries: dict[str, Entry], present: set[str]):
        self.folder, self.entries, self.present = document.base_folder, entries, present
        self.repetitions, self.iterations = document.document["repetitions"], document.document["iterations"]
        self.started = time.time_ns()  # the pass's start (this host's clock), for the racy rule
        self.loaded = set(entries)  # parts whose entries came from the file: settled when it was written
        self.read_now: set[str] = set()  # parts whose entries were read from their files by this plan

    @classmethod
    def load(cls, document: ExpandedDocument, present: set[str]) -> FolderIndex:
        """The index of `document`, whose folder holds `present` (`present_folders`): empty where there is
        none, or it cannot be read."""
        try:
            with open(folder_index_file(document.base_folder), "rb") as handle:
                entries = decode(handle.read())
        except OSError:
            entries = None
        return cls(document, entries or {}, present)

    def valid(self, part: str) -> Entry | None:
        """The entry of experiment folder `part`, where it matches the files now (a stat per file it names) and
        holds what planning asks with the document's repetitions and iterations now."""
        entry = self.entries.get(part)
        if type(entry) is not list or len(entry) != 3 or type(entry[2]) is not list or \
                len(entry[2]) != self.repetitions or type(entry[1]) is not str:
            return None
        stats, reps = entry[0], entry[2]
        folder = experiment_folder(self.folder, part) + os.sep
        try:
            if not _same(folder + CONFIG_FILE, stats[0], stats[1], stats[2]):
                return None
            for rep in range(self.repetitions):
                results, status, k = *_relative(rep), 3 + 6 * rep
                if not (_same(folder + results, stats[k], stats[k + 1], stats[k + 2])
                        and _same(folder + status, stats[k + 3], stats[k + 4], stats[k + 5])):
                    return None
        except (TypeError, IndexError):  # not an entry of ours (the file was damaged, yet parsed)
            return None
        for rep, (found, size) in enumerate(zip(reps, stats[3::6])):
            if not (type(found) is list and len(found) == 5 and found[0] == rep and type(found[2]) is int
                    and (found[1] is None or type(found[1]) is dict) and type(found[4]) is int):
                return None
            if found[2] == UNREAD and not _decides(found[1] or {}, self.iterations, size):
                return None  # its rows were not read, but are asked now (more iterations)
        return entry

    def read(self, part: str) -> Entry | None:
        """The entry of `part` read from its files now (kept for `write`); None: see `read_entry`."""
        entry = read_entry(experiment_folder(self.folder, part), self.repetitions, self.iterations)
        if entry is None:
            self.entries.pop(part, None)
            self.read_now.discard(part)
            return None
        self.entries[part] = entry
        self.read_now.add(part)
        return entry

    def store(self, experiment: ExpandedExperiment) -> ExperimentStore | IndexedExperiment:
        """Where planning reads `experiment` (one of this document's, its folder on disk) from: its entry, valid
        or read now, where its parameters are unchanged; else its folder (a change's keys from its YAML)."""
        part = experiment.params_part
        entry = self.valid(part) or self.read(part)
        if entry is None or entry[1] != canonical(to_plain(experiment.params)):
            return ExperimentStore(experiment.path)
        return IndexedExperiment(experiment.name, experiment.path, entry, experiment.params)

    def experiment(self, name: str, path: str) -> ExperimentStore | IndexedExperiment:
        """Where a DoneRun's experiment is read from where its plan is made (its entry, if still valid)."""
        entry = self.valid(os.path.relpath(path, self.folder))
        return IndexedExperiment(name, path, entry) if entry is not None else ExperimentStore(path)

    def is_done(self, entry: Entry) -> bool:
        """Whether each repetition is finished or stopped as `read_repetition` decides from the entry (one whose
        finished status fails its size check is planned one by one, from what the entry says)."""
        for (_, status, *_), size in zip(entry[2], entry[0][3::6]):
            recorded = (status or {}).get("results_bytes")
            if isinstance(recorded, int) and size < recorded:
                return False
        return is_done(entry[2], self.repetitions, self.iterations)

    def write(self) -> bool:
        """Replace the file by the entries of the folders that exist (those of experiments this document does not
        have, another sweep's in the same folder, kept) that are settled (see the module's docstring); nothing
        where nothing changed or no entry is left. False where it could not be written."""
        kept = {part: entry for part, entry in self.entries.items() if part in self.present}
        if not kept or (set(kept) == self.loaded and not self.read_now):
            return True
        _remove_dead_temporaries(self.folder)
        temporary = folder_index_temporary(self.folder, socket.gethostname(), os.getpid(), secrets.token_hex(4))
        try:
            with open(temporary, "xb") as handle:
                handle.write(b"{}")  # first: the file system's clock now, to settle entries by
                handle.flush()
                skew = time.time_ns() - os.fstat(handle.fileno()).st_mtime_ns
                limit = self.started - max(skew, 0) - RACY_NS
                settled = {part: entry for part, entry in kept.items()
                           if part not in self.read_now or _newest(entry[0]) < limit}
                handle.seek(0)
                handle.truncate()
                handle.write(encode(settled))
                handle.flush()
                os.fsync(handle.fileno())
            if settled:
                os.replace(temporary, folder_index_file(self.folder))
            else:  # no index rather than an empty one (a sweep's first run: every file just written)
                os.unlink(temporary)
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder_index_file(self.folder))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            return False
        return True


class IndexedExperiment(SummaryExperiment):
    """An experiment as its valid entry says, with the methods of ExperimentStore planning uses. `params`: the
    experiment's parameters now, where they are known to have the entry's text (given back as the stored ones,
    the very object: `changed_params` then needs no comparison)."""

    def __init__(self, name: str, path: str, entry: Entry, params: Any = None):
        self.name, self.path, self.params = name, path, params
        self.found = ExperimentSummary.of(["", entry[1], entry[2]])
        self.sizes = entry[0][3::6]  # each repetition's results size, which a finished status is checked on

    def read_config(self, own: bool = False) -> dict[str, Any] | None:
        if self.params is None:
            return super().read_config(own)
        return {"name": self.name, "params": self.params}

    def repetition(self, rep: int) -> IndexedRepetition:
        assert self.found is not None
        return IndexedRepetition(self.name, self.path, rep, self.found.repetitions[rep], self.sizes[rep])


class IndexedRepetition(SummaryRepetition):
    def __init__(self, name: str, path: str, rep: int, found: RepetitionSummary, size: int):
        self.name, self.path, self.rep, self.summary, self.size = name, path, rep, found, size

    def is_running(self) -> bool:
        return is_locked(RepetitionPaths.of(self.path, self.rep).results_file)

    def results_size(self) -> int | None:
        return self.size if self.size >= 0 else None


def encode(entries: dict[str, Entry]) -> bytes:
    return json.dumps({"v": VERSION, "experiments": entries}, separators=(",", ":"), allow_nan=True).encode()


def decode(data: bytes) -> dict[str, Entry] | None:
    """The entries a file holds (each checked where it is used: `FolderIndex.valid`); None where it is not an
    index of this version (torn, garbage, empty)."""
    try:
        value = json.loads(data)
    except ValueError:
        return None
    entries = value.get("experiments") if isinstance(value, dict) and value.get("v") == VERSION else None
    return entries if isinstance(entries, dict) else None


def _remove_dead_temporaries(folder: str) -> None:
    """Remove the temporary files of writers on this host that died (kill -9) while they wrote."""
    host = socket.gethostname()
    try:
        names = [name for name in os.listdir(folder) if name.startswith(FOLDER_INDEX_TEMPORARY_PREFIX)]
    except OSError:
        return
    for name in names:
        writer_host, _, pid = name[len(FOLDER_INDEX_TEMPORARY_PREFIX):].rpartition("-")[0].rpartition("-")
        if writer_host != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
        except OSError:
            pass


def indexed_runs(document: ExpandedDocument, first_index: int, present: set[str], index: FolderIndex, plan: Plan,
                 ) -> Iterator[tuple[Any, bool]]:
    """A document of the default layout as FreshRuns (experiments without a folder, see `present_folders`),
    DoneRuns (an entry valid now says it is done and its parameters unchanged) and, between them, each other
    experiment's plan by `plan` (which reads through `index.store`); each with whether it was fresh."""
    texts = params_texts(document)
    expected = texts[0]() if texts is not None else itertools.repeat("")

    def kinds() -> Iterator[tuple[type | None, Entry | None]]:
        for part, joined in zip(document.folder_parts(), expected):
            if part not in present:
                yield FreshRun, None
                continue
            entry = index.valid(part) if texts is not None else None
            yield (DoneRun, [part, entry[1], entry[2]]) if entry is not None and texts is not None and (
                texts[1](joined) == entry[1] and index.is_done(entry)) else (None, None)

    return gathered_runs(document, first_index, kinds(), index, plan)


def refresh(document: ExpandedDocument) -> bool:
    """Bring the index of `document` up to date with its folders (at the end of a run, so that the next one
    plans from it): each folder's entry checked, or read. False where it could not be written."""
    present = present_folders(document)
    if not document.varies or not present:
        return True
    index = FolderIndex.load(document, present)
    for part in (part for part in document.folder_parts() if part in present):
        if index.valid(part) is None:
            index.read(part)
    return index.write()

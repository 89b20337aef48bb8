"""The default layout's index of a document's experiment folders: what planning reads of each experiment (its
stored parameters, its repetitions' statuses and rows), with what each file it was read from was then, so that
a resume checks a few stats per started experiment instead of parsing its config.yml (YAML, ~100 us) and
reading its statuses and rows (the compact store's counterpart is `compact_index`).

    <base>/.cluster_work_index.json   {"v":3,"digest":"<blake2b of what follows>","experiments":{part: [files,
                                                                                                params, done, reps]}}

`part`: the experiment's folder in the document's; `files`: "size:mtime_ns:inode" of its config.yml, then of
each repetition's files in either layout (`RepetitionPaths.files`: rep_NN.jsonl, then an earlier version's
rep_NN/results.jsonl and status.json), joined by "|" ("-": it did not exist; "": not stat'ed, the folder
layout's two beside an existing rep_NN.jsonl, which `RepetitionStore.in_folder` then never reads: a finished
experiment is checked by a stat of its config.yml and one of each repetition's rep_NN.jsonl, the floor, since
either can be changed in place, which no other inode records); `params`: its stored
parameters as the text `compact_index.canonical(to_plain(params))` (what a change is told by, as
`changed_params` compares); `done`: up to how many iterations every repetition counts as done (-1: none, or
plan it one by one), so that a done experiment is told without parsing `reps`, the JSON text of
[[rep, status or null, rows, seconds, timed], ...] as a compact store's index has them (the status cut to the
fields a decision reads; rows -1: not read, its status deciding, as `read_repetition` does).

A cache, only ever derived from the files, so deleting it loses nothing, and trusted only where it matches:
- an entry is used only where each file it names has the size, mtime_ns and inode it had (a missing one is
  still missing: not even a dangling link has its name), it has exactly the experiment's repetitions now, and
  its parameters are the experiment's now; else the experiment's files are read as before (and its entry
  replaced);
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
import hashlib
import itertools
import json
import operator
import os
import secrets
import socket
import time
from collections.abc import Iterator
from typing import Any

from . import bulk_runs, collector
from .bulk_runs import NewOrDoneRun, Plan, block_runs, fresh_runs, params_texts, present_folders
from .compact_index import ExperimentSummary, RepetitionSummary, SummaryExperiment, SummaryRepetition, canonical
from .errors import StoreError
from .expansion import ExpandedDocument, ExpandedExperiment
from .files import hold_temporary, is_locked, remove_dead_writers_temporaries
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
from .store import ExperimentStore, RepetitionStore
from .vocabulary import Record

VERSION = 3  # 2: three files a repetition (its one file, and the folder layout's two); 3: "" for those not stat'ed
RACY_NS = 2_000_000_000  # a file this much younger than the pass that read it is not trusted later
STATUS_FIELDS = ("state", "iterations_done", "results_bytes", "mean_iteration_time")  # what `read_repetition` asks
NOT_STATED = ""  # a folder layout's file beside an existing rep_NN.jsonl: never read, never stat'ed
UNREAD = -1  # a repetition's rows that were not read, its status deciding
ALWAYS = 2**62  # done however many iterations (stopped)
STOPPED, FINISHED = Record.STOPPED.value, Record.FINISHED.value

Entry = list  # [files, params, done, reps] (see the module's docstring)


def _text(found: os.stat_result) -> str:
    """What an entry records of a file that exists."""
    return f"{found.st_size}:{found.st_mtime_ns}:{found.st_ino}"


def _stat(path: str) -> tuple[str, int]:
    """What an entry says of `path` now ("-": missing), and its mtime (0: missing)."""
    try:
        found = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return "-", 0
    return _text(found), found.st_mtime_ns


def _unchanged(folders: list[str], records: list[str], names: tuple[str, ...], folder: int | None,
               first: int = 0) -> bool:
    """Whether the files `names` in each of `folders` (relative to the open folder `folder`, if given) are as
    `records` (each an entry's files, in order) say: a missing one still missing, as `RepetitionStore.in_folder`
    asks (a dangling link counting as there; asked without an exception's cost), NOT_STATED ones not asked, nor
    the `first` ones. One loop for a block of experiments: at 10^6 points, 10^6 stats, ~0.3 us of Python each
    beside the stat's ~2.7."""
    asked = names[first:]
    for part, record in zip(folders, records):
        recorded = record.split("|")
        if len(recorded) != len(names):
            return False
        for name, found in zip(asked, recorded[first:]):
            if not found:  # NOT_STATED
                continue
            path = f"{part}{os.sep}{name}"
            if found == "-":
                if os.access(path, os.F_OK, dir_fd=folder, follow_symlinks=False):
                    return False
                continue
            try:
                if _text(os.stat(path, dir_fd=folder)) != found:
                    return False
            except OSError:
                return False
    return True


@functools.cache
def _relative(repetitions: int) -> tuple[str, ...]:
    """The files an entry names, relative to its experiment's folder (see the module's docstring)."""
    files = [CONFIG_FILE]
    for rep in range(repetitions):
        files += RepetitionPaths.of("", rep).files
    return tuple(files)


FILES_PER_REPETITION = len(RepetitionPaths.of("", 0).files)


def _repetition_stats(repetition: RepetitionStore) -> list[tuple[str, int]] | None:
    """What an entry records of a repetition's files (`RepetitionPaths.files`), with their mtimes: where its
    rep_NN.jsonl exists, that file's stat alone (`RepetitionStore.in_folder` then reads neither of the folder
    layout's files, so they decide nothing: NOT_STATED), else "-" and the folder layout's two; None where
    rep_NN.jsonl is there but has no stat (a dangling link: `in_folder` asks `lexists`, so it decides)."""
    one, results, status = repetition.paths.files
    found = _stat(one)
    if found[0] != "-":
        return [found, (NOT_STATED, 0), (NOT_STATED, 0)]
    if os.path.lexists(one):
        return None
    return [found, _stat(results), _stat(status)]


def _results_at(files: list[str], rep: int, first: int = 1) -> int:
    """Where among `files` (an entry's, whose repetitions' start at `first`) repetition `rep`'s results file is: its
    rep_NN.jsonl where that exists, else the folder layout's results.jsonl (RepetitionStore.in_folder's rule)."""
    at = first + FILES_PER_REPETITION * rep
    return at if files[at] != "-" else at + 1


def _results(files: list[str], rep: int, first: int = 1) -> str:
    """What `files` (an entry's) say of repetition `rep`'s results file (`_results_at`)."""
    return files[_results_at(files, rep, first)]


def _size(recorded: str) -> int | None:
    return None if recorded == "-" else int(recorded.partition(":")[0])


def _done_through(status: dict[str, Any], rows: int, size: int | None) -> int:
    """Up to how many iterations a repetition with this status and `rows` (UNREAD: not read) counts as done, as
    `read_repetition` decides; -1 where a finished status fails its size check (planned one by one: see
    `NewOrDoneRun.iteration_times`, which does not check it)."""
    if status.get("state") == STOPPED:
        return ALWAYS
    if status.get("state") != FINISHED:
        return rows
    recorded, done = status.get("results_bytes"), status.get("iterations_done", 0)
    if isinstance(recorded, int) and (size is None or size < recorded):
        return -1
    return max(rows, done) if isinstance(done, int) else rows


def read_entry(folder: str, repetitions: int, iterations: int) -> tuple[Entry, int] | None:
    """The entry of the experiment in `folder` with `repetitions` repetitions of `iterations`, from its files
    (each stat'ed before it is read; the rows of a repetition whose status decides are not), and its newest
    file's mtime; None where planning must read them itself: no config of ours, the original ClusterWork's
    files, or anything it cannot read (planning then says why, as before)."""
    store = ExperimentStore(folder)
    config_stat, newest = _stat(store.config_file)
    if config_stat == "-":
        return None
    files, reps, done = [config_stat], [], ALWAYS
    try:
        config = store.read_config(own=True)
        if config is None or store.has_original_results():
            return None
        params = canonical(to_plain(config.get("params") or {}))
        for rep in range(repetitions):
            repetition = store.repetition(rep)
            stats = _repetition_stats(repetition)
            if stats is None:
                return None
            recorded = [found for found, _ in stats]
            results = _results(recorded, 0, first=0)
            prefix = None
            if repetition.in_folder:
                status = repetition.read_status() if recorded[2] != "-" else {}
            else:  # its status records are among its rows: one read for both
                prefix = repetition.read_results() if results != "-" else None
                status = (prefix.status or {}) if prefix is not None else {}
            if not isinstance(status, dict):
                return None
            size = _size(results)
            if status.get("state") == STOPPED or status_says_finished(status, iterations, size):
                count, seconds, timed = UNREAD, 0.0, 0  # as `read_repetition`: the status decides
            else:
                rows = (prefix or repetition.read_results()).rows if results != "-" else []
                times = [row["iteration_time"] for row in rows
                         if isinstance(row.get("iteration_time"), (int, float))]
                count, seconds, timed = len(rows), float(sum(times)), len(times)
            reps.append([rep, {key: status[key] for key in STATUS_FIELDS if key in status} if status else None,
                         count, seconds, timed])
            files += recorded
            newest = max(newest, *(mtime for _, mtime in stats))
            done = min(done, _done_through(status, count, size))
    except (OSError, StoreError, ValueError, TypeError, AttributeError):
        return None
    return ["|".join(files), params, done, json.dumps(reps, separators=(",", ":"))], newest


def _unpacked(entry: Entry) -> tuple[list[str], list[Any]] | None:
    """An entry's files and repetitions; None where it is not an entry of ours (a damaged file, yet parsed)."""
    try:
        files, reps = entry[0].split("|"), json.loads(entry[3])
    except (AttributeError, TypeError, ValueError, IndexError):
        return None
    if not (isinstance(reps, list) and len(files) == 1 + FILES_PER_REPETITION * len(reps) and all(
            type(found) is list and len(found) == 5 and found[0] == rep and type(found[2]) is int
            and (found[1] is None or type(found[1]) is dict) and type(found[4]) is int
            and isinstance(found[3], (int, float)) for rep, found in enumerate(reps))):
        return None
    return files, reps


class FolderIndex:
    """One document's index for one plan: the entries its file held (`load`), checked against the files where
    asked (`valid`), and those read from the files since (`read`), written back by `write`."""

    def __init__(self, document: ExpandedDocument, entries: dict[str, Entry], present: set[str]):
        self.folder, self.entries, self.present = document.base_folder, entries, present
        self.repetitions, self.iterations = document.document["repetitions"], document.document["iterations"]
        self.started = time.time_ns()  # the pass's start (this host's clock), for the racy rule
        self.loaded = set(entries)  # parts whose entries came from the file: settled when it was written
        self.read_now: dict[str, int] = {}  # parts read from their files by this plan: their newest mtime
        self._files, self._prefix = _relative(self.repetitions), os.path.join(self.folder, "")

    @classmethod
    def load(cls, document: ExpandedDocument, present: set[str]) -> FolderIndex:
        """The index of `document`, whose folder holds `present` (`present_folders`): empty where there is
        none, or it cannot be read."""
        try:
            with open(folder_index_file(document.base_folder), "rb") as handle:
                data = handle.read()
        except OSError:
            data = b""
        with collector.paused():  # its lists hold no cycles
            entries = decode(data) or {}
        collector.freeze_large(len(entries))  # kept for the plan's life: the collector's passes cost ~1.3 s at 10^6
        return cls(document, entries, present)

    def valid(self, part: str, first: int = 0) -> Entry | None:
        """The entry of experiment folder `part`, where it matches the files now: a stat per file it names
        (its repetitions: as many as the document's now), but for the `first` ones (1: not its config.yml)."""
        entry = self.entries.get(part)
        if entry is None:
            return None
        # (experiment_folder's, without a join per experiment; NOT_STATED: only ever beside a rep_NN.jsonl stat'ed)
        return entry if _unchanged([self._prefix + part], [entry[0]], self._files, None, first) else None

    def all_valid(self, parts: list[str], entries: list[Entry], first: int = 0) -> bool:
        """Whether the entry of each experiment folder of `parts` (`entries`, in order) matches the files now, as
        `valid` asks, in one loop (a block of done experiments); each file's path relative to the document's
        folder, opened once, so that the path to it is not walked again per file (~0.3 us of a stat's ~3)."""
        try:
            folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            return False
        try:
            return _unchanged(parts, [entry[0] for entry in entries], self._files, folder, first)
        finally:
            os.close(folder)

    def finished_repetitions(self, parts: list[str], iterations: int) -> list[list[Any] | None]:
        """For each experiment folder of `parts`, its repetitions as its entry holds them ([[rep, status, rows,
        seconds, timed], ...]) where the entry is valid now and says each is done through `iterations` (finished
        or stopped: `progress_figures.finished_times` tells which); None for the others (read from their files).
        Stat'ed in one loop (`all_valid`), each one again only where that finds a change; parsed by one
        json.loads."""
        entries: list[Any] = list(map(self.entries.get, parts))  # (an Entry, or None: no entry)
        if None not in entries and min(map(operator.itemgetter(2), entries), default=iterations) >= iterations:
            done = dict(enumerate(entries))  # (each one done: a block of a half-done sweep's finished ones, usually)
        else:
            done = {at: entry for at, entry in enumerate(entries) if entry is not None and entry[2] >= iterations}
        # (its repetitions' files alone: progress reads no config.yml, an experiment's figures are its repetitions')
        if not self.all_valid([parts[at] for at in done], list(done.values()), first=1):
            done = {at: entry for at, entry in done.items() if self.valid(parts[at], first=1) is not None}
        reps = json.loads("[" + ",".join(map(operator.itemgetter(3), done.values())) + "]")
        if len(done) == len(parts):
            return reps
        found: list[list[Any] | None] = [None] * len(parts)
        for at, each in zip(done, reps):
            found[at] = each
        return found

    def is_running(self, part: str, rep: int) -> bool:
        """Whether a live process holds repetition `rep` of experiment folder `part`, whose entry is valid: a lock on
        the file its entry says holds its rows (`_results_at`: `RepetitionStore.results_file`'s, without asking
        the layout again; the folder layout's results.jsonl exists only where that layout is kept)."""
        name = self._files[_results_at(self.entries[part][0].split("|"), rep)]  # (its files in their names' order)
        return is_locked(f"{self._prefix}{part}{os.sep}{name}")

    def read(self, part: str) -> Entry | None:
        """The entry of `part` read from its files now (kept for `write`); None: see `read_entry`."""
        found = read_entry(experiment_folder(self.folder, part), self.repetitions, self.iterations)
        if found is None:
            self.entries.pop(part, None)
            self.read_now.pop(part, None)
            return None
        self.entries[part], self.read_now[part] = found
        return found[0]

    def store(self, experiment: ExpandedExperiment) -> ExperimentStore | IndexedExperiment:
        """Where planning reads `experiment` (one of this document's, its folder on disk) from: its entry, valid
        or read now, where its parameters are unchanged; else its folder (a change's keys from its YAML)."""
        part = experiment.params_part
        entry = self.valid(part)
        unpacked = _unpacked(entry) if entry is not None else None
        if unpacked is None or not self._answers(*unpacked):
            entry = self.read(part)
            unpacked = _unpacked(entry) if entry is not None else None
        if entry is None or unpacked is None or entry[1] != canonical(to_plain(experiment.params)):
            return ExperimentStore(experiment.path)
        return IndexedExperiment(experiment.name, experiment.path, unpacked, entry[1], experiment.params)

    def _answers(self, files: list[str], reps: list[Any]) -> bool:
        """Whether an entry holds what `read_repetition` asks with the document's iterations now: rows that
        were not read (their status decided) are asked where it no longer decides (more iterations)."""
        return all(rows != UNREAD or (status or {}).get("state") == STOPPED or status_says_finished(
            status or {}, self.iterations, _size(_results(files, rep))) for rep, status, rows, *_ in reps)

    def experiment(self, name: str, path: str) -> ExperimentStore | IndexedExperiment:
        """Where a NewOrDoneRun's done experiment is read from where its plan is made (its entry, if still valid)."""
        entry = self.valid(os.path.relpath(path, self.folder))
        unpacked = _unpacked(entry) if entry is not None else None
        return IndexedExperiment(name, path, unpacked, entry[1]) if entry is not None and unpacked is not None \
            else ExperimentStore(path)

    def write(self) -> bool:
        """Replace the file by the entries of the folders that exist (those of experiments this document does not
        have, another sweep's in the same folder, kept) that are settled (see the module's docstring); nothing
        where nothing changed or no entry is left. False where it could not be written."""
        kept = {part: entry for part, entry in self.entries.items() if part in self.present}
        if not kept or (set(kept) == self.loaded and not self.read_now):
            return True
        remove_dead_writers_temporaries(self.folder, FOLDER_INDEX_TEMPORARY_PREFIX)
        temporary = folder_index_temporary(self.folder, socket.gethostname(), os.getpid(), secrets.token_hex(4))
        try:
            with open(temporary, "xb") as handle:
                hold_temporary(handle.fileno())
                handle.write(b"{}")  # first: the file system's clock now, to settle entries by
                handle.flush()
                skew = time.time_ns() - os.fstat(handle.fileno()).st_mtime_ns
                limit = self.started - max(skew, 0) - RACY_NS
                settled = {part: entry for part, entry in kept.items()
                           if self.read_now.get(part, 0) < limit}
                handle.seek(0)
                handle.truncate()
                handle.write(encode(settled))
                handle.flush()
                os.fsync(handle.fileno())
                if settled:
                    os.replace(temporary, folder_index_file(self.folder))  # renamed while held
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

    def __init__(self, name: str, path: str, unpacked: tuple[list[str], list[Any]], stored: str, params: Any = None):
        files, reps = unpacked
        self.name, self.path, self.params = name, path, params
        self.found = ExperimentSummary.of(["", stored, reps])
        self.sizes = [_size(_results(files, rep)) for rep in range(len(reps))]  # a finished status is checked on

    def read_config(self, own: bool = False) -> dict[str, Any] | None:
        if self.params is None:
            return super().read_config(own)
        return {"name": self.name, "params": self.params}

    def repetition(self, rep: int) -> IndexedRepetition:
        assert self.found is not None
        return IndexedRepetition(self.name, self.path, rep, self.found.repetitions[rep], self.sizes[rep])


class IndexedRepetition(SummaryRepetition):
    def __init__(self, name: str, path: str, rep: int, found: RepetitionSummary, size: int | None):
        self.name, self.path, self.rep, self.summary, self.size = name, path, rep, found, size

    def is_running(self) -> bool:
        return RepetitionStore(self.path, self.rep).is_running()

    def results_size(self) -> int | None:
        return self.size


class FolderRun(NewOrDoneRun):
    """A NewOrDoneRun of a folder index: its done experiments' repetitions parsed only where they are asked (all of
    a run's in one call: a json.loads per experiment cost more in its Python wrapper than in parsing)."""

    def iteration_times(self) -> Iterator[float]:
        reps = json.loads("[" + ",".join([found[2] for found in self.found]) + "]")
        parsed = tuple([at, params, found] for (at, params, _), found in zip(self.found, reps))
        return NewOrDoneRun(self.document, self.start, self.stop, self.first_index, self.store, self.done,
                            parsed).iteration_times()


def encode(entries: dict[str, Entry]) -> bytes:
    """The file's bytes: the entries' JSON after a header with its digest (so that a damaged file, even one that
    still parses, is told from one this wrote)."""
    body = json.dumps(entries, separators=(",", ":"), allow_nan=True).encode()
    return _HEADER % (VERSION, hashlib.blake2b(body, digest_size=16).hexdigest().encode()) + body + b"}"


_HEADER = b'{"v":%d,"digest":"%s","experiments":'
_HEADER_SIZE = len(_HEADER % (VERSION, b"0" * 32))


def decode(data: bytes) -> dict[str, Entry] | None:
    """The entries a file holds; None where it is not an index of this version as `encode` wrote it (torn,
    garbage, empty, damaged). (The file is JSON as a whole: parsed once, its body hashed in place.)"""
    digest = hashlib.blake2b(memoryview(data)[_HEADER_SIZE:-1], digest_size=16).hexdigest().encode()
    if data[:_HEADER_SIZE] != _HEADER % (VERSION, digest) or data[-1:] != b"}":
        return None
    try:
        entries = json.loads(data)["experiments"]
    except (ValueError, KeyError, TypeError):
        return None
    return entries if isinstance(entries, dict) else None



def indexed_runs(document: ExpandedDocument, first_index: int, present: set[str], index: FolderIndex, plan: Plan,
                 ) -> Iterator[tuple[Any, bool]]:
    """A document of the default layout as FolderRuns, BLOCK experiments at a time (new: no folder, see
    `present_folders`; done: an entry valid now says so and that its parameters are unchanged) and, between
    them, each other experiment's plan by `plan` (which reads through `index.store`); each with whether it was
    fresh. Where its file held no entry (none yet, or a `kill -9` ended the last run), as `fresh_runs`: FreshRuns
    of the new ones, the others planned one by one."""
    if not index.loaded:
        yield from fresh_runs(document, first_index, present, plan)
        return
    texts, iterations = params_texts(document), document.document["iterations"]
    parts, joined = document.folder_parts(), texts[0]() if texts is not None else None
    for block in range(0, len(document), bulk_runs.BLOCK):
        block_parts = list(itertools.islice(parts, bulk_runs.BLOCK))
        expected = list(itertools.islice(joined, len(block_parts))) if joined is not None else None
        there = list(map(present.__contains__, block_parts))
        found = _all_done(index, texts, block_parts, there, expected, iterations) if expected is not None else None
        if found is not None:  # every experiment there done, unchanged (the usual case): checked in one loop
            first = first_index + block * document.document["repetitions"]
            yield FolderRun(document, block, block + len(block_parts), first, index, bytes(there), tuple(found)), False
            continue
        yield from block_runs(document, first_index, block, there,
                              functools.partial(_done_entry, index, texts, block_parts, expected, iterations),
                              index, plan, FolderRun)


def _all_done(index: FolderIndex, texts: Any, parts: list[str], there: list[bool], expected: list[str],
              iterations: int) -> list[list[Any]] | None:
    """What a FolderRun holds of a block's done experiments (`_done_entry`'s, in order), where every experiment
    whose folder is there (`there`) has an entry valid now that says it is done and that its parameters are
    unchanged; None where one has not (the block is then planned experiment by experiment). The files are
    stat'ed last, so a block is stat'ed twice only where a file changed since its entry was written."""
    held = list(itertools.compress(parts, there))
    entries = [entry for entry in map(index.entries.get, held) if entry is not None]
    if len(entries) < len(held) or not all(entry[2] >= iterations for entry in entries) or \
            not all(map(operator.eq, texts[2](itertools.compress(expected, there)),
                        [entry[1] for entry in entries])) or not index.all_valid(held, entries):
        return None
    return [[part, entry[1], entry[3]] for part, entry in zip(held, entries)]


def _done_entry(index: FolderIndex, texts: Any, parts: list[str], expected: list[str] | None, iterations: int,
                offset: int, _: bool) -> list[Any] | None:
    """A FolderRun's entry of the experiment at `offset` of a block whose folders are `parts`, where its entry
    valid now says it is done and its parameters are unchanged: [part, params, reps text]."""
    if texts is None or expected is None:
        return None
    entry = index.valid(parts[offset])
    return [parts[offset], entry[1], entry[3]] if entry is not None and entry[2] >= iterations and \
        texts[1](expected[offset]) == entry[1] else None


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

"""The on-disk format of a sweep in the default layout (the compact store's is `compact_store`'s); whole-file
writes and locks are `files`' primitives, the names `paths`'.

    <path>/<base name>/<params part>/config.yml     effective config (its first line marks the folder as ours)
    <path>/<base name>/<params part>/log/rep_00.jsonl          one JSON object per iteration, appended, and
                                                               the repetition's status records (rows.encode_status)
    <path>/<base name>/<params part>/log/rep_00/rep.log        what the repetition logged and printed (made when
                                                               it logs; the folder too, or when the experiment
                                                               reads `_log_path_rep`)
    <path>/.cluster_work_attempts/fault-<host>-<pid>-<token>.log   a process's native crash stack, if any

(an experiment without grid or list lives in `<path>/<base name>/`), the original ClusterWork's layout.
A new repetition creates one file (`log/` is the experiment's, made by its first). A repetition an earlier
version began keeps its `log/rep_00/results.jsonl` and `status.json` (written whole to a temporary file,
then renamed over the old one), read and continued in that layout (`RepetitionStore.in_folder`).
Durability: a row, and a status record, is appended with one `write` of a whole line, so a `kill -9` leaves at
worst a torn last line, which readers ignore and the next writer cuts off. A repetition that runs to its end
has no status (its rows say it is finished): one that ended otherwise (failed, interrupted, stopped, a
segment reached) gets one, the last record winning, kept current from then on (cutting rows back keeps it).
The config is written whole to a temporary file and renamed, so it is always complete. What reaches
the disk when is `durability`'s group commit (once a second, and at the end of a run).
The results file is locked (`flock`) by its writer, so two runs never write one repetition.
Deleting (`-d`) removes only what cluster_work wrote, and never follows a symbolic link.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import json
import os
import secrets
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from .durability import committer, sync_now
from .errors import StoreError
from .files import (  # noqa: F401 (atomic_write, is_locked, remove_own_temporaries re-exported)
    StoreIO,
    atomic_write,
    is_locked,
    read_json,
    remove_own_temporaries,
)
from .paths import (  # noqa: F401 (re-exported: the names of the store's files)
    CONFIG_FILE,
    FROZEN_POINTS_FILE,
    LOG_FILE,
    LOG_FOLDER,
    ORIGINAL_CONFIG_FILE,
    REPETITION_FILE_SUFFIX,
    RESULTS_FILE,
    STATUS_FILE,
    RepetitionPaths,
    SweepPaths,
    iteration_folder_name,
    repetition_folder_name,
)
from .rows import (  # noqa: F401 (re-exported)
    ResultsPrefix,
    encode_row,
    encode_status,
    last_status,
    parse_results,
    to_plain,
    without_statuses,
)
from .vocabulary import Record

# The first line of every config.yml cluster_work writes: what tells its folders from a user's.
MARKER = "# written by cluster_work: the effective config of this experiment."
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where installed: 7x faster
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the same text as safe_dump's, 4x faster (a config a job)


class RepetitionBusy(Exception):
    """Another live process holds this repetition's lock."""


class RepetitionStore:
    """The files of one repetition: results rows, status, log and the user's own files.

    The one place that decides a repetition's layout (`in_folder`): its rows and status records in one file,
    `log/rep_NN.jsonl`, or (a repetition an earlier version began: `log/rep_NN/results.jsonl` or `status.json`
    exists) in those two files, which it keeps for as long as they exist. New code never creates the folder
    layout's files, nor `rep_NN.jsonl` beside them, so a repetition's layout never changes under its readers.
    `sweep_path`: the folder of the per-process fault log (`fault_log`), where the repetition is run."""

    def __init__(self, experiment_path: str, rep: int, sweep_path: str | None = None):
        self.rep = rep
        self.paths = paths = RepetitionPaths.of(experiment_path, rep)
        self.path, self.log_file = paths.folder, paths.log_file
        self.sweep_path = sweep_path
        self._writer: ResultsWriter | None = None  # this process's, while it holds the repetition (open_writer)

    @functools.cached_property
    def in_folder(self) -> bool:
        """Whether the repetition keeps the folder layout (its results.jsonl or status.json exists); one stat where
        its `rep_NN.jsonl` exists, two for a new repetition."""
        paths = self.paths
        if os.path.lexists(paths.file) or not os.path.lexists(paths.folder):
            return False
        return os.path.lexists(paths.folder_results_file) or os.path.lexists(paths.folder_status_file)

    @property
    def results_file(self) -> str:
        """The file of its rows (and, in the one-file layout, its status records): the one its writer locks."""
        return self.paths.folder_results_file if self.in_folder else self.paths.file

    @property
    def status_file(self) -> str | None:
        """The folder layout's status.json; None where the status is folded into the results file."""
        return self.paths.folder_status_file if self.in_folder else None

    @property
    def fault_log(self) -> str:
        """Where a native crash of this process leaves its Python stack while it runs the repetition: the process's
        fault log beside its attempts journals (logs.held_fault_log: opened once per process, not a file per
        repetition), or without a sweep folder the repetition's rep.log."""
        if self.sweep_path is None:
            return self.log_file
        return SweepPaths(self.sweep_path).fault_log(socket.gethostname(), os.getpid(), _process_token())

    def read_results(self) -> ResultsPrefix:
        return parse_results(self._read())

    def _read(self) -> bytes:
        try:
            with open(self.results_file, "rb") as handle:
                return handle.read()
        except FileNotFoundError:
            return b""

    def read_complete_lines(self) -> bytes:
        """The rows of the results file up to its last newline (a torn last row and status records left out),
        unparsed."""
        data = self._read()
        return without_statuses(data[:data.rfind(b"\n") + 1])

    def read_status(self) -> dict[str, Any]:
        if self.status_file is not None:
            return read_json(self.status_file) or {}
        return last_status(self._read())[0] or {}

    def results_size(self) -> int | None:
        """The results file's size (None: there is none), which a finished status's `results_bytes` is checked on."""
        try:
            return os.stat(self.results_file).st_size
        except OSError:
            return None

    def has_status(self) -> bool:
        """Whether it has a status (only a repetition that once ended unfinished has one)."""
        if self.status_file is not None:
            return os.path.lexists(self.status_file)
        if self._writer is not None and self._writer.open:
            return self._writer.has_status
        return bool(self.read_status())

    def has_files(self) -> bool:
        """Whether a writer ever opened it (its results file, or a status, exists)."""
        status = self.status_file
        return os.path.lexists(self.results_file) or (status is not None and os.path.lexists(status))

    def is_running(self) -> bool:
        """Whether a live process holds this repetition's lock (it dies with its holder)."""
        return is_locked(self.results_file)

    def write_status(self, state: Record, sync: bool = True, **fields: Any) -> None:
        """Replace the status (a hint: the rows decide the state); synced by the next group commit. In the one-file
        layout a status record appended to the results file (through this process's writer where it holds the
        repetition, else by one append of its own: a campaign marking a repetition no one runs)."""
        status = {"state": state.value, "host": socket.gethostname(), "pid": os.getpid(),
                  "updated": time.time(), **fields}
        if self.status_file is None:
            if self._writer is not None and self._writer.open:
                self._writer.append_status(encode_status(status))
            else:
                self.create_folder()
                _append_line(self.results_file, encode_status(status))
            target = self.results_file
        else:  # one line of plain fields, by json's C encoder (an indent would take its slow Python one)
            atomic_write(self.status_file, json.dumps(status, default=to_plain).encode(), sync=False)
            target = self.status_file
        if sync:
            committer.wrote(target)

    def create_folder(self) -> bool:
        """Create the folder its results file goes in if missing (the experiment's `log/`, or the folder layout's
        `log/rep_NN/`); whether it was created just now."""
        folder = os.path.dirname(self.results_file)
        with StoreIO("create", folder):
            try:
                os.mkdir(folder)
                return True
            except FileNotFoundError:  # no log/ yet: the experiment's first repetition
                os.makedirs(os.path.dirname(folder), exist_ok=True)
                try:
                    os.mkdir(folder)
                    return True
                except FileExistsError:
                    return False
            except FileExistsError:
                return False

    def open_writer(self) -> ResultsWriter:
        """Lock the repetition for this process; raise RepetitionBusy if another holds it. Folder layout: under the
        lock, remove the temporary files a kill left behind: only the lock holder writes status.json, so no live
        writer's temporary file can be among them."""
        if self.in_folder:
            writer = ResultsWriter(self.results_file)
            remove_own_temporaries(self.path)
        else:
            try:
                writer = ResultsWriter(self.results_file)
            except StoreError as exc:
                if not isinstance(exc.__cause__, FileNotFoundError):
                    raise
                self.create_folder()  # no log/ yet: the experiment's first repetition
                writer = ResultsWriter(self.results_file)
        self._writer = writer
        return writer


def _append_line(path: str, line: bytes) -> None:
    """Append `line` to `path` with one write, after a newline where the file ends in a torn line (so that the
    record is a line of its own)."""
    with StoreIO("write", path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                line = b"\n" + line
            os.write(fd, line)
        finally:
            os.close(fd)


_token = secrets.token_hex(4)  # names this process's fault log (a fork's child gets its own, below)


def _new_token() -> None:
    global _token
    _token = secrets.token_hex(4)


os.register_at_fork(after_in_child=_new_token)


def _process_token() -> str:
    return _token


class ResultsWriter:
    """Appends rows (and, in the one-file layout, status records) to a locked results file; `keep` cuts it back to
    a prefix of whole rows."""

    def __init__(self, path: str):
        self.path = path
        self.has_status = False  # whether the file holds a status record (read, or appended since)
        with StoreIO("open", path):
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RepetitionBusy(path) from None
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc

    @property
    def open(self) -> bool:
        return self._fd >= 0

    def read(self) -> ResultsPrefix:
        """The rows on disk, read under the lock (the truth a resumed run continues from)."""
        with StoreIO("read", self.path):
            size = os.fstat(self._fd).st_size
            prefix = parse_results(os.pread(self._fd, size, 0) if size else b"")
        self.has_status = prefix.status is not None
        return prefix

    def keep(self, prefix: ResultsPrefix, count: int) -> None:
        """Truncate the file to its first `count` rows (discarding stale or torn rows); a status record that was
        cut off with them is appended again (it stays the repetition's status, as a status.json would)."""
        end = prefix.end_of_row(count)
        with StoreIO("truncate", self.path):
            if os.fstat(self._fd).st_size != end:
                os.ftruncate(self._fd, end)
                if prefix.status_end > end:
                    self._write(prefix.status_line)

    def size(self) -> int:
        with StoreIO("read", self.path):
            return os.fstat(self._fd).st_size

    def append(self, row: Mapping[str, Any]) -> None:
        self._write(encode_row(row))

    def append_status(self, line: bytes) -> None:
        """Append a status record (`rows.encode_status`), after cutting off a torn last line."""
        with StoreIO("write", self.path):
            size = os.fstat(self._fd).st_size
            if size and os.pread(self._fd, 1, size - 1) != b"\n":
                data = os.pread(self._fd, size, 0)
                os.ftruncate(self._fd, data.rfind(b"\n") + 1)
        self._write(line)
        self.has_status = True

    def _write(self, data: bytes) -> None:
        with StoreIO("write", self.path):
            written = os.write(self._fd, data)
            if written != len(data):  # a short write means a full disk: cut the torn row off
                os.ftruncate(self._fd, os.fstat(self._fd).st_size - written)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def close(self, sync: bool = True) -> None:
        """Release the lock; `sync`: the rows become durable at the next group commit."""
        if self._fd < 0:
            return
        os.close(self._fd)  # closing drops the flock
        self._fd = -1
        if sync:
            committer.wrote(self.path)


class ExperimentStore:
    """The folder of one expanded experiment: its stored config and its repetitions (`sweep_path`: see
    RepetitionStore)."""

    def __init__(self, path: str, sweep_path: str | None = None):
        self.path, self.sweep_path = path, sweep_path
        self.config_file = os.path.join(path, CONFIG_FILE)

    def exists(self) -> bool:
        return os.path.isfile(self.config_file)

    def is_ours(self) -> bool:
        """Whether cluster_work wrote this folder's config.yml (its first line is the marker)."""
        try:
            with open(self.config_file, "rb") as handle:
                return handle.readline().rstrip(b"\r\n") == MARKER.encode()
        except OSError:
            return False

    def has_original_results(self) -> bool:
        """Whether the original ClusterWork ran this experiment here (it wrote an experiment.yml)."""
        return os.path.isfile(os.path.join(self.path, ORIGINAL_CONFIG_FILE))

    def read_config(self, own: bool = False) -> dict[str, Any] | None:
        """The config cluster_work stored here (the original's experiment.yml is `original_format`'s); `own`:
        only if `is_ours` (else None, as for a file it cannot read), the file read once for both."""
        try:
            with open(self.config_file, "rb") as handle:
                text = handle.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if own:
                return None
            raise StoreError(f"cannot read {self.config_file}: {exc}") from exc
        if own and text.partition(b"\n")[0].rstrip(b"\r") != MARKER.encode():
            return None
        try:
            config = yaml.load(text.decode("utf-8"), Loader=_YAML_LOADER)  # plain YAML: safe_dump wrote it
        except (ValueError, yaml.YAMLError) as exc:
            raise StoreError(f"cannot read {self.config_file}: {exc}") from exc
        return config if isinstance(config, dict) else None

    def write_config(self, config: Mapping[str, Any], sync: bool = True) -> None:
        """Store the effective config, durably at once (`sync`): rows are never saved for an experiment
        whose config a power loss could take away (one sync per experiment, not per repetition)."""
        with StoreIO("create", self.path):
            os.makedirs(self.path, exist_ok=True)
        text = yaml.dump(to_plain(config), Dumper=_YAML_DUMPER, sort_keys=False, default_flow_style=False)
        atomic_write(self.config_file, f"{MARKER}\n{text}".encode(), sync=sync)

    def repetition(self, rep: int) -> RepetitionStore:
        return RepetitionStore(self.path, rep, self.sweep_path)

    def repetition_numbers(self) -> list[int]:
        """Repetitions that have a file (`rep_NN.jsonl`) or a folder on disk, in order."""
        try:
            return repetition_numbers_in(os.listdir(os.path.join(self.path, LOG_FOLDER)))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def deletion_refusal(self) -> str | None:
        """Why `delete` must not run here (checked before anything is written), or None."""
        if os.path.islink(self.path):
            return f"{self.path} is a symbolic link; cluster_work never deletes through one"
        real = os.path.realpath(self.path)
        if real in ("/", os.path.realpath(os.path.expanduser("~")), os.path.realpath(os.getcwd())):
            return f"{self.path} is '/', your home or the working folder"
        return None

    def delete(self) -> list[str]:
        """Remove what cluster_work wrote here: config.yml, every repetition's `log/rep_NN.jsonl` and every
        `log/rep_NN` folder holding its results or status or beside such a file (with what the experiment wrote into
        it), then `log/` and the folder if that empties them (a campaign kind's own files, such as a weighted
        ensemble's, its `forget` deleted before). A folder without cluster_work's marker is left alone, and so is
        anything else in it, symbolic links included; returns what was left (for a warning)."""
        refusal = self.deletion_refusal()
        if refusal:
            raise StoreError(f"refusing to delete: {refusal}")
        if not os.path.isdir(self.path):
            return []
        if not self.is_ours():
            return sorted(os.listdir(self.path))
        log_folder = os.path.join(self.path, LOG_FOLDER)
        with StoreIO("delete", self.path):
            for rep in self.repetition_numbers():
                paths = RepetitionPaths.of(self.path, rep)
                ours = os.path.isfile(paths.file) and not os.path.islink(paths.file)
                if ours:
                    os.remove(paths.file)
                if not os.path.islink(paths.folder) and os.path.isdir(paths.folder) and (ours or any(
                        map(os.path.lexists, (paths.folder_results_file, paths.folder_status_file)))):
                    shutil.rmtree(paths.folder)
            remove_own_temporaries(self.path)
            os.remove(self.config_file)
            for folder in (log_folder, self.path):
                if not os.path.islink(folder) and os.path.isdir(folder) and not os.listdir(folder):
                    os.rmdir(folder)
        left = []
        for folder in (self.path, log_folder):
            if os.path.isdir(folder) and not os.path.islink(folder):
                left += [os.path.join(folder, n) for n in sorted(os.listdir(folder))
                         if os.path.join(folder, n) != log_folder]
        return left


def write_configs(configs: Iterable[tuple[str, Mapping[str, Any]]], sync: bool = True) -> None:
    """Store the config of each experiment folder of `configs` that has none yet, and make them durable
    together (one sync for all instead of one each: a grid of one-repetition points writes a config per
    job). `write_config`'s promise holds: each is durable before any row of its experiment is saved, since
    this returns first. Best effort: what cannot be written, or made durable (then the copy written here is
    removed again), is left to the experiment's first job, which reports why."""
    written: dict[str, int] = {}  # config file -> the inode written here
    for path, config in configs:
        store = ExperimentStore(path)
        if store.exists():
            continue
        try:
            store.write_config(config, sync=False)
            written[store.config_file] = os.stat(store.config_file).st_ino
        except (StoreError, OSError):
            break
    if not written or not sync:
        return
    try:
        sync_now(written)
    except OSError:
        for path, inode in written.items():
            with contextlib.suppress(OSError):
                if os.stat(path).st_ino == inode:  # not another process's copy, written since
                    os.remove(path)


def repetition_numbers_in(names: Iterable[str]) -> list[int]:
    """The repetitions whose files (`rep_NN.jsonl`) or folders (`rep_NN`) are among `names` (of an experiment's log
    folder), in order."""
    found = set()
    for name in names:
        if name.startswith("rep_"):
            number = name[4:-len(REPETITION_FILE_SUFFIX)] if name.endswith(REPETITION_FILE_SUFFIX) else name[4:]
            if number.isdigit():
                found.add(int(number))
    return sorted(found)


def _holds_experiment(path: str) -> bool:
    return os.path.isfile(os.path.join(path, CONFIG_FILE)) or os.path.isfile(os.path.join(path, ORIGINAL_CONFIG_FILE))


def find_experiment_folders(sweep_path: str) -> Iterator[ExperimentStore]:
    """Every experiment folder below `sweep_path`, sorted: `<base>/` and `<base>/<params part>/` that hold a
    config.yml (cluster_work's) or an experiment.yml (the original's)."""
    for base in _subfolders(sweep_path):
        if _holds_experiment(base):
            yield ExperimentStore(base)
        for folder in _subfolders(base):
            if os.path.basename(folder) != LOG_FOLDER and _holds_experiment(folder):
                yield ExperimentStore(folder)


def _subfolders(path: str) -> list[str]:
    try:
        return [entry.path for entry in sorted(os.scandir(path), key=lambda e: e.name) if entry.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def read_frozen_points(base_folder: str, custom: Mapping[str, Any]) -> list[dict[tuple[str, ...], Any]] | None:
    """The points a custom strategy gave when its sweep first ran, if they were made by this `custom` block."""
    frozen = read_json(os.path.join(base_folder, FROZEN_POINTS_FILE))
    if not frozen or frozen.get("custom") != to_plain(custom):
        return None
    return [{tuple(path): value for path, value in point} for point in frozen["points"]]


def write_frozen_points(base_folder: str, custom: Mapping[str, Any], points: list[dict[tuple[str, ...], Any]]) -> None:
    """Freeze a custom strategy's points (atomically), so that no later run calls the function again."""
    with StoreIO("create", base_folder):
        os.makedirs(base_folder, exist_ok=True)
    record = {"custom": to_plain(custom), "points": [[[list(path), value] for path, value in point.items()]
                                                      for point in points]}
    atomic_write(os.path.join(base_folder, FROZEN_POINTS_FILE), json.dumps(to_plain(record)).encode())

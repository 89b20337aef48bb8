"""The on-disk format of a sweep in the default layout (the compact store's is `compact_store`'s); whole-file
writes and locks are `files`' primitives, the names `paths`'.

    <path>/<base name>/<params part>/config.yml     effective config (its first line marks the folder as ours)
    <path>/<base name>/<params part>/log/rep_00/results.jsonl  one JSON object per iteration, appended
    <path>/<base name>/<params part>/log/rep_00/status.json    how the repetition ended, when not finished
    <path>/<base name>/<params part>/log/rep_00/rep.log        what the repetition logged and printed

(an experiment without grid or list lives in `<path>/<base name>/`), the original ClusterWork's layout.
Durability: a row is appended with one `write` of a whole line, so a `kill -9` leaves at worst a torn
last line, which readers ignore and the next writer cuts off. A repetition that runs to its end has no
status.json (its rows say it is finished): one that ended otherwise (failed, interrupted, stopped, a
segment reached) gets one, which is kept current from then on. Whole files (config, status) are
written to a temporary file and renamed over the old one, so they are always complete. What reaches
the disk when is `durability`'s group commit (once a second, and at the end of a run).
The results file is locked (`flock`) by its writer, so two runs never write one repetition.
Deleting (`-d`) removes only what cluster_work wrote, and never follows a symbolic link.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import socket
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from .config_refresh import refreshed, stale_keys
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
    RESULTS_FILE,
    STATUS_FILE,
    RepetitionPaths,
    iteration_folder_name,
    repetition_folder_name,
)
from .rows import ResultsPrefix, encode_row, parse_results, to_plain  # noqa: F401 (re-exported)
from .vocabulary import Record

# The first line of every config.yml cluster_work writes: what tells its folders from a user's.
MARKER = "# written by cluster_work: the effective config of this experiment."
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where installed: 7x faster
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the same text as safe_dump's, 4x faster (a config a job)


class RepetitionBusy(Exception):
    """Another live process holds this repetition's lock."""


class RepetitionStore:
    """The files of one repetition: results rows, status, log and the user's own files."""

    def __init__(self, experiment_path: str, rep: int):
        self.rep = rep
        paths = RepetitionPaths.of(experiment_path, rep)
        self.path, self.results_file = paths.folder, paths.results_file
        self.status_file, self.log_file = paths.status_file, paths.log_file
        self.fault_log = self.log_file  # where a native crash leaves its Python stack (logs.fault_stacks_to)

    def read_results(self) -> ResultsPrefix:
        return parse_results(self.read_complete_lines())

    def read_complete_lines(self) -> bytes:
        """The results file up to its last newline (a torn last row left out), unparsed."""
        try:
            with open(self.results_file, "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            return b""
        return data[:data.rfind(b"\n") + 1]

    def read_status(self) -> dict[str, Any]:
        return read_json(self.status_file) or {}

    def results_size(self) -> int | None:
        """The results file's size (None: there is none), which a finished status's `results_bytes` is checked on."""
        try:
            return os.stat(self.results_file).st_size
        except OSError:
            return None

    def has_status(self) -> bool:
        """Whether a status file exists (only a repetition that once ended unfinished has one)."""
        return os.path.lexists(self.status_file)

    def is_running(self) -> bool:
        """Whether a live process holds this repetition's lock (it dies with its holder)."""
        return is_locked(self.results_file)

    def write_status(self, state: Record, sync: bool = True, **fields: Any) -> None:
        """Replace the status (a hint: the rows decide the state); synced by the next group commit."""
        status = {"state": state.value, "host": socket.gethostname(), "pid": os.getpid(),
                  "updated": time.time(), **fields}
        # one line of plain fields, by json's C encoder (an indent would take its slow Python one)
        atomic_write(self.status_file, json.dumps(status, default=to_plain).encode(), sync=False)
        if sync:
            committer.wrote(self.status_file)

    def create_folder(self) -> bool:
        """Create the repetition's folder (and `log/`) if missing; whether it was created just now."""
        with StoreIO("create", self.path):
            try:
                os.mkdir(self.path)
                return True
            except FileNotFoundError:  # no log/ yet: the experiment's first repetition
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
                try:
                    os.mkdir(self.path)
                    return True
                except FileExistsError:
                    return False
            except FileExistsError:
                return False

    def open_writer(self) -> ResultsWriter:
        """Lock the repetition for this process; raise RepetitionBusy if another holds it. Under the lock,
        remove the temporary files a kill left behind (none in a folder created just now): only the lock
        holder writes status.json, so no live writer's temporary file can be among them."""
        new = self.create_folder()
        writer = ResultsWriter(self.results_file)
        if not new:
            remove_own_temporaries(self.path)
        return writer


class ResultsWriter:
    """Appends rows to a locked results file; `keep` cuts it back to a prefix of whole rows."""

    def __init__(self, path: str):
        self.path = path
        with StoreIO("open", path):
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise RepetitionBusy(path) from None
            raise StoreError(f"cannot lock {path}: {exc.strerror}") from exc

    def read(self) -> ResultsPrefix:
        """The rows on disk, read under the lock (the truth a resumed run continues from)."""
        with StoreIO("read", self.path):
            size = os.fstat(self._fd).st_size
            return parse_results(os.pread(self._fd, size, 0) if size else b"")

    def keep(self, prefix: ResultsPrefix, count: int) -> None:
        """Truncate the file to its first `count` rows (discarding stale or torn rows)."""
        end = prefix.end_of_row(count)
        with StoreIO("truncate", self.path):
            if os.fstat(self._fd).st_size != end:
                os.ftruncate(self._fd, end)

    def size(self) -> int:
        with StoreIO("read", self.path):
            return os.fstat(self._fd).st_size

    def append(self, row: Mapping[str, Any]) -> None:
        data = encode_row(row)
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
    """The folder of one expanded experiment: its stored config and its repetitions."""

    def __init__(self, path: str):
        self.path = path
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

    def refresh_config(self, config: Mapping[str, Any], sync: bool = True) -> bool:
        """Bring the stored config's result-neutral keys (`config_refresh.REFRESHED`: the counts...) to `config`'s,
        keeping every other key as stored; whether it was rewritten. Written as `write_config` writes (whole or
        not at all, durably at once), and only where they differ: a config that is current is read, not written.
        A config.yml that is not cluster_work's, or none (the original's experiment.yml), is left alone."""
        stored = self.read_config(own=True)
        if stored is None or not stale_keys(stored, config):
            return False
        self.write_config(refreshed(stored, config), sync=sync)
        return True

    def repetition(self, rep: int) -> RepetitionStore:
        return RepetitionStore(self.path, rep)

    def repetition_numbers(self) -> list[int]:
        """Repetitions that have a folder on disk, in order."""
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
        """Remove what cluster_work wrote here: config.yml and every `log/rep_NN` folder holding its results
        or status (with what the experiment wrote into it), then `log/` and the folder if that empties them
        (a campaign kind's own files, such as a weighted ensemble's, its `forget` deleted before).
        A folder without cluster_work's marker is left alone, and so is anything else in it, symbolic links
        included; returns what was left (for a warning)."""
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
                store = self.repetition(rep)
                if not os.path.islink(store.path) and os.path.isdir(store.path) and (
                        os.path.lexists(store.results_file) or os.path.lexists(store.status_file)):
                    shutil.rmtree(store.path)
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


def refresh_configs(configs: Iterable[tuple[str, Mapping[str, Any]]], sync: bool = True) -> None:
    """`ExperimentStore.refresh_config` for each experiment folder of `configs`, made durable together (one sync
    for all, as `write_configs` does for new ones): an MPI leader's batch of jobs of continued experiments whose
    counts changed. Their jobs then find them current and write nothing. Best effort: a config that cannot be
    read or written is left to its job, which reports why; a failing sync raises (a disk that cannot make these
    durable cannot make the jobs' rows durable either)."""
    rewritten = []
    for path, config in configs:
        store = ExperimentStore(path)
        try:
            if store.refresh_config(config, sync=False):
                rewritten.append(store.config_file)
        except (StoreError, OSError):
            break
    if rewritten and sync:
        sync_now(rewritten)


def repetition_numbers_in(names: Iterable[str]) -> list[int]:
    """The repetitions whose folders (`rep_NN`) are among `names` (of an experiment's log folder), in order."""
    return sorted(int(name[4:]) for name in names if name.startswith("rep_") and name[4:].isdigit())


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

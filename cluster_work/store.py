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
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import yaml

from .config_refresh import refreshed, stale_keys
from .durability import sync_now
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
    CONFIG_TEMPORARY_PREFIX,
    FROZEN_POINTS_FILE,
    LOG_FILE,
    LOG_FOLDER,
    ORIGINAL_CONFIG_FILE,
    REPETITION_FILE_SUFFIX,
    RESULTS_FILE,
    STATUS_FILE,
    RepetitionPaths,
    iteration_folder_name,
    repetition_folder_name,
)
from .repetition_store import (  # noqa: F401 (re-exported: the store's classes of one repetition)
    RepetitionBusy,
    RepetitionStore,
    ResultsWriter,
)
from .rows import ResultsPrefix, encode_row, parse_results, to_plain  # noqa: F401 (re-exported)

# The first line of every config.yml cluster_work writes: what tells its folders from a user's.
MARKER = "# written by cluster_work: the effective config of this experiment."
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where installed: 7x faster
_YAML_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the same text as safe_dump's, 4x faster (a config a job)


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
        whose config a power loss could take away (one sync per experiment, not per repetition). Its temporary is
        named by its writer (`CONFIG_TEMPORARY_PREFIX`): what a writer killed here left, this folder's next write of
        it removes once that writer is dead (a folder created here has none: not listed, the per-job cost)."""
        with StoreIO("create", self.path):
            created = False
            try:
                os.mkdir(self.path)
                created = True
            except FileExistsError:
                pass
            except FileNotFoundError:  # its parents too (then listed: rare)
                os.makedirs(self.path, exist_ok=True)
        text = yaml.dump(to_plain(config), Dumper=_YAML_DUMPER, sort_keys=False, default_flow_style=False)
        atomic_write(self.config_file, f"{MARKER}\n{text}".encode(), sync=sync, writer_prefix=CONFIG_TEMPORARY_PREFIX,
                     remove_dead=not created)

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

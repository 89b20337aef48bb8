"""The compact store (`store: compact` in a document): no folder or file per point or repetition, for sweeps
of 10^5 points and more (HPC sites cap inodes per user; every create is a metadata round trip on Lustre).

    <path>/<base>/.cluster_work_compact/locks                    never written: a byte-range lock per repetition
    <path>/<base>/.cluster_work_compact/seg-<host>-<pid>-<token>.jsonl   one per writing process, append-only
    <path>/<base>/.cluster_work_compact/index.json               a cache of what they say (compact_index)

A segment holds events, one JSON line each, of the repetitions its process wrote:
    {"c": [name, rep], "t": time, "params": {...}, "base": base name, "at": params part}   a claim: the lock taken
      (`at`: the experiment's folder below the document's, '' for the document's own, as the default layout's)
    {"k": [name, rep], "n": count}                      keep the repetition's first `count` rows (a resume, -r/-i)
    {"w": [name, rep], "row": {...}}                    a row (iteration `row["iteration"]`)
    {"s": [name, rep], "t": time, "status": {...}}      a status (as status.json's), the latest `t` wins; that of
      a repetition without a claim (a steered campaign stopped it before it ran) has a claim's params, base, at
    {"d": name, "t": time}                              -d: everything of experiment `name` before `t` is gone
A repetition's rows are its claims' events in the order of their claims' times, each claim's rows following
the rows it kept; a row that does not continue them is ignored, as a stray row of a results file is.

The guarantees of the default layout hold: a row is one `write` of a whole line into the process's own
segment (kill -9 leaves at most a torn last line, which readers drop: no process appends to another's
segment, and a new process starts a new one); segments are synced by the group commit; a repetition is
locked with a POSIX byte-range lock on byte hash(name, rep) of `locks` (one file for all repetitions, dropped
by the kernel when its holder dies): two runs never write one repetition, and a held lock is RUNNING.
POSIX locks belong to the process and are all dropped when it closes any descriptor of the file, so each
process opens `locks` once and asks through that descriptor only (compact_process). -d appends a drop event and
removes the document's config (compact_config): nothing else is deleted, and nothing a user wrote is touched.
The experiment's own files (`_log_path_rep`, rep.log) go where the default layout puts them, in folders made
only when something is written there.
"""
from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .compact_catalog import Catalog, SavedRepetition, catalog, claimed
from .compact_config import forget_document_config, point_config, refresh_document_config, write_document_config
from .compact_process import StoreProcess, lock_byte, process_of
from .compact_process import any_held as any_held  # (compact_store's names before compact_process was apart)
from .compact_process import is_held as is_held
from .durability import committer
from .expansion.experiment import expand_path
from .files import StoreIO
from .paths import RepetitionPaths, compact_root
from .rows import ResultsPrefix, to_plain
from .store import ExperimentStore, RepetitionStore, ResultsWriter
from .vocabulary import Record

if TYPE_CHECKING:
    from .expansion import ExpandedExperiment

SUGGESTED_FROM = 100_000  # points from which a sweep's run suggests `store: compact`


def is_compact(config: Mapping[str, Any]) -> bool:
    return config.get("store") == "compact"


def _after(latest: float) -> float:
    """The time of a new claim or status: now, or just after the latest one known where a clock (another
    host's) is behind, so that the order of a repetition's claims is the order they were made in."""
    return max(time.time(), latest + 1e-6)


class CompactRepetition:
    """One repetition of a compact store, with RepetitionStore's methods."""

    def __init__(self, root: str, name: str, experiment_path: str, rep: int, params: Any = None, base: str = ""):
        self.root, self.name, self.rep, self.params, self.base = root, name, rep, params, base
        document = os.path.dirname(root)
        self.at = "" if experiment_path == document or os.path.normpath(experiment_path) == os.path.normpath(
            document) else os.path.basename(os.path.normpath(experiment_path))
        paths = RepetitionPaths.of(experiment_path, rep)  # the experiment's own files only, made when written
        self.path, self.log_file = paths.folder, paths.log_file
        self.byte = lock_byte(name, rep)
        self.held = False  # by this process's writer

    @property
    def fault_log(self) -> str:
        """Where a native crash of this process leaves its Python stack while it runs the repetition: its fault
        log in the store (one per process, opened once: not a rep.log per repetition; see logs.held_fault_log)."""
        return process_of(self.root).fault_log

    def _state(self) -> SavedRepetition:
        if self.held:  # under its lock no other process adds to it, and this one's events are taken in as written
            return catalog(self.root, refresh=False).repetition(self.name, self.rep)
        return catalog(self.root).repetition(self.name, self.rep)

    def refresh(self) -> None:
        """Take in every process's writes so far (reads are otherwise up to REFRESH_SECONDS old): for a
        writer that must follow another process's rows and status (a campaign marking a repetition stopped)."""
        catalog(self.root, force=True)

    def read_results(self) -> ResultsPrefix:
        return ResultsPrefix(self._state().rows())

    def read_complete_lines(self) -> bytes:
        """The rows as a results file would hold them (one JSON line each)."""
        lines = self._state().row_lines()
        return b"\n".join(lines) + b"\n" if lines else b""

    def read_status(self) -> dict[str, Any]:
        status = self._state().status
        return dict(status[1]) if status is not None else {}

    def has_status(self) -> bool:
        return self._state().status is not None

    def results_size(self) -> int | None:
        return None  # a status's rows are in the same append-only segment, before it

    def is_running(self) -> bool:
        return process_of(self.root).is_locked(self.byte)

    def write_status(self, state: Record, sync: bool = True, **fields: Any) -> None:
        status = {"state": state.value, "host": socket.gethostname(), "pid": os.getpid(), "updated": time.time(),
                  **fields}
        process, known = process_of(self.root), self._state()
        latest = known.status[0] if known.status is not None else 0.0
        event = {"s": [self.name, self.rep], "t": _after(latest), "status": to_plain(status)}
        if not known.claims:  # never run (a campaign stopped it first): what a claim would say of it, here
            event.update(params=to_plain(self.params), base=self.base, at=self.at)
        process.append(event)
        if sync:
            committer.wrote(process.segment)

    def open_writer(self) -> CompactWriter:
        process = process_of(self.root)
        process.lock(self.byte)
        try:
            known = claimed(self.root, self.name, self.rep)  # under the lock: no other process adds to it now
            rows = known.rows()
            latest = max((claim.time for claim in known.claims), default=0.0)
            process.append({"c": [self.name, self.rep], "t": _after(latest), "params": to_plain(self.params),
                            "base": self.base, "at": self.at})
        except BaseException:
            process.unlock(self.byte)
            raise
        self.held = True
        return CompactWriter(process, self, rows)


class CompactWriter:
    """ResultsWriter's methods on a locked repetition of a compact store."""

    def __init__(self, process: StoreProcess, repetition: CompactRepetition, rows: list[dict[str, Any]]):
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
        self.repetition.held = False
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

    def read_config(self, own: bool = False) -> dict[str, Any] | None:
        """The experiment's config as its config.yml would hold it: the store's document config with its
        parameters (as its claims gave them; see compact_config). Everything in a compact store is
        cluster_work's, so `own` changes nothing."""
        reps = self._catalog().repetition_numbers(self.name)
        if not reps:
            return None
        params = [self._catalog().repetition(self.name, rep).params for rep in reps]
        return point_config(self.root, self.name, next((p for p in params if p is not None), {}), self.path)

    def write_config(self, config: Mapping[str, Any], sync: bool = True) -> None:
        """The part of `config` its document's points share, once per process (each claim carries the
        experiment's parameters)."""
        with StoreIO("write", self.root):
            write_document_config(self.root, config, sync)

    def refresh_config(self, config: Mapping[str, Any], sync: bool = True) -> bool:
        """The document config's counts brought to `config`'s (a run's launcher does it: compact_config)."""
        with StoreIO("write", self.root):
            return refresh_document_config(self.root, config, sync)

    def repetition(self, rep: int) -> CompactRepetition:
        return CompactRepetition(self.root, self.name, self.path, rep, self.params, self.base)

    def repetition_numbers(self) -> list[int]:
        return self._catalog().repetition_numbers(self.name)

    def deletion_refusal(self) -> str | None:
        return None

    def delete(self) -> list[str]:
        """Forget the experiment's rows and statuses (a drop event) and the document's config (the next job writes
        the current one); its own files are the default layout's."""
        if not self.exists():
            return []
        process = process_of(self.root)
        process.append({"d": self.name, "t": time.time()})
        committer.wrote(process.segment)
        forget_document_config(self.root)
        catalog(self.root, force=True)
        if not os.path.isdir(self.path):
            return []
        # a document without grid or list has its one point in its own folder, beside the store: not the user's
        store = os.path.basename(self.root) if os.path.samefile(os.path.dirname(self.root), self.path) else None
        return sorted(name for name in os.listdir(self.path) if name != store)


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


def compact_experiments(document_folder: str) -> list[CompactExperimentStore]:
    """The experiments a compact store in `document_folder` holds rows or statuses of, each with its folder as
    the default layout would have it (the document's own, or `<document>/<params part>`), in order of name."""
    root = compact_root(document_folder)
    if not os.path.isdir(root):
        return []
    known = catalog(root, force=True)
    at_of = {name: at for at, name in known.names_at.items()}
    return [CompactExperimentStore(root, name, os.path.join(document_folder, at_of[name]) if at_of.get(name)
                                   else document_folder) for name in known.experiments()]


AnyRepetition = RepetitionStore | CompactRepetition  # a repetition of either layout, as the runner uses it
AnyWriter = ResultsWriter | CompactWriter


def store_of(experiment: ExpandedExperiment) -> ExperimentStore | CompactExperimentStore:
    """The store of an expanded experiment (its config is built only where the store is compact)."""
    return experiment_store(experiment.path, experiment.config if experiment.store == "compact" else None)


def experiment_store(path: str, config: Mapping[str, Any] | None = None) -> ExperimentStore | CompactExperimentStore:
    """The store of the experiment in folder `path` with this `config`: the compact one where its document
    asks for it (`store: compact`), else the default layout's ExperimentStore."""
    if config is None or not is_compact(config):  # (its config's sweep folder: where its run's fault log goes)
        return ExperimentStore(path, expand_path(config["_config_path"]) if config and "_config_path" in config
                               else None)
    return CompactExperimentStore(compact_root(config["_experiment_path"]), config["name"], path,
                                  config.get("params"), config.get("experiment_name", config["name"]))

"""Every path cluster_work reads or writes, named in one place (like submitit's JobPaths).

    <path>/                                   the sweep folder (a document's `path`)
    <path>/runs.jsonl                         one line per run start and end (provenance)
    <path>/.cluster_work_attempts/            which repetitions each process of each run began and closed:
        <run>.<host>.<pid>                    one append-only file per process and run (see attempts)
        summary.jsonl, .lock                  what a compaction kept of the files of finished runs
    <path>/cluster_work_{mpi,array}.sbatch    batch scripts (--slurm)
    <path>/slurm-<job>.out, hostfile.<job>    what those scripts write
    <path>/plots/                             --plot's figures
    <path>/.cluster_work_export/              the trackers' exporters' own files: a cursor journal per tracker
                                              destination (`<kind>-<destination>.jsonl`, its lock beside it)
                                              and the log of an exporter started beside a run (`<kind>.log`)
    <path>/tensorboard/<base>/<params>/rep_NN/    the TensorBoard exporter's event files (default log dir)
    <path>/wandb/offline-run-*/               the W&B exporter's offline runs (W&B names them)
    <path>/<base>/                            a document's folder (`.cluster_work_points.json`: a custom
                                              strategy's frozen points; `.cluster_work_campaign.jsonl`: a
                                              steered campaign's journal; `.cluster_work_compact/`: the
                                              segments of a compact store, `store: compact`, its
                                              index.json, a cache of them, and its writers' fault logs;
                                              `.cluster_work_index.json`: the default layout's cache of its
                                              experiment folders, folder_index)
    <path>/<base>/<params>/                   an expanded experiment (the document's folder itself when
                                              nothing varies), as the original ClusterWork lays it out
        config.yml                            its effective config (first line: cluster_work's marker)
        experiment.yml, results.csv           what the original ClusterWork wrote there, if it ran it
        log/rep_00.jsonl                      one repetition's rows, with its status records folded in (store)
        log/rep_00/                           made only when used: the experiment's own files (`_log_path_rep`,
                                              it_0000/) and rep.log, what the repetition logged and printed
        log/rep_00/results.jsonl, status.json a repetition an earlier version began: its rows and status, kept
                                              in that layout for as long as it exists (RepetitionPaths)
    <path>/.cluster_work_attempts/fault-<host>-<pid>-<token>.log   the default layout's per-process fault log:
                                              the Python stack of a native crash (faulthandler), named by the
                                              process's attempts (a compact store keeps its own, in the store)

Modules build paths with these functions and constants only; the store decides what is written to them.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

CONFIG_FILE = "config.yml"
ORIGINAL_CONFIG_FILE = "experiment.yml"  # what the original ClusterWork writes into an experiment folder
FROZEN_POINTS_FILE = ".cluster_work_points.json"
CAMPAIGN_JOURNAL_FILE = ".cluster_work_campaign.jsonl"
LOG_FOLDER = "log"
REPETITION_FILE_SUFFIX = ".jsonl"  # log/rep_NN.jsonl: a repetition's rows and status records (the default layout)
RESULTS_FILE = "results.jsonl"  # log/rep_NN/results.jsonl: the rows of a repetition an earlier version began
STATUS_FILE = "status.json"  # log/rep_NN/status.json: its status
LOG_FILE = "rep.log"
RUNS_FILE = "runs.jsonl"
ATTEMPTS_FOLDER = ".cluster_work_attempts"
ATTEMPTS_SUMMARY = "summary.jsonl"
PLOTS_FOLDER = "plots"
COMPACT_FOLDER = ".cluster_work_compact"  # a compact store's segments, in the document's folder (compact_store)
LOCKS_FILE = "locks"  # in COMPACT_FOLDER: a byte-range lock per repetition
SEGMENT_PREFIX = "seg-"  # in COMPACT_FOLDER: seg-<host>-<pid>-<token>.jsonl, one per writing process
FAULT_LOG_PREFIX = "fault-"  # fault-<host>-<pid>-<token>.log, a process's native crash: in COMPACT_FOLDER (a
# compact store's writers) or ATTEMPTS_FOLDER (the default layout's)
INDEX_FILE = "index.json"  # in COMPACT_FOLDER: a cache of what the segments say per repetition (compact_index)
DOCUMENT_CONFIG_FILE = "document.json"  # in COMPACT_FOLDER: the config its points share (compact_config)
INDEX_TEMPORARY_PREFIX = ".index-"  # in COMPACT_FOLDER: an index being written, renamed to INDEX_FILE when whole
DOCUMENT_CONFIG_TEMPORARY_PREFIX = ".document-"  # in COMPACT_FOLDER: DOCUMENT_CONFIG_FILE being written, the same
SEALED_PREFIX = "cols-"  # in COMPACT_FOLDER: cols-<host>-<pid>-<token>.arrow, a segment in columns (compact_sealed)
SEALED_TEMPORARY_PREFIX = ".cols-"  # in COMPACT_FOLDER: a sealed segment being written, renamed when whole
CONFIG_TEMPORARY_PREFIX = f".{CONFIG_FILE}-"  # in an experiment's folder: CONFIG_FILE being written, renamed when whole
FOLDER_INDEX_FILE = ".cluster_work_index.json"  # in a document's folder: what planning read of its experiments
FOLDER_INDEX_TEMPORARY_PREFIX = ".cluster_work_index-"  # the same being written, renamed when whole
EXPORT_FOLDER = ".cluster_work_export"
TENSORBOARD_FOLDER = "tensorboard"


def repetition_folder_name(rep: int) -> str:
    return f"rep_{rep:02d}"


def repetition_file_name(rep: int) -> str:
    """`rep_NN.jsonl`: a repetition's one file in its experiment's log folder (beside the original's `rep_N.csv`)."""
    return f"rep_{rep:02d}{REPETITION_FILE_SUFFIX}"


def iteration_folder_name(iteration: int) -> str:
    return f"it_{iteration:04d}"


def attempts_run(file_name: str) -> str | None:
    """The run id in the name of a journal file `<run>.<host>.<pid>`; None for any other name."""
    run, dot, rest = file_name.partition(".")
    return run if dot and rest and run.isalnum() and rest.rpartition(".")[2].isdigit() else None


def experiment_folder(base_folder: str, params_part: str) -> str:
    """An expanded experiment's folder: `<base>/<params>`, or the document's folder when nothing varies."""
    return os.path.join(base_folder, params_part) if params_part else base_folder


def compact_root(document_folder: str) -> str:
    """A compact store's folder, in its document's folder."""
    return os.path.join(document_folder, COMPACT_FOLDER)


def folder_index_file(document_folder: str) -> str:
    """The default layout's cache of a document's experiment folders (folder_index)."""
    return os.path.join(document_folder, FOLDER_INDEX_FILE)


def folder_index_temporary(document_folder: str, host: str, pid: int, token: str) -> str:
    return os.path.join(document_folder, f"{FOLDER_INDEX_TEMPORARY_PREFIX}{host}-{pid}-{token}.tmp")


def segment_name(host: str, pid: int, token: str) -> str:
    return f"{SEGMENT_PREFIX}{host}-{pid}-{token}.jsonl"


def sealed_path(segment_path: str) -> str:
    """Where a segment's lines are kept in columns (compact_sealed): beside it, named as it is."""
    folder, name = os.path.split(segment_path)
    return os.path.join(folder, SEALED_PREFIX + name[len(SEGMENT_PREFIX):].removesuffix(".jsonl") + ".arrow")


def fault_log_name(host: str, pid: int, token: str) -> str:
    """The Python stack of a native crash of a process (faulthandler's; a compact store's writer names its segment
    with the same token), if it has one; an empty one is removed when its process exits (logs.held_fault_log)."""
    return f"{FAULT_LOG_PREFIX}{host}-{pid}-{token}.log"


def log_folder(experiment_path: str) -> str:
    return os.path.join(experiment_path, LOG_FOLDER)


@dataclass(frozen=True)
class RepetitionPaths:
    """The files of one repetition: `<experiment>/log/rep_NN.jsonl` (`file`) and its folder `log/rep_NN/`, made
    only when the experiment or its log uses it; a repetition an earlier version began keeps its rows and status
    in that folder (`folder_results_file`, `folder_status_file`). Which of the two a repetition uses is the
    store's decision (store.RepetitionStore), the only one that looks."""

    folder: str
    file: str

    @classmethod
    def of(cls, experiment_path: str, rep: int) -> RepetitionPaths:
        logs = log_folder(experiment_path)
        return cls(os.path.join(logs, repetition_folder_name(rep)), os.path.join(logs, repetition_file_name(rep)))

    @property
    def folder_results_file(self) -> str:
        return os.path.join(self.folder, RESULTS_FILE)

    @property
    def folder_status_file(self) -> str:
        return os.path.join(self.folder, STATUS_FILE)

    @property
    def files(self) -> tuple[str, str, str]:
        """Every file that can hold the repetition's rows or status, in either layout (what a cache of them stats)."""
        return self.file, self.folder_results_file, self.folder_status_file

    @property
    def log_file(self) -> str:
        return os.path.join(self.folder, LOG_FILE)


@dataclass(frozen=True)
class SweepPaths:
    """The files of a sweep folder itself."""

    root: str

    @property
    def runs_file(self) -> str:
        return os.path.join(self.root, RUNS_FILE)

    def batch_script(self, kind: str) -> str:
        return os.path.join(self.root, f"cluster_work_{kind}.sbatch")

    def slurm_output(self, array: bool) -> str:
        return os.path.join(self.root, "slurm-%A_%a.out" if array else "slurm-%j.out")

    @property
    def hostfile(self) -> str:
        return os.path.join(self.root, "hostfile.$SLURM_JOB_ID")

    @property
    def attempts_folder(self) -> str:
        return os.path.join(self.root, ATTEMPTS_FOLDER)

    def attempts_file(self, run: str, host: str, pid: int) -> str:
        """The journal of process `pid` on `host` in run `run` (the run id comes first: see `attempts_run`)."""
        return os.path.join(self.attempts_folder, f"{run}.{host}.{pid}")

    def fault_log(self, host: str, pid: int, token: str) -> str:
        """The default layout's fault log of process `pid` on `host` (`fault_log_name`), beside its journals."""
        return os.path.join(self.attempts_folder, fault_log_name(host, pid, token))

    @property
    def attempts_summary(self) -> str:
        return os.path.join(self.attempts_folder, ATTEMPTS_SUMMARY)

    @property
    def attempts_lock(self) -> str:
        return os.path.join(self.attempts_folder, ".lock")

    @property
    def plots_folder(self) -> str:
        return os.path.join(self.root, PLOTS_FOLDER)

    def document_folder(self, base: str) -> str:
        return os.path.join(self.root, base)

    @property
    def export_folder(self) -> str:
        return os.path.join(self.root, EXPORT_FOLDER)

    def export_journal(self, kind: str, destination: str) -> str:
        """The cursor journal of one tracker destination (`destination`: a short digest of where it exports)."""
        return os.path.join(self.export_folder, f"{kind}-{destination}.jsonl")

    def export_log(self, kind: str) -> str:
        return os.path.join(self.export_folder, f"{kind}.log")

    @property
    def tensorboard_folder(self) -> str:
        return os.path.join(self.root, TENSORBOARD_FOLDER)


def export_key(experiment_folder: str, sweep_folder: str, rep: int) -> str:
    """A repetition's name in the exporters' journals and trackers: `<base>/<params>/rep_NN`, relative to its
    sweep folder (so a moved sweep folder keeps its names)."""
    relative = os.path.relpath(experiment_folder, sweep_folder).replace(os.sep, "/")
    return f"{relative}/{repetition_folder_name(rep)}"

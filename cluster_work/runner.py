"""Running one repetition: reset or restore, iterate, save state, append rows. Every backend runs this.

Order per iteration: `iterate` -> `save_state` -> append the row. A row on disk therefore always has
a saved state behind it, and a resumed repetition continues from exactly the rows it keeps.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import os
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import progress
from .errors import InvalidParameterArgument, StoreError
from .expansion import ExpandedExperiment
from .experiment import ClusterWork
from .logs import repetition_log
from .seeding import seed_for, seed_global_generators
from .stopping import stop_requested
from .store import (
    FAILED,
    FINISHED,
    INTERRUPTED,
    ExperimentStore,
    RepetitionBusy,
    RepetitionStore,
    ResultsWriter,
    repetition_folder_name,
)

log = logging.getLogger("cluster_work")

# An OSError with one of these, even from the experiment's own files, means the disk cannot take more.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})

# Outcome kinds, as the scheduler and the summary see them.
DONE, ALREADY_DONE, FAILED_JOB, STOPPED, BUSY, BAD_PARAMETER, STORE_FAILURE = (
    "finished", "already finished", "failed", "interrupted", "held by another run",
    "bad parameter", "store failure")


@dataclass(frozen=True)
class Job:
    """One repetition of one expanded experiment; `restart_from` keeps only rows before it.

    `write_config`: the experiment's config.yml is missing or outdated, so the job writes it when it
    starts (not the planner: a sweep of 10^5 experiments must not fsync 10^5 configs before its first job).
    """

    index: int
    experiment: ExpandedExperiment
    rep: int
    restart_from: int | None = None
    write_config: bool = False

    @property
    def label(self) -> str:
        return f"{self.experiment.name} rep {self.rep}"


@dataclass
class Outcome:
    """The small status record a worker sends back; results themselves stay on disk."""

    job_index: int
    label: str
    kind: str
    iterations_done: int = 0
    iterations_run: int = 0
    seconds: float = 0.0
    error: str | None = None
    log_file: str | None = None
    host: str = field(default_factory=lambda: os.uname().nodename)


@dataclass(frozen=True)
class RunSettings:
    """Per-run options every worker needs."""

    log_level: str = "INFO"
    no_gui: bool = False
    sync: bool = True
    restart_full_repetitions: bool = False  # --restart_full_repetitions: never restore, start unfinished ones over
    config_file: str | None = None  # the config's absolute path: files it names are relative to its folder


def flatten_result(result: Mapping[str, Any], parent: str = "", sep: str = "_") -> dict[str, Any]:
    """A result row's columns, as the original's `flatten_dict`: nested dicts give `a_b`, and a list
    gives one column per item, `key_0`, `key_1`, ..."""
    flat: dict[str, Any] = {}
    for key, value in result.items():
        name = f"{parent}{sep}{key}" if parent else str(key)
        if isinstance(value, Mapping):
            flat.update(flatten_result(value, name, sep))
        elif isinstance(value, list):
            flat.update((f"{name}_{i}", item) for i, item in enumerate(value))
        else:
            flat[name] = value
    return flat


def run_job(experiment_class: type[ClusterWork], job: Job, settings: RunSettings,
            comm: Any = None, write: bool = True) -> Outcome:
    """Run (or resume) one repetition and report how it ended; never raises for the experiment's errors.

    With `write=False` (a non-leading member of an MPI group) the repetition runs in lock-step with its
    group but writes nothing.
    """
    started = time.perf_counter()
    store = ExperimentStore(job.experiment.path).repetition(job.rep)
    writer: ResultsWriter | None = None
    refusal: tuple[str, str | None] | None = None
    try:
        writer = store.open_writer() if write else None
    except RepetitionBusy:
        refusal = (BUSY, None)
    except StoreError as exc:
        refusal = (STORE_FAILURE, str(exc))
    refusal = _leader_decides(comm, refusal)  # the members must not wait in a collective the leader skips
    if refusal is not None:
        return Outcome(job.index, job.label, refusal[0], error=refusal[1], seconds=time.perf_counter() - started)
    try:
        with _maybe_log(store, settings, write):
            kind, done, ran, error = _run_locked(experiment_class, job, settings, store, writer, comm)
        if writer is not None:
            writer.close(sync=settings.sync)
    except StoreError as exc:
        return Outcome(job.index, job.label, STORE_FAILURE, error=str(exc),
                       seconds=time.perf_counter() - started)
    finally:
        if writer is not None:
            writer.close(sync=False)  # a no-op unless an error skipped the close above
    return Outcome(job.index, job.label, kind, done, ran, time.perf_counter() - started, error,
                   store.log_file if error else None)


def _maybe_log(store: RepetitionStore, settings: RunSettings, write: bool) -> Any:
    return repetition_log(store.log_file, settings.log_level) if write else contextlib.nullcontext()


def _bind(instance: ClusterWork, job: Job, store: RepetitionStore, settings: RunSettings, comm: Any) -> None:
    """Set the fields the original ClusterWork set before `reset`, with its values (folders end in a
    separator, as the original's did, since clients append file names to them)."""
    config = job.experiment.config
    instance._name = job.experiment.name
    instance._params = config["params"]
    instance._path = config["path"]
    instance._log_path = config["log_path"]
    instance._log_path_rep = os.path.join(config["log_path"], repetition_folder_name(job.rep), "")
    instance._rep = job.rep
    instance._repetitions = config["repetitions"]
    instance._iterations = config["iterations"]
    instance._plotting = config.get("plotting", True)
    instance._no_gui = settings.no_gui or instance._NO_GUI or not config.get("gui", True)
    instance._COMM = comm
    instance._config_file = settings.config_file
    for folder in (store.path, instance._log_path_rep):  # the writer made the first; group members may not have
        if not os.path.isdir(folder):
            os.makedirs(folder, exist_ok=True)


def _seed(instance: ClusterWork, iteration: int | None) -> None:
    """The seed of (experiment, rep, iteration); in an MPI group each rank its own, as in the original (which
    added 10^5 x rank), rank 0's being the seed a run without MPI has."""
    comm = instance._COMM
    rank = comm.Get_rank() if comm is not None and comm.Get_size() > 1 else 0
    instance._seed = seed_for(instance._name or "", instance._rep or 0, iteration, rank)
    seed_global_generators(instance._seed)


def _run_locked(experiment_class: type[ClusterWork], job: Job, settings: RunSettings,
                store: RepetitionStore, writer: ResultsWriter | None, comm: Any,
                ) -> tuple[str, int, int, str | None]:
    """Returns (outcome kind, iterations on disk, iterations run now, error line)."""
    config = job.experiment.config
    target = config["iterations"]
    if _leader_decides(comm, stop_requested()):  # a job dequeued after a stop request: leave it untouched
        return STOPPED, 0, 0, None
    if job.write_config and writer is not None:
        ExperimentStore(job.experiment.path).write_config(config)
    prefix = writer.read() if writer is not None else None
    saved = len(prefix) if prefix is not None else 0
    if job.restart_from is not None:
        saved = min(saved, job.restart_from)
    saved = _leader_decides(comm, saved)
    write_status = store.write_status if writer is not None else (lambda *a, **k: None)
    if saved >= target and job.restart_from is None:
        if store.read_status().get("state") != FINISHED:  # killed between last row and status
            write_status(FINISHED, iterations_done=saved, iterations=target)
        return ALREADY_DONE, saved, 0, None
    instance = experiment_class()
    _bind(instance, job, store, settings, comm)
    stage, completed, ran = "reset", saved, 0
    timing = _Timing([])
    try:
        completed = _resume(instance, config, job.rep, saved, comm, settings.restart_full_repetitions)
        if writer is not None and prefix is not None:
            writer.keep(prefix, completed)
        previous_time = prefix.rows[completed - 1].get("repetition_time", 0.0) if completed and prefix else 0.0
        resumed_at = time.perf_counter()
        timing = _Timing(prefix.rows[:completed] if prefix else [])
        for n in range(completed, target):
            if _leader_decides(comm, stop_requested()):
                write_status(INTERRUPTED, iterations_done=n, iterations=target, **timing.fields())
                return STOPPED, n, ran, None
            instance._it = n
            _seed(instance, n)
            stage = "iterate"
            began = time.perf_counter()
            result = instance.iterate(config, job.rep, n)
            ended = time.perf_counter()
            timing.add(ended - began)
            row = {"iteration": n, **flatten_result(result or {})}
            row.setdefault("iteration_time", ended - began)
            row.setdefault("repetition_time", previous_time + ended - resumed_at)
            stage = "save_state"  # always, as the original: clients keep checkpoints there for their own use
            instance.save_state(config, job.rep, n)
            if writer is not None:
                try:
                    writer.append(row)
                except StoreError:  # the group's members wait at the next iteration's decision: release them
                    _leader_decides(comm, True)
                    raise
                progress.iteration_done()
            completed, ran = n + 1, ran + 1
        if writer is not None:
            writer.close(sync=settings.sync)  # durable before it is called finished
        write_status(FINISHED, sync=settings.sync, iterations_done=target, iterations=target, ended=time.time(),
                     **timing.fields())
        return DONE, target, ran, None
    except StoreError:
        raise
    except OSError as exc:
        if exc.errno not in STORAGE_ERRNOS:
            return _failed(exc, stage, job, completed, ran, target, timing, write_status)
        # the experiment's own file hit a full or read-only disk: every other job would too
        raise StoreError(f"{job.label}: the experiment could not write {exc.filename or 'a file'} "
                         f"in {stage}: {exc.strerror}") from exc
    except InvalidParameterArgument as exc:
        write_status(FAILED, iterations_done=completed, iterations=target, error=str(exc))
        return BAD_PARAMETER, completed, ran, f"{job.experiment.name}: {exc}"
    except Exception as exc:  # the experiment's own error: isolate it, keep its saved rows
        if stop_requested():  # raised by the stop itself (a preemption's SIGTERM killed a subprocess): resumable
            log.warning("%s: %s in %s while the run was stopping; recorded as interrupted", job.label,
                        type(exc).__name__, stage)
            write_status(INTERRUPTED, iterations_done=completed, iterations=target, **timing.fields())
            return STOPPED, completed, ran, None
        return _failed(exc, stage, job, completed, ran, target, timing, write_status)
    finally:
        try:
            instance.finalize()
        except Exception:
            log.exception("%s: finalize() raised", job.label)


def _failed(exc: BaseException, stage: str, job: Job, completed: int, ran: int, target: int,
            timing: _Timing, write_status: Any) -> tuple[str, int, int, str]:
    """Record the experiment's exception in the repetition's log and status; the run goes on."""
    text = "".join(traceback.format_exception(exc))
    first_line = f"{type(exc).__name__}: {exc}".splitlines()[0]
    log.error("%s failed in %s:\n%s", job.label, stage, text)
    write_status(FAILED, iterations_done=completed, iterations=target,
                 error=first_line, stage=stage, traceback=text, **timing.fields())
    return FAILED_JOB, completed, ran, f"{first_line} (in {stage})"


def iteration_times(rows: list[dict[str, Any]]) -> list[float]:
    """The measured `iteration_time` of each saved row (an experiment may have replaced it)."""
    return [r["iteration_time"] for r in rows if isinstance(r.get("iteration_time"), (int, float))]


class _Timing:
    """The mean iteration time of a repetition (saved rows and this run), kept in its status for
    progress estimates and longest-first scheduling."""

    def __init__(self, rows: list[dict[str, Any]]):
        times = iteration_times(rows)
        self.total, self.count = float(sum(times)), len(times)

    def add(self, seconds: float) -> None:
        self.total += seconds
        self.count += 1

    def fields(self) -> dict[str, Any]:
        return {"mean_iteration_time": self.total / self.count} if self.count else {}


def _leader_decides(comm: Any, value: Any) -> Any:
    """In an MPI group every rank must take the same branch: the group leader's value wins."""
    if comm is None or comm.Get_size() == 1:
        return value
    return comm.bcast(value, root=0)


def _all_agree(comm: Any, flag: bool) -> bool:
    if comm is None or comm.Get_size() == 1:
        return flag
    return all(comm.allgather(flag))


def _resume(instance: ClusterWork, config: dict[str, Any], rep: int, done: int, comm: Any = None,
            restart_full: bool = False) -> int:
    """Reset, then restore the latest restorable saved iteration; return the first iteration to run."""
    cls = type(instance)
    restorable = done > 0 and cls._restore_supported and not (cls._RESTART_FULL_REPETITIONS or restart_full)
    for n in range(done - 1, -1, -1) if restorable else ():
        instance._it = n
        _seed(instance, None)
        instance.reset(config, rep)
        try:
            restored = instance.restore_state(config, rep, n) is not False
        except Exception:
            restored = False
            log.warning("%s rep %d: restore_state(%d) raised; trying an earlier iteration",
                        instance._name, rep, n, exc_info=True)
        if _all_agree(comm, restored):
            log.info("%s rep %d: restored the state after iteration %d", instance._name, rep, n)
            return n + 1
    instance._it = None
    _seed(instance, None)
    instance.reset(config, rep)
    return 0


def restore_experiment(experiment_class: type[ClusterWork], experiment_path: str, rep: int,
                       iteration: int, config: Mapping[str, Any] | None = None) -> ClusterWork:
    """An instance of `experiment_class` at the state saved after `iteration` of repetition `rep`, for
    analysis (PlotWork's %restore_experiment_state, `init_from_config`): its stored config (cluster_work's or
    the original's; or `config`), `reset`, then `restore_state`."""
    from .results import repetition_rows, stored_config  # analysis only: workers need not import pandas

    config = dict(config) if config is not None else stored_config(experiment_path)
    if config is None:
        raise StoreError(f"{experiment_path}: no experiment here (no config.yml or experiment.yml)")
    saved = [row["iteration"] for row in repetition_rows(experiment_path, rep, config.get("log_path"))]
    if iteration not in saved:
        have = f"saved iterations {saved[0]} to {saved[-1]}" if saved else "no saved iterations"
        raise StoreError(f"{config['name']} rep {rep} has {have}, not {iteration}")
    store = ExperimentStore(experiment_path)
    experiment = ExpandedExperiment(config["name"], config.get("experiment_name", config["name"]), config, {})
    instance = experiment_class()
    _bind(instance, Job(-1, experiment, rep), store.repetition(rep), RunSettings(no_gui=True), None)
    instance._it = iteration
    _seed(instance, None)
    instance.reset(config, rep)
    if instance.restore_state(config, rep, iteration) is False:
        raise StoreError(f"{config['name']} rep {rep}: restore_state could not restore iteration {iteration}")
    return instance

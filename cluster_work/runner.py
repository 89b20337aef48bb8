"""Running one segment of a repetition: reset or restore, iterate up to the segment's target, save state,
append rows. Every backend runs this, with the collaborators its TaskContext gives (stop and cancel
checks, the progress count, the group's communicator, whether this rank writes), never module globals.

Order per iteration: `iterate` -> `save_state` -> append the row. A row on disk therefore always has
a saved state behind it, and a resumed repetition continues from exactly the rows it keeps. In an MPI
group every branch is the leader's decision (`_leader_decides`), so no rank waits in a collective that
another skipped.
"""
from __future__ import annotations

import contextlib
import errno
import logging
import time
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .compact_store import AnyRepetition, AnyWriter, experiment_store
from .deaths import record_lost_segment
from .errors import InvalidParameterArgument, StoreError
from .logs import FILE_ONLY, repetition_log
from .restoring import bind_instance, resume, seed_instance
from .restoring import restore_experiment as restore_experiment  # its old place (cluster_work, original_api)
from .store import (
    RepetitionBusy,
    ResultsPrefix,
    refresh_configs,
    write_configs,
)
from .task_context import TaskContext
from .vocabulary import ConfigWrite, Outcome, OutcomeKind, Record, RunSettings, Segment, WorkItem

if TYPE_CHECKING:
    from .experiment import ClusterWork  # annotations only: the base class is above the runner

log = logging.getLogger("cluster_work")

# An OSError with one of these, even from the experiment's own files, means the disk cannot take more.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


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


@dataclass(frozen=True)
class ExperimentTask:
    """The task every backend runs for a sweep of `experiment_class` (a `task_context.Task`): a segment of a
    repetition, or a campaign kind's item that knows how to run itself (`vocabulary.CampaignItem`, e.g. a
    weighted ensemble's block of walkers)."""

    experiment_class: type[ClusterWork]
    settings: RunSettings

    def __call__(self, item: WorkItem, context: TaskContext) -> Outcome:
        if isinstance(item, Segment):
            return run_segment(self.experiment_class, item, self.settings, context)
        return item.run(self.experiment_class, self.settings, context)

    def prepare(self, items: list[WorkItem]) -> None:
        """Before `items` run here, one after the other (an MPI leader's batch): store the configs their first
        segments would each write and sync (fresh experiments of the default layout), and bring up to date those
        whose counts changed (continued ones, see config_refresh), with one sync for each kind. Best effort:
        whatever goes wrong here is left to the segments themselves, which report it."""
        try:
            for write, store_them in ((ConfigWrite.IF_MISSING, write_configs), (ConfigWrite.REFRESH, refresh_configs)):
                configs = {item.experiment.path: item.experiment.config for item in items
                           if isinstance(item, Segment) and item.config == write and item.experiment.store != "compact"}
                if configs:
                    store_them(configs.items(), self.settings.sync)
        except Exception:
            log.debug("preparing a batch's configs failed; its segments write their own", exc_info=True)

    def lost(self, item: WorkItem, stopping: bool, cause: str) -> Outcome:
        """The outcome of an item whose worker process died under it, for `cause` (`deaths.describe_death`'s
        words, after who died: "worker process 123 killed by SIGSEGV (segmentation fault)"): interrupted if
        the run is stopping (Ctrl-C reaches workers too), else failed and recorded as failed in its
        repetition's status (see `deaths.record_lost_segment`). Call it only once that process is dead."""
        if not isinstance(item, Segment):
            return item.lost(stopping, cause)
        if stopping:
            return Outcome(item.index, item.label, OutcomeKind.INTERRUPTED)
        return record_lost_segment(item, cause, self.settings.sync)


def interruption(context: TaskContext) -> OutcomeKind | None:
    """Whether an item should stop before its next iteration, and as what (the leader's answer, in a
    group: every rank takes the same branch)."""
    if context.stop_requested():
        kind: OutcomeKind | None = OutcomeKind.INTERRUPTED
    elif context.cancelled():
        kind = OutcomeKind.CANCELLED
    else:
        kind = None
    return _leader_decides(context.comm, kind)


def run_segment(experiment_class: type[ClusterWork], segment: Segment, settings: RunSettings,
                context: TaskContext = TaskContext()) -> Outcome:
    """Run (or resume) one repetition up to the segment's target and report how it ended; never raises
    for the experiment's errors.

    With `context.write` false (a non-leading member of an MPI group) the repetition runs in lock-step
    with its group but writes nothing.
    """
    started = time.perf_counter()
    stop = interruption(context)
    if stop is not None:  # dequeued after a stop or a cancel: leave its files untouched
        return Outcome(segment.index, segment.label, stop)
    store = experiment_store(segment.experiment.path, segment.experiment.config).repetition(segment.rep)
    writer: AnyWriter | None = None
    refusal: tuple[OutcomeKind, str | None] | None = None
    try:
        writer = store.open_writer() if context.write else None
    except RepetitionBusy:
        refusal = (OutcomeKind.BUSY, None)
    except StoreError as exc:
        refusal = (OutcomeKind.STORE_FAILURE, str(exc))
    refusal = _leader_decides(context.comm, refusal)  # the members must not wait in a collective the leader skips
    if refusal is not None:
        return Outcome(segment.index, segment.label, refusal[0], error=refusal[1],
                       seconds=time.perf_counter() - started)
    attempt = _SegmentRun(experiment_class, segment, settings, store, writer, context)
    try:
        with _maybe_log(store, settings, context.write):
            outcome = attempt.run()
        if writer is not None:
            writer.close(sync=settings.sync)
    except StoreError as exc:
        return Outcome(segment.index, segment.label, OutcomeKind.STORE_FAILURE, error=str(exc),
                       seconds=time.perf_counter() - started)
    finally:
        if writer is not None:
            writer.close(sync=False)  # a no-op unless an error skipped the close above
        if attempt.began:  # whatever the outcome: this process outlived the segment
            context.attempts.end(segment)
    outcome.seconds = time.perf_counter() - started
    outcome.log_file = store.log_file if outcome.error else None
    return outcome


def _maybe_log(store: AnyRepetition, settings: RunSettings, write: bool) -> Any:
    if not write:
        return contextlib.nullcontext()
    fault_log = store.fault_log
    return repetition_log(store.log_file, settings.log_level, None if fault_log == store.log_file else fault_log)


class _SegmentRun:
    """One segment on a locked repetition: decide where to start, run to the target, record the end.

    Every branch a group's ranks take is decided by the leader (`_leader_decides`): the members never
    wait in a collective the leader skipped.
    """

    def __init__(self, experiment_class: type[ClusterWork], segment: Segment, settings: RunSettings,
                 store: AnyRepetition, writer: AnyWriter | None, context: TaskContext):
        self.experiment_class, self.segment, self.settings = experiment_class, segment, settings
        self.store, self.writer, self.context = store, writer, context
        self.config = segment.experiment.config
        self.target = segment.target
        self.iterations = segment.experiment.iterations
        self.values: list[dict[str, Any]] = []
        self.began = False  # recorded in the attempts journal: the experiment's code is about to run

    def outcome(self, kind: OutcomeKind, done: int, ran: int, error: str | None = None,
                left_status: dict[str, Any] | None = None) -> Outcome:
        return Outcome(self.segment.index, self.segment.label, kind, done, ran, error=error, values=self.values,
                       left_status=left_status)

    def write_status(self, state: Record, **fields: Any) -> None:
        if self.writer is not None:
            self.store.write_status(state, sync=self.settings.sync, **fields)

    def keep_values(self, rows: list[dict[str, Any]]) -> None:
        columns = self.segment.columns
        if columns:
            self.values.extend({"iteration": row["iteration"], **{c: row.get(c) for c in columns}} for row in rows)

    def run(self) -> Outcome:
        segment, writer, comm = self.segment, self.writer, self.context.comm
        if writer is not None and segment.config != ConfigWrite.KEEP:
            stored = experiment_store(segment.experiment.path, self.config)
            if segment.config == ConfigWrite.REFRESH:  # its counts before its rows (config_refresh)
                stored.refresh_config(self.config, sync=self.settings.sync)
            # a compact store's document config: looked at once per process (compact_config), no check per job
            elif segment.config == ConfigWrite.REPLACE or segment.experiment.store == "compact" or not stored.exists():
                stored.write_config(self.config, sync=self.settings.sync)
        prefix = writer.read() if writer is not None else None
        saved = len(prefix) if prefix is not None else 0
        if segment.restart_from is not None:
            saved = min(saved, segment.restart_from)
        saved = _leader_decides(comm, saved)
        if saved >= self.target and segment.restart_from is None:
            self.keep_values(prefix.rows[:self.target] if prefix is not None else [])
            if self.target < self.iterations:
                return self.outcome(OutcomeKind.REACHED, saved, 0)
            # a status left by an earlier end (failed, interrupted...), not yet replaced when a kill came
            if self.store.read_status().get("state") not in (None, Record.FINISHED.value):
                self.write_status(Record.FINISHED, iterations_done=saved, iterations=self.iterations)
            return self.outcome(OutcomeKind.ALREADY_FINISHED, saved, 0)
        self.context.attempts.begin(segment, saved, self.store.fault_log)
        self.began = True
        instance = self.experiment_class()
        bind_instance(instance, segment.experiment, segment.rep, self.settings, comm)
        try:
            return self.iterate(instance, prefix, saved)
        finally:
            try:
                instance.finalize()
            except Exception:
                log.exception("%s: finalize() raised", segment.label)

    def iterate(self, instance: ClusterWork, prefix: ResultsPrefix | None, saved: int) -> Outcome:
        segment, writer, config = self.segment, self.writer, self.config
        stage, completed, ran = "reset", saved, 0
        timing = _Timing([])
        try:
            completed = resume(instance, config, segment.rep, saved, self.context.comm,
                                self.settings.restart_full_repetitions)
            kept = prefix.rows[:completed] if prefix is not None else []
            if writer is not None and prefix is not None:
                writer.keep(prefix, completed)
            self.keep_values(kept)
            previous_time = kept[-1].get("repetition_time", 0.0) if kept else 0.0
            resumed_at = time.perf_counter()
            timing = _Timing(kept)
            for n in range(completed, self.target):
                stop = interruption(self.context)
                if stop is not None:
                    fields = {"iterations_done": n, "iterations": self.iterations, **timing.fields()}
                    if stop is OutcomeKind.CANCELLED:  # its canceller writes the status (Outcome.left_status)
                        return self.outcome(stop, n, ran, left_status=fields if self.writer is not None else None)
                    self.write_status(Record.INTERRUPTED, **fields)
                    return self.outcome(stop, n, ran)
                instance._it = n
                seed_instance(instance, n)
                stage = "iterate"
                began = time.perf_counter()
                result = instance.iterate(config, segment.rep, n)
                ended = time.perf_counter()
                timing.add(ended - began)
                row = {"iteration": n, **flatten_result(result or {})}
                row.setdefault("iteration_time", ended - began)
                row.setdefault("repetition_time", previous_time + ended - resumed_at)
                stage = "save_state"  # always, as the original: clients keep checkpoints there for their own use
                instance.save_state(config, segment.rep, n)
                if writer is not None:
                    try:
                        writer.append(row)
                    except StoreError:  # the group's members wait at the next iteration's decision: release them
                        _leader_decides(self.context.comm, OutcomeKind.STORE_FAILURE)
                        raise
                    if n >= saved:  # a redone iteration (its restore failed) is no progress: the plan
                        self.context.iteration_done()  # counted from `saved`, so the display's total holds
                self.keep_values([row])
                completed, ran = n + 1, ran + 1
            results_bytes = writer.size() if writer is not None else 0
            if self.target < self.iterations:
                self.write_status(Record.REACHED, iterations_done=self.target, iterations=self.iterations,
                                  **timing.fields())
                return self.outcome(OutcomeKind.REACHED, self.target, ran)
            if self.writer is not None and self.store.has_status():  # else the rows alone say finished: no file
                self.write_status(Record.FINISHED, iterations_done=self.iterations, iterations=self.iterations,
                                  ended=time.time(), results_bytes=results_bytes, **timing.fields())
            return self.outcome(OutcomeKind.FINISHED, self.iterations, ran)
        except StoreError:
            raise
        except OSError as exc:
            if exc.errno not in STORAGE_ERRNOS:
                return self.failed(exc, stage, completed, ran, timing)
            # the experiment's own file hit a full or read-only disk: every other job would too
            raise StoreError(f"{segment.label}: the experiment could not write {exc.filename or 'a file'} "
                             f"in {stage}: {exc.strerror}") from exc
        except InvalidParameterArgument as exc:
            self.write_status(Record.FAILED, iterations_done=completed, iterations=self.iterations, error=str(exc))
            return self.outcome(OutcomeKind.BAD_PARAMETER, completed, ran, f"{segment.experiment.name}: {exc}")
        except Exception as exc:  # the experiment's own error: isolate it, keep its saved rows
            if self.context.stop_requested():  # raised by the stop itself (a preemption's SIGTERM killed a
                log.warning("%s: %s in %s while the run was stopping; recorded as interrupted",  # subprocess)
                            segment.label, type(exc).__name__, stage)
                self.write_status(Record.INTERRUPTED, iterations_done=completed, iterations=self.iterations,
                                  **timing.fields())
                return self.outcome(OutcomeKind.INTERRUPTED, completed, ran)
            return self.failed(exc, stage, completed, ran, timing)

    def failed(self, exc: BaseException, stage: str, completed: int, ran: int, timing: _Timing) -> Outcome:
        """Record the experiment's exception in the repetition's log and status; the run goes on."""
        text = "".join(traceback.format_exception(exc))
        first_line = f"{type(exc).__name__}: {exc}".splitlines()[0]
        # the repetition's log only: rank 0 shows it on the console, once for identical ones (failures.py)
        log.error("%s failed in %s:\n%s", self.segment.label, stage, text, extra=FILE_ONLY)
        self.write_status(Record.FAILED, iterations_done=completed, iterations=self.iterations,
                          error=first_line, stage=stage, traceback=text, **timing.fields())
        outcome = self.outcome(OutcomeKind.FAILED, completed, ran, f"{first_line} (in {stage})")
        outcome.traceback = text
        return outcome


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

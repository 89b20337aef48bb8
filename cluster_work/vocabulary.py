"""The shared vocabulary of the engine: the config's source, segments and the other work items
(`WorkItem`), their outcomes, a driver's decision on one (`Step`), run settings, and the enums of outcome
kinds and repetition states. Dependency-free: every other module may import it, it imports none (its
type hints name a few, for type checkers only).

A *segment* is the unit of work: repetition R of experiment E, continued from its saved rows and state,
up to iteration K (`until`). A plain sweep runs one segment per repetition with K = `iterations`; a
steered campaign runs segments up to each rung; a weighted ensemble one iteration per segment.

Enum values are identifiers, written to files (`status.json`, `runs.jsonl`, `-p --json`) and compared
by code; what a person reads is made from them where it is printed (`describe_kind`).
"""
from __future__ import annotations

import enum
import os
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # only for type hints: the vocabulary imports nothing of the package at run time
    from .expansion import ExpandedExperiment
    from .task_context import TaskContext


@dataclass(frozen=True)
class ConfigSource:
    """The config file a run was given, made once where it is read (`config.load_config`) and carried by
    the loaded config (`config.Documents.source`) to everything that checks it, so that every error
    message names the file as the user named it: `str(source)` is that name ('config.yml: experiment
    'fit': 'grid.lr': ...'). `text`: the file's contents as they were read and validated ('' where a
    config was given as documents, not as text)."""

    path: str
    text: str = field(default="", repr=False, compare=False)

    def __str__(self) -> str:
        return self.path

    @classmethod
    def of(cls, source: ConfigSource | str) -> ConfigSource:
        """`source` as a ConfigSource (a bare name, as the Python API's callers give, as one without text)."""
        return source if isinstance(source, ConfigSource) else cls(source)


class OutcomeKind(enum.Enum):
    """How a segment ended, as the scheduler, the campaign and the summary see it."""

    FINISHED = "finished"  # ran its last iterations now: the repetition is complete
    ALREADY_FINISHED = "already_finished"  # complete on disk before it started: nothing ran
    REACHED = "reached"  # ran up to its `until`, before the repetition's last iteration (a rung, say)
    CANCELLED = "cancelled"  # cancelled by the campaign: stopped after its current iteration
    FAILED = "failed"  # the experiment raised; its saved rows stay
    BAD_PARAMETER = "bad_parameter"  # the experiment rejected its parameters (InvalidParameterArgument)
    INTERRUPTED = "interrupted"  # the run is stopping (a signal, a store failure elsewhere): resumable
    BUSY = "busy"  # another live run holds the repetition's lock: skipped
    STORE_FAILURE = "store_failure"  # the results could not be written (full or read-only disk)

    @property
    def ran_to_its_end(self) -> bool:
        """The segment got as far as it was asked to (its rows up to `until` are on disk)."""
        return self in (OutcomeKind.FINISHED, OutcomeKind.ALREADY_FINISHED, OutcomeKind.REACHED)


class RepetitionState(enum.Enum):
    """What the files of one repetition say about it (decided by `repetition_state.state_of`)."""

    PENDING = "pending"  # no row saved
    PARTIAL = "partial"  # some rows saved, not all, and nothing runs it: a rerun continues it
    RUNNING = "running"  # a live process holds its lock
    FINISHED = "finished"  # every iteration's row is saved
    FAILED = "failed"  # its last run raised; a rerun retries it
    STOPPED = "stopped"  # a campaign's policy stopped it: never run again
    QUARANTINED = "quarantined"  # runs died while it ran (see quarantine): failed, rerun only with --retry-failed


class ExperimentState(enum.Enum):
    """What planning found for an expanded experiment as a whole."""

    NEW = "new"  # nothing of it on disk (or -d/-o deletes it first)
    PARTIAL = "partial"  # some repetitions still to run
    DONE = "done"  # every repetition finished (or stopped by a campaign)
    CHANGED = "changed"  # its stored parameters differ from the config's (skipped unless -o or -I)


class Record(enum.Enum):
    """The states written to a repetition's `status.json` (RUNNING is never written: it is the lock)."""

    FINISHED = "finished"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    REACHED = "reached"
    STOPPED = "stopped"


class ConfigWrite(enum.Enum):
    """What a segment does with its experiment's stored config.yml when it starts."""

    KEEP = "keep"  # it is there and current
    IF_MISSING = "if_missing"  # a new experiment: whichever of its segments starts first writes it
    REPLACE = "replace"  # outdated (-I continues with new parameters): the experiment's first segment rewrites it
    # there, with the current parameters, but maybe not the current counts (config_refresh.REFRESHED): every segment
    # of the experiment brings those up to date (rewriting it only where they differ) before its first row
    REFRESH = "refresh"


_KIND_TEXT = {
    OutcomeKind.FINISHED: "finished", OutcomeKind.ALREADY_FINISHED: "already finished",
    OutcomeKind.REACHED: "paused", OutcomeKind.CANCELLED: "stopped by the campaign",
    OutcomeKind.FAILED: "failed", OutcomeKind.BAD_PARAMETER: "bad parameter",
    OutcomeKind.INTERRUPTED: "interrupted", OutcomeKind.BUSY: "held by another run",
    OutcomeKind.STORE_FAILURE: "store failure",
}


def describe_kind(kind: OutcomeKind) -> str:
    """The words a person reads for an outcome kind."""
    return _KIND_TEXT[kind]


@dataclass(frozen=True)
class Segment:
    """Repetition `rep` of `experiment`, from its saved rows and state up to iteration `until`.

    `until`: run until this many iterations are saved (None: the experiment's `iterations`).
    `restart_from`: keep only the saved rows before this iteration (-r / -i).
    `config`: whether the segment writes its experiment's config.yml when it starts (not the planner: a
    sweep of 10^5 experiments must not write 10^5 configs before its first job; and not every
    repetition: one write per experiment).
    `columns`: result columns whose values this run saves the outcome carries back (for a campaign's
    decisions; never whole rows of every column).
    `run_id`: the run it belongs to (`provenance.run_started`), stamped as it is handed out; the process that
    begins it records that in the run's attempts journal (see attempts). '' records nothing.
    """

    index: int
    experiment: ExpandedExperiment
    rep: int
    until: int | None = None
    restart_from: int | None = None
    config: ConfigWrite = ConfigWrite.KEEP
    columns: tuple[str, ...] = ()
    run_id: str = ""

    @property
    def label(self) -> str:
        return f"{self.experiment.name} rep {self.rep}"

    @property
    def target(self) -> int:
        """The number of saved iterations this segment runs up to."""
        iterations = self.experiment.iterations
        return iterations if self.until is None else min(self.until, iterations)


class CampaignItem(Protocol):
    """A work item of a campaign kind that runs itself (a weighted ensemble's block of walkers): what the
    executors and `runner.ExperimentTask` ask of an item that is not a `Segment`. Frozen dataclasses: the
    campaign loop renumbers them with `dataclasses.replace` (`index` is unique among the items in flight)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]

    @property
    def index(self) -> int: ...

    @property
    def label(self) -> str: ...

    @property
    def experiment(self) -> ExpandedExperiment: ...

    def run(self, experiment_class: type[Any], settings: RunSettings, context: TaskContext) -> Outcome:
        """Run the item in this process with the backend's `context`; never raises for the experiment's errors.
        (`experiment_class`: the user's ClusterWork subclass; named loosely here, at the bottom of the package.)"""
        ...

    def lost(self, stopping: bool, cause: str) -> Outcome:
        """Its outcome when the worker process running it died for `cause` (interrupted if `stopping`)."""
        ...


# What an executor runs and a driver hands out: a repetition's segment, or a campaign kind's own item.
WorkItem = Segment | CampaignItem


@dataclass(frozen=True)
class Step:
    """What a campaign's driver decides on one outcome (`campaign.Driver.on_outcome`), as one value.

    `run`: the items it makes ready (may be lazy: made as the executor takes them, so that an item a later
    decision withdraws is never made). `cancel`: its items in flight to cancel now (by its own index): a
    running one stops after its current iteration. `store_failed`: the driver's own files (a campaign's
    journal, an ensemble's commit) could not be written: the run stops at once, as on a plain segment's
    store failure (the outcome itself is never rewritten to say so)."""

    run: Iterable[WorkItem] = ()
    cancel: tuple[int, ...] = ()
    store_failed: bool = False


QUARANTINE_RUNS = 2  # runs a repetition may end (dying at the same iteration) before it is quarantined


@dataclass(frozen=True)
class Suspicion:
    """Runs that died while a repetition ran, one after the other, with nothing closing it since (decided by
    `quarantine.assess` from the attempts journals): `runs` of them, each at its iteration `iteration` (the
    rows it had saved), and how the last one died where its log says (`signal`, e.g. 'SIGSEGV')."""

    runs: int
    iteration: int
    signal: str | None = None

    @property
    def quarantined(self) -> bool:
        return self.runs >= QUARANTINE_RUNS

    def describe(self) -> str:
        how = f"; {self.signal}" if self.signal else ""
        if self.quarantined:
            return f"suspected of ending {self.runs} runs (each died in its iteration {self.iteration}{how})"
        return f"a run died while it ran (in its iteration {self.iteration}{how})"


@dataclass
class Outcome:
    """The small record a worker sends back when a segment ends; results themselves stay on disk.

    `values`: for each iteration this segment saved (or found saved, up to its target), the segment's
    `columns` of that row, as `{"iteration": n, column: value, ...}`.
    `traceback`: a failure's, for rank 0 to show (`failures.Failures`); `same_traceback_as`: the label of
    an earlier failure whose traceback was identical, and shown instead.
    `left_status`: a segment cancelled after it began leaves its repetition's status to the driver that
    cancelled it, the one writer of that status from the cancel on (it writes "stopped", or "interrupted"
    with these fields: where the segment got, its mean iteration time). None: nothing to write (not
    cancelled, or cancelled before it began).
    """

    index: int
    label: str
    kind: OutcomeKind
    iterations_done: int = 0
    iterations_run: int = 0
    seconds: float = 0.0
    error: str | None = None
    log_file: str | None = None
    host: str = field(default_factory=lambda: os.uname().nodename)
    values: list[dict[str, Any]] = field(default_factory=list)
    traceback: str | None = None
    same_traceback_as: str | None = None
    left_status: dict[str, Any] | None = None

    def __reduce_ex__(self, protocol: Any) -> Any:
        """Pickled as its fields in order (one per job crosses MPI): half the bytes of a dataclass's default
        pickle, and unpickled (by rank 0) in less than half the time. A subclass's (a campaign kind's, with
        fields of its own) pickles as any object does."""
        if type(self) is not Outcome:
            return super().__reduce_ex__(protocol)
        return Outcome, tuple(getattr(self, name) for name in _OUTCOME_FIELDS)


_OUTCOME_FIELDS = tuple(item.name for item in fields(Outcome))


@dataclass(frozen=True)
class RunSettings:
    """Per-run options every worker needs."""

    log_level: str = "INFO"
    no_gui: bool = False
    sync: bool = True  # make results durable (group commits, one sync at the end); False: leave it to the OS
    restart_full_repetitions: bool = False  # --restart_full_repetitions: never restore, start over
    config_file: str | None = None  # the config's absolute path: files it names are relative to its folder

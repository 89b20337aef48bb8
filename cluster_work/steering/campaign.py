"""Steered campaigns in a run: the campaign driver (see `kind`) of each document with a
`steer:` block, around its `Steering`; and what -d/-o and a selection mean for one.

What the driver does with the core's actions:

    Run     a Segment up to `until` (its index: the run's job number) that carries back `steering.columns`;
            the first segments of an experiment without a config.yml write it (ConfigWrite.IF_MISSING; -I's
            changed parameters: its first segment replaces it)
    Stop    status "stopped", with its reason, on each repetition it stopped (rows stay; a plain rerun never
            runs it again); one whose segment is in flight is cancelled and marked when that segment ends
            (from the cancel on, the driver alone writes the repetition's status: the runner leaves a
            cancelled segment's to it, `Outcome.left_status`; one cancelled by the campaign's failure is
            marked "interrupted" with those fields)
    Add     nothing more: the new experiment's segments write its config
    Finish  nothing: the campaign is over once its segments in flight have ended

A driver never raises out of `start` or `on_outcome` (the run goes on with its other experiments); what
went wrong shows in `exit_status` and `summary_line`:

    the policy raised (PolicyError)             exit 1, its traceback in the log; the campaign stops (its
                                                segments in flight are cancelled), rows and decisions stay
    the store failed (journal, status)          exit 3; the run stops at once, as for a plain segment
                                                (`Step.store_failed`)
    the journal does not match the config       exit 2; -d starts the campaign over
    a repetition failed (the experiment raised) exit 1 (2 for a bad parameter); the campaign goes on without it
    stopped (a signal, a store failure)         exit 130; a rerun resumes it exactly where it was
    held by another run                         skipped, exit 0

-d (and -o, where parameters changed) removes the journal first, then the experiments (`forget_campaign`):
a kill in between leaves rows without a journal, from which a rerun decides afresh, never a journal whose
rows are gone. -r, -i and -j are refused (`check_selection`): the decisions were made from every
repetition's rows, so a campaign runs as a whole; -d starts it over.
"""
from __future__ import annotations

import logging
import os
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from ..compact_store import CompactRepetition, store_of
from ..errors import ConfigError, StoreError, config_error
from ..exit_codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_STORE, EXIT_USAGE
from ..expansion import ExpandedDocument
from ..plan_warnings import warn_kept
from ..sweep import describe
from ..vocabulary import ConfigWrite, ExperimentState, Outcome, OutcomeKind, Record, RunSettings, Segment, Step
from .actions import Action, PolicyError, Run, SteeringError, Stop
from .core import Steering
from .journal import CampaignBusy, Journal, journal_path
from .points import read_added
from .spec import check_steer_block

if TYPE_CHECKING:
    from ..planning import CampaignPlan, Selection

log = logging.getLogger("cluster_work")

PLANNED_EVERY = 0.25  # s: how often the planned iterations the live display shows are worked out again
_RANKED = (EXIT_STORE, EXIT_USAGE, EXIT_FAILED, EXIT_INTERRUPTED)  # as Summary.exit_status ranks them


def drivers(campaign: CampaignPlan, settings: RunSettings, workers: int) -> list[SteeredCampaign]:
    """The driver of the campaign's document (`check_selection` made sure it is a whole one)."""
    return [SteeredCampaign(campaign, settings)]


def check_selection(campaign: CampaignPlan, selection: Selection, source: str) -> None:
    """Refuse (one line, exit 2, before anything is written) a selection that would run part of a campaign."""
    base = campaign.base or "?"
    if not isinstance(campaign.experiments, ExpandedDocument):
        raise config_error(source, "-e names part of a steered campaign, which runs as a whole: name it by its "
                                   f"base name ({base})", experiment=base, key="steer")
    if selection.repetition is not None or selection.jobs:
        raise config_error(source, "a steered campaign runs as a whole (its decisions were made from every "
                                   "repetition's rows), so it does not go with -r, -i or -j; -d starts it over",
                           experiment=base, key="steer")


def forget_campaign(campaign: CampaignPlan, warn: Callable[[str], Any]) -> None:
    """-d/-o: remove the campaign's journal, then the experiments it added (the configured ones are the plan's
    to delete, after this)."""
    document = campaign.experiments
    assert isinstance(document, ExpandedDocument)
    path = journal_path(document.base_folder)
    if not os.path.isfile(path) or os.path.islink(path):
        return
    try:
        added = read_added(document, Journal(path, sync=False))
    except SteeringError as exc:
        added = []
        warn(f"{document.base}: {exc}; -d/-o kept the experiments the campaign added")
    try:
        os.remove(path)
    except OSError as exc:
        raise StoreError(f"cannot delete the campaign journal {path}: {exc.strerror}") from None
    kept: list[tuple[str, list[str]]] = []  # (experiment, what -d/-o left in its folder), warned as a plan's
    for experiment in added:
        left = store_of(experiment).delete()
        if left:
            kept.append((experiment.name, left))
    warn_kept(kept, warn)


class SteeredCampaign:
    """The campaign driver of one steered document (see the module docstring)."""

    def __init__(self, campaign: CampaignPlan, settings: RunSettings):
        document = campaign.experiments
        assert isinstance(document, ExpandedDocument)
        self.document, self.plans, self.settings = document, campaign.plans, settings
        self.spec = campaign.spec or check_steer_block(document.document["steer"], document.source, document.base)
        self.steering: Steering | None = None
        self._journal: Journal | None = None
        self._statuses: set[int] = set()
        self._error, self._note = "", ""
        self._wanted: dict[int, tuple[str, int]] = {}  # runs asked for whose end has not come: job -> (name, rep)
        self._by_name: dict[str, set[int]] = {}  # the same jobs by experiment (a Stop finds its own at once)
        self._sent: set[int] = set()  # of them, those handed to the executor
        self._stopping: dict[int, str] = {}  # sent runs stopped meanwhile: job -> reason, marked at their end
        self._cancel: list[int] = []
        self._has_config = {p.experiment.name for p in campaign.plans if p.state is not ExperimentState.NEW}
        self._replace = {p.experiment.name for p in campaign.plans if p.state is ExperimentState.CHANGED}  # -I
        self._saved: dict[tuple[str, int], int] = {}  # iterations on disk, where an outcome told them
        self._failures: list[Outcome] = []
        self._ran = 0
        self._left, self._left_at = 0, -PLANNED_EVERY  # planned iterations, and when (see iterations_planned)

    # --- the Driver protocol ---------------------------------------------------------------------------

    def start(self) -> Iterable[Segment]:
        changed = [p for p in self.plans if p.skipped]
        if changed:
            keys = ", ".join(sorted({key for p in changed for key in p.changed_keys}))
            self._note = f"skipped, its parameters changed ({keys}); -o starts it over"
            return ()
        self._journal = Journal(journal_path(self.document.base_folder), sync=self.settings.sync)
        try:
            self._journal.lock()
            self.steering = Steering(self.spec, self.document, self._journal)
            return self._apply(self.steering.start())
        except CampaignBusy:
            self._note = "skipped, held by another run"
        except Exception as exc:  # recorded for exit_status and the summary: the run goes on
            self._fail(exc)
        return ()

    def on_outcome(self, outcome: Outcome) -> Step:
        job = outcome.index
        key = self._forget(job)
        if key is None:
            return self._step()
        self._observe(outcome, key)
        try:
            reason = self._stopping.pop(job, None)
            if reason is not None:  # stopped while it ran: its outcome tells the campaign nothing
                self._mark_stopped(key[0], key[1], reason)
                return self._step()
            if outcome.left_status is not None:  # cancelled by the campaign's failure after it began
                self._mark_interrupted(key[0], key[1], outcome.left_status)
            if self.steering is None or self._error:
                return self._step()
            return self._step(self._apply(self.steering.on_outcome(outcome, job=job)))
        except Exception as exc:  # as in start
            self._fail(exc)
            return self._step(store_failed=isinstance(exc, StoreError))  # a store failure stops the run at once

    def _step(self, run: Iterable[Segment] = (), store_failed: bool = False) -> Step:
        """The step of an outcome: `run`, and the cancels decided while taking it (a Stop's, a failure's)."""
        cancel, self._cancel = tuple(self._cancel), []
        return Step(run, cancel, store_failed)

    # --- the CampaignDriver protocol -------------------------------------------------------------------

    def exit_status(self) -> int:
        statuses = set(self._statuses)
        if self._note:
            return EXIT_OK
        kinds = {outcome.kind for outcome in self._failures}
        statuses |= {EXIT_USAGE} if OutcomeKind.BAD_PARAMETER in kinds else set()
        statuses |= {EXIT_FAILED} if OutcomeKind.FAILED in kinds else set()
        if not self.complete:
            statuses.add(EXIT_INTERRUPTED)
        return next((status for status in _RANKED if status in statuses), EXIT_OK)

    @property
    def complete(self) -> bool:
        """Whether the campaign is over: finished, nothing asked for left to run."""
        return self.steering is not None and self.steering.finished and not self.steering.jobs()

    def summary_line(self) -> str:
        policy = self.spec.policy if self.spec.is_user_policy else self.spec.policy.replace("_", " ")
        head = f"steered {self.document.base} ({policy})"
        if self._note:
            return f"{head}: {self._note}"
        if self.steering is None:
            return f"{head}: {self._error}"
        steering = self.steering
        if self._error:
            state = self._error
        elif self.complete:
            state = "done"
        else:
            planned = steering.planned_iterations(not self.settings.restart_full_repetitions)
            state = f"interrupted, about {planned} iterations left; a rerun resumes it"
        parts = [state, self._points(), self._tally()]
        stops = Counter[int]()
        for rung in steering.rungs():
            stops[rung["iteration"]] += rung["stopped"]
        if any(stops.values()):
            iterations = sorted(i for i in stops if stops[i])
            parts.append(f"stopped after {'/'.join(map(str, iterations))} iterations: "
                         f"{'/'.join(str(stops[i]) for i in iterations)}")
        parts.append(f"{self._ran} iterations this run")
        best = steering.best()
        if best is not None:
            parts.append(f"best {best[0]} ({self.spec.metric} {best[1]:.6g})")
        if self._failures:
            first = self._failures[0]
            parts.append(f"{len(self._failures)} failed (first: {first.label}: {first.error})")
        return f"{head}: " + "; ".join(parts)

    def iterations_planned(self) -> int:
        """The iterations of this run so far, and those its decisions so far still plan (the live display's
        total; 0 before `start`). Read by the display's thread: numbers `_apply` and `_observe` keep, on the
        thread that decides (the plan at most every PLANNED_EVERY seconds), never the steering state itself
        while that thread changes it."""
        return self._ran + (0 if self._error or self._note else self._left)

    def iterations_apart(self) -> int:
        """0: its segments count their own iterations through the executor."""
        return 0

    def close(self) -> None:
        try:
            if self._journal is not None:
                self._journal.close()
        except Exception as exc:  # as in start
            self._fail(exc)

    # ---------------------------------------------------------------------------------------------------

    def _points(self) -> str:
        assert self.steering is not None
        added = self.steering.point_count() - self.steering.configured_count()
        return f"{self.steering.experiment_count()} experiments" + (f" ({added} added)" if added else "")

    def _tally(self) -> str:
        assert self.steering is not None
        tally = self.steering.tally()
        return "repetitions " + ", ".join(f"{tally[state]} {state}" for state in ("finished", "stopped", "failed")
                                          if tally[state] or state != "failed")

    def _apply(self, actions: list[Action]) -> Iterator[Segment]:
        """Carry out the Stops now; the Runs as segments made when the executor takes them, so that a run
        stopped meanwhile is never sent."""
        runs = []
        for action in actions:
            if isinstance(action, Run):
                self._wanted[action.job] = (action.experiment_name, action.rep)
                self._by_name.setdefault(action.experiment_name, set()).add(action.job)
                runs.append(action)
            elif isinstance(action, Stop):
                self._stop(action)
        now = time.monotonic()
        if self.steering is not None and now - self._left_at >= PLANNED_EVERY:  # O(runs asked for): not per result
            self._left = int(self.steering.planned_iterations(not self.settings.restart_full_repetitions))
            self._left_at = now
        return self._segments(runs)

    def _segments(self, runs: list[Run]) -> Iterator[Segment]:
        assert self.steering is not None
        columns = self.steering.columns
        for run in runs:
            if run.job not in self._wanted or self._error:
                continue
            assert run.experiment is not None
            self._sent.add(run.job)
            write = ConfigWrite.KEEP if run.experiment_name in self._has_config else ConfigWrite.IF_MISSING
            if run.experiment_name in self._replace:  # -I continues with the new parameters: store them, once
                self._replace.discard(run.experiment_name)
                write = ConfigWrite.REPLACE
            yield Segment(run.job, run.experiment, run.rep, until=run.until, config=write, columns=columns)

    def _stop(self, stop: Stop) -> None:
        assert self.steering is not None
        running = set()
        for job in sorted(self._by_name.get(stop.experiment_name, ())):
            rep = self._wanted[job][1]
            if stop.rep not in (None, rep):
                continue
            if job in self._sent:
                self._stopping[job] = stop.reason
                self._cancel.append(job)
                running.add(rep)
            else:
                self._forget(job)
        for rep in self.steering.stopped_reps(stop.experiment_name, stop.rep):
            if rep not in running:
                self._mark_stopped(stop.experiment_name, rep, stop.reason)

    def _forget(self, job: int) -> tuple[str, int] | None:
        """Drop run `job` (it ended, or was stopped before it was sent); its (experiment, rep)."""
        key = self._wanted.pop(job, None)
        self._sent.discard(job)
        if key is not None:
            jobs = self._by_name[key[0]]
            jobs.discard(job)
            if not jobs:
                del self._by_name[key[0]]
        return key

    def _mark_stopped(self, name: str, rep: int, reason: str) -> None:
        """Record repetition `rep` of `name` as stopped (once: a resumed campaign applies its Stops again)."""
        assert self.steering is not None
        point = self.steering.index_of(name)
        assert point is not None
        experiment = self.steering.experiments[point]
        experiments = store_of(experiment)  # the layout its document asks for (`store:`)
        store = experiments.repetition(rep)
        if isinstance(store, CompactRepetition):  # a worker's rows and status, at once (not a view up to
            store.refresh()                       # REFRESH_SECONDS old): what the status says must follow them
        status = store.read_status()
        if status.get("state") == Record.STOPPED.value and status.get("reason") == reason:
            return
        if name not in self._has_config and not experiments.exists():  # stopped before it ever ran
            experiments.write_config(experiment.config, sync=self.settings.sync)
        self._has_config.add(name)
        done = self._saved.get((name, rep))
        if done is None:
            done = len(store.read_results())
        if not isinstance(store, CompactRepetition):
            store.create_folder()
        store.write_status(Record.STOPPED, sync=self.settings.sync, reason=reason, iterations_done=done,
                           iterations=experiment.iterations)

    def _mark_interrupted(self, name: str, rep: int, fields: dict[str, Any]) -> None:
        """Record repetition `rep` of `name` as interrupted where its cancelled segment left it (a rerun resumes it)."""
        assert self.steering is not None
        point = self.steering.index_of(name)
        assert point is not None
        experiment = self.steering.experiments[point]
        store = store_of(experiment).repetition(rep)
        store.write_status(Record.INTERRUPTED, sync=self.settings.sync, **fields)

    def _observe(self, outcome: Outcome, key: tuple[str, int]) -> None:
        kind = outcome.kind
        self._ran += outcome.iterations_run
        if kind.ran_to_its_end or kind in (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER):
            self._has_config.add(key[0])
        if kind.ran_to_its_end:
            self._saved[key] = outcome.iterations_done
        else:
            self._saved.pop(key, None)
        if kind in (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER):
            self._failures.append(outcome)
        if kind in (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER, OutcomeKind.STORE_FAILURE):
            log.error(describe(outcome))
        else:
            log.debug(describe(outcome))
        if kind is OutcomeKind.STORE_FAILURE:
            self._statuses.add(EXIT_STORE)

    def _fail(self, exc: Exception) -> None:
        """Stop the campaign on `exc` (see the module docstring); its segments in flight are cancelled."""
        where, trace = f"steered campaign {self.document.base}", ""
        if isinstance(exc, PolicyError):
            trace = "".join(traceback.format_exception(exc.__cause__ or exc))
            status, message = EXIT_FAILED, f"stopped: {exc} (traceback in the log); fix the policy and rerun to resume"
        elif isinstance(exc, StoreError):  # the journal's file, a status: the disk's failure
            status, message = EXIT_STORE, f"store failure: {exc}"
        elif isinstance(exc, (SteeringError, ConfigError)):
            status, message = EXIT_USAGE, f"stopped: {exc} (-d starts the campaign over)"
        else:  # cluster_work's own mistake
            trace = "".join(traceback.format_exception(exc))
            status, message = EXIT_FAILED, f"stopped: {type(exc).__name__}: {exc} (traceback in the log)"
        log.error("%s: %s%s", where, message, f"\n{trace.rstrip()}" if trace else "")
        self._statuses.add(status)
        self._error = self._error or message
        self._cancel.extend(job for job in self._sent if job not in self._stopping)

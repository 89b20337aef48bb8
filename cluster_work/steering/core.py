"""The decision core of a steered campaign: pure (no executor, no results files), event-sourced.

    steering = Steering(spec, document, Journal(journal_path(document.base_folder)))
    actions = steering.start()                   # Run / Stop / Add / Finish, in order
    ...  actions = steering.on_outcome(outcome, job=run.job)   # for every outcome of a Run it asked for

Invariants:
- Decisions depend only on results, never on arrival order or timing. A strategy decides where a
  unit of its own is complete (a rung, a repetition set, a batch) and in a canonical order; where it
  decides early (a point certain to survive a rung whatever the others report) the set of decisions is
  the same, only their place in the journal differs.
- Every decision is in the journal, durably, before `start`/`on_outcome` returns it: a crash never
  loses one that was acted on.
- The journal records what the core was told (`end` records) between what it decided, in the order it
  processed them. A new `Steering` on the same journal replays it: the strategy is driven from scratch
  through the same inputs and must make the same decisions (compared line by line: a changed config or
  policy is an error, not a silent divergence). Then `start()` returns what the engine must (re)apply:
  every Add and Stop (idempotent), every Run asked for whose end was not journaled, and Finish if made.
- An outcome that is no end (interrupted, busy, a store failure) leaves its run outstanding: the next
  run's `start()` asks for it again.
"""
from __future__ import annotations

import functools
import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from ..expansion import ExpandedDocument, ExpandedExperiment
from ..vocabulary import Outcome, OutcomeKind
from .actions import DECISION_KINDS, Action, Add, Finish, Run, SteeringError, Stop
from .jobs import Ended, Job, RepetitionState
from .journal import Journal, encode
from .points import Experiments, Params, added_name, badness, expand_added, metric_value, reduce
from .spec import SteerSpec

_ENDS = frozenset({OutcomeKind.FINISHED, OutcomeKind.ALREADY_FINISHED, OutcomeKind.REACHED, OutcomeKind.FAILED,
                   OutcomeKind.BAD_PARAMETER})
_DOCUMENT_KEYS = ("repetitions", "iterations", "params", "grid", "list", "random", "custom")
VERSION = 1


class Steering:
    """One document's campaign. `experiments`: its expanded experiments in expansion order (an
    ExpandedDocument, or any sequence with `document=` given, which adding points needs)."""

    def __init__(self, spec: SteerSpec, experiments: Sequence[ExpandedExperiment], journal: Journal,
                 document: ExpandedDocument | None = None):
        from .strategies import make_strategy

        self.spec, self._journal = spec, journal
        self._configured = experiments
        self._document = document or (experiments if isinstance(experiments, ExpandedDocument) else None)
        self._added: list[ExpandedExperiment] = []
        self.experiments: Sequence[ExpandedExperiment] = Experiments(experiments, self._added)
        self._uniform = ((self._document.document["repetitions"], self._document.document["iterations"])
                         if self._document is not None else None)
        self._jobs: dict[int, Job] = {}
        self._next_job = 0
        self._reps: dict[tuple[int, int], RepetitionState] = {}
        self._adds: list[Add] = []
        self._stops: list[Stop] = []
        self._final: dict[int, dict[int, float]] = {}
        self._names: dict[str, int] | None = None
        self._actions: list[Action] = []
        self._uncommitted = False
        self.finished = False
        self._script: list[dict[str, Any]] | None = None
        self._cursor = 0
        self._resumed = self._start_called = self._broken = False
        self._strategy = make_strategy(spec, self)
        self._replay(journal.read())

    # -- what the engine calls ---------------------------------------------------------------------------------

    @property
    def columns(self) -> tuple[str, ...]:
        """The columns each Run's segment must carry back in `Outcome.values`."""
        return self.spec.columns

    def start(self) -> list[Action]:
        """The first decisions of a new campaign, or, resumed, every action the engine must (re)apply."""
        if self._start_called:
            raise SteeringError("Steering.start() was called twice")
        self._start_called = True
        if self._resumed:
            self._journal.commit()  # decisions of a batch a crash cut short, made again by the replay
            return [*self._adds, *self._stops, *self.outstanding(), *([Finish()] if self.finished else [])]
        self._journal.append(self._header())
        self._guarded(self._strategy.start, self._journal.mark())
        return self._flush()

    def on_outcome(self, outcome: Outcome, job: int | None = None, commit: bool = True) -> list[Action]:
        """The decisions that the end of run `job` (default: `outcome.index`) leads to, durable when it
        returns; with `commit` False they are not yet: call `commit()` before acting on them (to make the
        decisions of several outcomes that ended together durable with one sync)."""
        if self._broken or not self._start_called:
            raise SteeringError("this campaign stopped on an error (or was not started); build a new Steering "
                                "on its journal to resume it")
        number = outcome.index if job is None else job
        current = self._jobs.get(number)
        if current is None or outcome.kind not in _ENDS:
            return []  # a stopped run's end, or no end at all (it stays outstanding)
        line = encode(self._end_record(current, outcome))
        self._journal.append_line(line)
        self._guarded(lambda: self._process(json.loads(line)), self._journal.mark())
        return self._flush(commit)

    def commit(self) -> None:
        """Make every decision returned so far durable."""
        if self._uncommitted:
            self._journal.commit()
            self._uncommitted = False

    def outstanding(self) -> list[Run]:
        """The runs asked for whose end has not been told, in job order."""
        return [self._run_action(job) for job in sorted(self._jobs.values(), key=lambda j: j.number)]

    def planned_iterations(self, restores: bool = True) -> int:
        """Iterations the campaign still plans to run (an upper bound where survival is unknown); without
        `restores` (the experiment cannot restore its state) a continued repetition starts over."""
        return self._strategy.planned(restores)

    def rungs(self) -> list[dict[str, Any]]:
        """Per rung (bracket, iteration): how many points entered, were stopped there, went on, for `-p`."""
        return self._strategy.rungs()

    def best(self) -> tuple[str, float] | None:
        """The point with the best metric over its finished repetitions (ties: the earlier one), and it."""
        scored = []
        for point, values in self._final.items():
            if values:
                value = reduce(list(values.values()), self.spec.reduce)
                scored.append((badness(value, self.spec.mode), point, value))
        if not scored:
            return None
        _, point, value = min(scored)
        return self.name(point), value

    def stopped_reps(self, name: str, rep: int | None) -> list[int]:
        """The repetitions of experiment `name` that `Stop(name, rep)` stopped (rep None: all it stopped)."""
        point = self.index_of(name)
        if point is None:
            return []
        reps = range(self.repetitions(point)) if rep is None else [rep]
        return [r for r in reps if getattr(self._reps.get((point, r)), "closed", "") == "stopped"]

    def tally(self) -> Counter[str]:
        """Repetitions the campaign ran by where they stand: 'stopped', 'failed', 'finished', '' (going on)."""
        return Counter(state.closed for state in self._reps.values())

    def close(self) -> None:
        self._journal.close()

    # -- what strategies call ----------------------------------------------------------------------------------

    def point_count(self) -> int:
        return len(self.experiments)

    def experiment_count(self) -> int:
        """The points that are experiments of the campaign: all, but where optuna asks for every point, the
        document's own (the base its trials' values are set on, which never runs)."""
        return self.point_count() - (self.configured_count() if self.spec.policy == "optuna" else 0)

    def name(self, point: int) -> str:
        return self.experiments[point].name

    def repetitions(self, point: int) -> int:
        if self._uniform is not None and point < len(self._configured):
            return int(self._uniform[0])
        return self.experiments[point].repetitions

    def iterations(self, point: int) -> int:
        if self._uniform is not None and point < len(self._configured):
            return int(self._uniform[1])
        return self.experiments[point].iterations

    def rep(self, point: int, rep: int) -> RepetitionState:
        state = self._reps.get((point, rep))
        if state is None:
            state = self._reps[(point, rep)] = RepetitionState()
        return state

    def alive_reps(self, point: int) -> list[int]:
        """Repetitions neither stopped, failed nor finished."""
        return [r for r in range(self.repetitions(point)) if not self.rep(point, r).closed]

    def index_of(self, name: str) -> int | None:
        if self._names is None:
            self._names = {experiment.name: i for i, experiment in enumerate(self.experiments)}
        return self._names.get(name)

    def configured_count(self) -> int:
        return len(self._configured)

    def jobs(self) -> list[Job]:
        """The runs asked for whose end has not been told."""
        return list(self._jobs.values())

    def run(self, point: int, rep: int, until: int) -> Job:
        state = self.rep(point, rep)
        assert state.job is None and not state.closed, (point, rep, state.closed)
        job = Job(self._next_job, point, rep, state.saved, until, self.experiments[point])
        self._next_job += 1
        self._jobs[job.number] = state.job = job
        self._decide(self._run_action(job))
        return job

    def stop(self, point: int, reps: Sequence[int] | None, reason: str) -> list[Job]:
        """Stop `reps` of `point` (None: every one still alive, as one action); return the jobs it cut short."""
        targets = self.alive_reps(point) if reps is None else [
            r for r in reps if self.rep(point, r).closed != "stopped"]
        if not targets:
            return []
        cut = []
        for rep in targets:
            state = self.rep(point, rep)
            state.closed = "stopped"
            if state.job is not None:
                cut.append(self._jobs.pop(state.job.number))
                state.job = None
            self._final.get(point, {}).pop(rep, None)
        name = self.name(point)
        for stop in [Stop(name, None, reason)] if reps is None else [Stop(name, rep, reason) for rep in targets]:
            self._stops.append(stop)
            self._decide(stop)
        return cut

    def add(self, params: Params, repetitions: int, iterations: int | None, tag: str) -> int:
        """A new point (see `points.expand_added`); its index."""
        if self._document is None:
            raise SteeringError("adding points to a campaign needs its experiment document")
        name = added_name(self._document.base, params, tag, len(self._added))
        if self.index_of(name) is not None:
            raise SteeringError(f"a new point would be named {name!r}, like an experiment that exists")
        iterations = self._document.document["iterations"] if iterations is None else iterations
        experiment = expand_added(self._document, params, repetitions, iterations, name)
        self._added.append(experiment)
        point = len(self.experiments) - 1
        if self._names is not None:
            self._names[name] = point
        add = Add(name, params, repetitions, iterations, experiment)
        self._adds.append(add)
        self._decide(add)
        return point

    def finish(self) -> None:
        if not self.finished:
            self.finished = True
            self._decide(Finish())

    # -- inside --------------------------------------------------------------------------------------------------

    def _run_action(self, job: Job) -> Run:
        return Run(job.experiment.name, job.rep, job.until, job.number, job.experiment)

    def _header(self) -> dict[str, Any]:
        document = {key: self._document.document.get(key) for key in _DOCUMENT_KEYS} if self._document else {
            "names": [e.name for e in self._configured]}
        digest = hashlib.sha1(encode(document).encode()).hexdigest()
        return {"k": "campaign", "version": VERSION, "spec": self.spec.to_json(), "document": digest,
                "points": len(self._configured)}

    def _end_record(self, job: Job, outcome: Outcome) -> dict[str, Any]:
        columns = self.spec.columns
        rows = [{"iteration": row["iteration"], **{c: row[c] for c in columns if c in row}}
                for row in outcome.values if job.start <= row.get("iteration", -1) < job.until]
        where = f"experiment {job.experiment.name!r} rep {job.rep}"
        if outcome.kind.ran_to_its_end:
            last = next((row for row in reversed(rows) if row["iteration"] == job.until - 1), None)
            if last is None:
                raise SteeringError(f"{where}: its outcome carries no values of iteration {job.until - 1} (the "
                                    f"engine must fill Outcome.values with the columns {list(columns)})")
            if self.spec.metric:
                metric_value(last, self.spec.metric, where)
        return {"k": "end", "job": job.number, "kind": outcome.kind.value, "rows": rows, "error": outcome.error}

    def _process(self, record: dict[str, Any]) -> None:
        job = self._jobs.pop(record["job"], None)
        if job is None:
            raise self._mismatch(f"the journal tells the end of run {record['job']}, which is not outstanding")
        state = self.rep(job.point, job.rep)
        state.job = None
        ended = Ended(job, OutcomeKind(record["kind"]), tuple(record["rows"]), record.get("error"))
        if ended.reached:
            state.saved = job.until
            if job.until >= self.iterations(job.point):
                state.closed = "finished"
                if self.spec.metric:
                    last = ended.row(job.until - 1) or {}
                    self._final.setdefault(job.point, {})[job.rep] = metric_value(last, self.spec.metric, "")
        else:
            state.closed = "failed"
        self._strategy.on_ended(ended)

    def _guarded(self, body: Callable[[], object], mark: tuple[int, int]) -> None:
        """Run a step; if it raises (a policy's exception), drop its decisions, which nothing acted on, so
        that a resume with the policy fixed decides afresh from what the campaign was told."""
        try:
            self._step(body)
        except BaseException:
            self._broken = True
            self._journal.rollback(mark)
            raise

    def _step(self, body: Callable[[], object]) -> None:
        self._actions = []
        body()
        if not self.finished and not self._jobs:
            self.finish()

    def _flush(self, commit: bool = True) -> list[Action]:
        actions, self._actions = self._actions, []
        self._uncommitted = self._uncommitted or bool(actions)
        if commit:
            self.commit()
        return actions

    def _decide(self, action: Action) -> None:
        """Record `action`; while replaying, check that the journal holds the same decision here."""
        self._actions.append(action)
        if self._script is None:
            self._journal.append(action.record())
            return
        line = encode(action.record())
        if self._cursor >= len(self._script):  # the journal ends in a batch a crash cut short
            self._journal.append_line(line)
            return
        journaled = self._script[self._cursor]
        if journaled["k"] not in DECISION_KINDS or encode(journaled) != line:
            raise self._mismatch(f"now decides {line}, where the journal holds {encode(journaled)}")
        self._cursor += 1

    def _replay(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        header, expected = records[0], self._header()
        if header.get("k") != "campaign" or header.get("version") != VERSION:
            raise self._mismatch("its first record describes no campaign of this version")
        if header["spec"] != json.loads(encode(expected["spec"])):
            raise self._mismatch(f"the steer block changed since the campaign started (then: {encode(header['spec'])})")
        if header["document"] != expected["document"] or header["points"] != expected["points"]:
            raise self._mismatch("the experiment's grid, params, repetitions or iterations changed since the "
                                 "campaign started")
        self._script, self._cursor = records, 1
        self._resumed = True
        self._step(self._strategy.start)
        while self._cursor < len(records):
            record = records[self._cursor]
            if record["k"] != "end":
                raise self._mismatch(f"no longer decides {encode(record)}")
            self._cursor += 1
            self._step(functools.partial(self._process, record))
        self._script, self._actions = None, []

    def _mismatch(self, message: str) -> SteeringError:
        return SteeringError(f"the campaign journal {self._journal.path} does not match: {message}; restore the "
                             "config and policy it was made with, or move the journal and the results away to "
                             "start the campaign over")

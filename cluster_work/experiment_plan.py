"""One experiment's plan: its state (new, partial, done, or changed since its results were saved), its
repetitions' states, and its jobs, from what its store says (`plan_experiment`); the expected seconds of
jobs, from the iteration times earlier runs measured (`expected_seconds`)."""
from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attempts_index import AttemptIndex
from .compact_index import SummaryExperiment
from .compact_store import CompactExperimentStore, store_of
from .config import dotted, flatten_paths
from .expansion import ExpandedExperiment
from .repetition_state import read_repetition
from .selection import Policy, Selection
from .store import ExperimentStore, to_plain
from .vocabulary import ConfigWrite, ExperimentState, RepetitionState, Segment, Suspicion

NEW, PARTIAL, DONE, CHANGED = (ExperimentState.NEW, ExperimentState.PARTIAL, ExperimentState.DONE,
                               ExperimentState.CHANGED)
DONE_STATES = (RepetitionState.FINISHED, RepetitionState.STOPPED)  # never run again by a plain rerun
QUARANTINED = RepetitionState.QUARANTINED  # run again only with --retry-failed (or -r)


@dataclass
class ExperimentPlan:
    experiment: ExpandedExperiment
    state: ExperimentState
    first_job_index: int
    changed_keys: list[str] = field(default_factory=list)
    repetition_states: dict[int, RepetitionState] = field(default_factory=dict)
    iteration_times: dict[int, float] = field(default_factory=dict)  # per rep, from an earlier run
    iterations_saved: dict[int, int] = field(default_factory=dict)
    jobs: list[Segment] = field(default_factory=list)
    rewrite: bool = False  # -d, -o: delete what is stored of it first (only where something is: `_on_disk`)
    suspicions: dict[int, Suspicion] = field(default_factory=dict)  # per rep: runs died while it ran (quarantine)

    @property
    def skipped(self) -> bool:
        return self.state == CHANGED and not self.jobs

    def iterations_left(self, job: Segment) -> int:
        """Iterations `job` still has to run: from -i, else from its repetition's status."""
        saved = job.restart_from if job.restart_from is not None else self.iterations_saved.get(job.rep, 0)
        return max(self.experiment.iterations - saved, 0)


def changed_params(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The parameter names whose values differ between two params dicts, compared as stored: NaN equals
    NaN and a set equals itself whatever its order, so an unchanged config never counts as changed."""
    if stored is current:
        return []  # an index found them the same (folder_index.IndexedExperiment)
    stored, current = to_plain(stored), to_plain(current)
    if json.dumps(stored, sort_keys=True, default=repr) == json.dumps(current, sort_keys=True, default=repr):
        return []  # the common case, in one comparison (equal texts: equal at every path)
    old, new = flatten_paths(stored), flatten_paths(current)
    return sorted(dotted(path) for path in old.keys() | new.keys()
                  if _canonical(old.get(path, ...)) != _canonical(new.get(path, ...)))


def _canonical(value: Any) -> str:
    return "<missing>" if value is ... else json.dumps(value, sort_keys=True, default=repr)


def _on_disk(experiment: ExpandedExperiment, fresh: bool, stored: Mapping[str, Any] | None) -> bool:
    """Whether -d finds anything of the experiment to delete: its config (in a compact store: its rows), or, in the
    default layout, its folder (whose files cluster_work did not write it names, keeping them). An experiment
    without any is no rewrite, whether its document's listing said so (`fresh`, a FreshRun's) or a look at
    its folder now: a plan of the whole document and one of each experiment count the same rewrites, and a -d
    of a new sweep deletes nothing, one experiment at a time."""
    if fresh:
        return False
    return stored is not None or (experiment.store != "compact" and os.path.lexists(experiment.path))


def plan_experiment(experiment: ExpandedExperiment, first_index: int, selection: Selection,
                     policy: Policy, picked: range | None, fresh: bool,
                     attempts: AttemptIndex | None = None,
                     store: ExperimentStore | CompactExperimentStore | SummaryExperiment | None = None,
                     unchanged: bool = False) -> ExperimentPlan:
    """One experiment's state and jobs; `fresh`: its document's folder does not exist, so neither do its files.
    `attempts`: its sweep folder's attempts journals (a quarantined repetition runs only with --retry-failed,
    or when -r names it). `store`: where it is read from (a compact store's index), else its own store.
    `unchanged`: its stored parameters are known to be its own (an index's text of them is theirs: see
    `bulk_runs.NewOrDoneRun`), so they are not compared (which would make the experiment's config)."""
    # (a fresh experiment's store is never looked at: making it would cost a third of its plan)
    store = None if fresh else store if store is not None else store_of(experiment)
    stored = store.read_config(own=True) if store is not None else None
    original_done: set[int] = set()
    if store is not None and store.has_original_results():  # the original ClusterWork ran it: its finished reps count
        from .original_format import finished_repetitions, read_experiment_config

        original_done = finished_repetitions(experiment.path, experiment.iterations)
        if stored is None:
            stored = read_experiment_config(experiment.path)
    changed = changed_params(stored.get("params") or {}, experiment.params) if stored and not unchanged else []
    rewrite = (policy.delete and _on_disk(experiment, fresh, stored)) or (bool(changed) and policy.overwrite)
    states: dict[int, RepetitionState] = {}
    times: dict[int, float] = {}
    saved: dict[int, int] = {}
    suspicions: dict[int, Suspicion] = {}
    if store is not None and stored is not None and not rewrite:  # a new experiment has no files to look at
        for rep in range(experiment.repetitions):
            view = read_repetition(store.repetition(rep), experiment.iterations, check_lock=False,
                                   finished_by_original=rep in original_done,
                                   attempts=attempts.of(experiment.name, rep) if attempts is not None else ())
            states[rep], saved[rep] = view.state, view.iterations_saved
            if view.suspicion is not None:
                suspicions[rep] = view.suspicion
            if view.mean_iteration_time is not None:
                times[rep] = view.mean_iteration_time
    if stored is None or rewrite:
        state = NEW
    elif changed:
        state = CHANGED
    elif all(s in DONE_STATES for s in states.values()):
        state = DONE
    else:
        state = PARTIAL
    plan = ExperimentPlan(experiment, state, first_index, changed, states, times, saved, rewrite=rewrite,
                          suspicions=suspicions)
    if state == CHANGED and not policy.ignore_config:
        return plan
    # a new experiment's config is written by whichever job starts first; -I continues with the new
    # parameters and stores them, once: its first job replaces the old config; each job of a continued one
    # brings its counts up to date before its rows (see config_refresh: a look at the file, ~0.1 ms, decided
    # there, since an index knows the parameters alone and must plan as the files do; a compact store's
    # document config, which its points share, the launcher's: `Plan.continued_stores`)
    config = {NEW: ConfigWrite.IF_MISSING, CHANGED: ConfigWrite.REPLACE}.get(state, ConfigWrite.KEEP)
    if config == ConfigWrite.KEEP and experiment.store != "compact":
        config = ConfigWrite.REFRESH
    for rep in range(experiment.repetitions):
        index = first_index + rep
        if picked is not None and index not in picked:
            continue
        if selection.repetition is not None:
            if rep != selection.repetition:
                continue
            plan.jobs.append(Segment(index, experiment, rep, restart_from=selection.iteration or 0, config=config))
        elif states.get(rep) not in DONE_STATES and (states.get(rep) != QUARANTINED or policy.retry_failed):
            plan.jobs.append(Segment(index, experiment, rep, config=config))
        if config == ConfigWrite.REPLACE and plan.jobs:
            config = ConfigWrite.KEEP
    return plan


def expected_seconds(plans: Sequence[ExperimentPlan], known: list[float] | None = None) -> dict[int, float]:
    """Expected remaining seconds per job index: the repetition's own mean iteration time, else its
    experiment's, else the sweep's, times the iterations it has left. Empty when nothing was measured.
    `known`: every measured mean iteration time of the sweep, where `plans` are not all its experiments
    (a NewOrDoneRun's done ones are not planned one by one), else those of `plans`."""
    if known is None:
        known = [t for plan in plans for t in plan.iteration_times.values()]
    mean = sweep_mean(known)
    if mean is None:
        return {}
    expected = {}
    for plan in plans:
        times = plan.iteration_times
        experiment_mean = sum(times.values()) / len(times) if times else mean
        for job in plan.jobs:
            expected[job.index] = times.get(job.rep, experiment_mean) * plan.iterations_left(job)
    return expected


def sweep_mean(known: Sequence[float]) -> float | None:
    """The mean of every measured mean iteration time of a sweep (`expected_seconds`' fallback for a job whose
    experiment measured none: a new one's); None where none was measured."""
    return sum(known) / len(known) if known else None

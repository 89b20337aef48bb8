"""Deciding what a run does: which experiments are selected, which repetitions are left, what changed.

Planning only reads the store; `apply_plan` is the one place that writes (configs, deletions), and it
runs only after the whole plan was built and validated.
"""
from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import dotted, flatten_paths
from .errors import ConfigError
from .expansion import ExpandedExperiment
from .runner import Job
from .store import FAILED, FINISHED, ExperimentStore, to_plain

log = logging.getLogger("cluster_work")

NEW, PARTIAL, DONE, CHANGED = "new", "partial", "done", "config changed"


@dataclass(frozen=True)
class Selection:
    """What the command line picked: experiments (-e), job indices (-j), one repetition (-r/-i)."""

    experiments: Sequence[str] = ()
    jobs: Sequence[int] = ()  # the original's -j: one job index, or slice(start, stop[, step]) of them
    repetition: int | None = None
    iteration: int | None = None

    def job_indices(self, total: int) -> range | None:
        """The job indices -j picks among `total` jobs (None: all), as the original slices its job list."""
        if not self.jobs:
            return None
        if len(self.jobs) > 3:
            raise ConfigError("-j/--job takes one job index, or START STOP [STEP] (jobs START to STOP-1), "
                              f"got {len(self.jobs)} values")
        if len(self.jobs) == 1:
            index = self.jobs[0]
            if not -total <= index < total:
                raise ConfigError(f"-j/--job: no job {index}; the selected experiments have jobs 0 to "
                                  f"{total - 1} (see --list)")
            return range(index % total, index % total + 1)
        if len(self.jobs) == 3 and self.jobs[2] == 0:
            raise ConfigError("-j/--job: the step must not be 0")
        picked = range(total)[slice(*self.jobs)]
        if not picked:
            raise ConfigError(f"-j/--job {' '.join(map(str, self.jobs))} selects no job; the selected "
                              f"experiments have jobs 0 to {total - 1} (see --list)")
        return picked


@dataclass(frozen=True)
class Policy:
    """How to treat earlier results: -d deletes them, -o overwrites changed ones, -I ignores changes."""

    delete: bool = False
    overwrite: bool = False
    ignore_config: bool = False


@dataclass
class ExperimentPlan:
    experiment: ExpandedExperiment
    state: str
    first_job_index: int
    changed_keys: list[str] = field(default_factory=list)
    repetition_states: dict[int, str] = field(default_factory=dict)
    iteration_times: dict[int, float] = field(default_factory=dict)  # per rep, from an earlier run
    iterations_saved: dict[int, int] = field(default_factory=dict)
    jobs: list[Job] = field(default_factory=list)
    rewrite: bool = False  # delete the folder (-d, -o) before writing the config

    @property
    def skipped(self) -> bool:
        return self.state == CHANGED and not self.jobs

    def iterations_left(self, job: Job) -> int:
        """Iterations `job` still has to run: from -i, else from its repetition's status."""
        saved = job.restart_from if job.restart_from is not None else self.iterations_saved.get(job.rep, 0)
        return max(self.experiment.iterations - saved, 0)


@dataclass
class Plan:
    experiments: list[ExperimentPlan]

    def iterations_left(self) -> int:
        """Iterations the planned jobs still have to run (from each repetition's status)."""
        return sum(item.iterations_left(job) for item in self.experiments for job in item.jobs)

    @property
    def jobs(self) -> list[Job]:
        """The jobs to run, longest expected first (where an earlier run measured iteration times),
        so that a long job does not start last and stretch the makespan."""
        jobs = [job for plan in self.experiments for job in plan.jobs]
        expected = expected_seconds(self.experiments)
        return sorted(jobs, key=lambda job: -expected.get(job.index, 0.0))


def select_experiments(expanded: Sequence[ExpandedExperiment], names: Sequence[str],
                       source: str) -> list[ExpandedExperiment]:
    """Keep the experiments named by base name, expanded name, or the name the original ClusterWork gave
    them; an unknown name is a ConfigError."""
    if not names:
        return list(expanded)
    wanted = set(names)
    selected = [e for e in expanded if wanted & {e.name, e.base_name, e.original_name}]
    known = {name for e in selected for name in (e.name, e.base_name, e.original_name)}
    unknown = [name for name in names if name not in known]
    if unknown:
        bases = sorted({e.base_name for e in expanded})
        raise ConfigError(f"{source}: unknown experiment(s) {', '.join(map(repr, unknown))}; "
                          f"the config defines: {', '.join(bases)}")
    return selected


def changed_params(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The parameter names whose values differ between two params dicts, compared as stored: NaN equals
    NaN and a set equals itself whatever its order, so an unchanged config never counts as changed."""
    old, new = flatten_paths(to_plain(stored)), flatten_paths(to_plain(current))
    return sorted(dotted(path) for path in old.keys() | new.keys()
                  if _canonical(old.get(path, ...)) != _canonical(new.get(path, ...)))


def _canonical(value: Any) -> str:
    return "<missing>" if value is ... else json.dumps(value, sort_keys=True, default=repr)


def repetition_state(status: Mapping[str, Any], iterations: int) -> str:
    state = status.get("state")
    if state is None:
        return "pending"
    if state == FINISHED and status.get("iterations_done", 0) >= iterations:
        return "finished"
    if state == FAILED:
        return state
    return "partial"


def make_plan(expanded: Sequence[ExpandedExperiment], selection: Selection, policy: Policy,
              source: str) -> Plan:
    """Build the plan: per experiment its state and the jobs to run, without writing anything.

    Everything a run would refuse is refused here, before `apply_plan` writes: a bad selection, a
    deletion through a symbolic link, a results folder that cannot be created."""
    if selection.iteration is not None and selection.repetition is None:
        raise ConfigError("-i/--iteration needs -r/--repetition: which repetition to restart")
    if selection.iteration is not None and selection.iteration < 0:
        raise ConfigError(f"-i/--iteration must be 0 or more (the first iteration to run again), "
                          f"got {selection.iteration}")
    if selection.repetition is not None and selection.repetition < 0:
        raise ConfigError(f"-r/--repetition must be 0 or more, got {selection.repetition}")
    if policy.delete and (selection.repetition is not None or selection.jobs):
        raise ConfigError("-d/--delete deletes whole experiments, so it does not go with -r or -j; to restart "
                          "one repetition from scratch use -r alone")
    chosen = select_experiments(expanded, selection.experiments, source)
    picked = selection.job_indices(sum(e.repetitions for e in chosen))
    plans, index = [], 0
    for experiment in chosen:
        plans.append(_plan_experiment(experiment, index, selection, policy, picked))
        index += experiment.repetitions
    if selection.repetition is not None and not any(p.jobs for p in plans) and not all(
            p.skipped for p in plans):
        raise ConfigError(f"-r/--repetition: no selected experiment has repetition {selection.repetition}")
    _check_writable(plans, source)
    return Plan(plans)


def _check_writable(plans: Sequence[ExperimentPlan], source: str) -> None:
    """Every folder the run will write must be creatable: its nearest existing ancestor is a writable folder.
    Checked for all experiments first, so that a bad second path never follows a written first one."""
    for item in plans:
        if not item.jobs and not item.rewrite:
            continue
        experiment = item.experiment
        if item.rewrite:
            refusal = ExperimentStore(experiment.path).deletion_refusal()
            if refusal:
                raise ConfigError(f"{source}: experiment '{experiment.base_name}': -d/-o: refusing to delete, "
                                  f"{refusal}")
        store = ExperimentStore(experiment.path)
        if store.exists() and not store.is_ours():
            raise ConfigError(f"{source}: experiment '{experiment.base_name}': 'path': {store.config_file} exists "
                              "and was not written by cluster_work; it is never overwritten: move it away")
        existing = os.path.abspath(experiment.path)
        while not os.path.lexists(existing):
            existing = os.path.dirname(existing)
        if not os.path.isdir(existing) or not os.access(existing, os.W_OK | os.X_OK):
            what = "is not a folder" if not os.path.isdir(existing) else "is not writable"
            raise ConfigError(f"{source}: experiment '{experiment.base_name}': 'path': cannot write "
                              f"{experiment.path}: {existing} {what}")


def _plan_experiment(experiment: ExpandedExperiment, first_index: int, selection: Selection,
                     policy: Policy, picked: range | None) -> ExperimentPlan:
    store = ExperimentStore(experiment.path)
    stored = store.read_config() if store.is_ours() else None
    original_done: set[int] = set()
    if store.has_original_results():  # a sweep the original ClusterWork ran: its finished repetitions count
        from .original_format import finished_repetitions, read_experiment_config

        original_done = finished_repetitions(experiment.path, experiment.iterations)
        if stored is None:
            stored = read_experiment_config(experiment.path)
    changed = changed_params(stored.get("params") or {}, experiment.params) if stored else []
    rewrite = policy.delete or (bool(changed) and policy.overwrite)
    states: dict[int, str] = {}
    times: dict[int, float] = {}
    saved: dict[int, int] = {}
    if stored is not None and not rewrite:  # a new experiment has no files to look at
        for rep in range(experiment.repetitions):
            status = store.repetition(rep).read_status()
            states[rep] = repetition_state(status, experiment.iterations)
            if states[rep] != "finished" and rep in original_done and not status:
                states[rep] = "finished"
                saved[rep] = experiment.iterations
            if isinstance(status.get("mean_iteration_time"), (int, float)):
                times[rep] = status["mean_iteration_time"]
            if isinstance(status.get("iterations_done"), int):
                saved[rep] = status["iterations_done"]
    if stored is None or rewrite:
        state = NEW
    elif changed:
        state = CHANGED
    elif all(s == "finished" for s in states.values()):
        state = DONE
    else:
        state = PARTIAL
    plan = ExperimentPlan(experiment, state, first_index, changed, states, times, saved, rewrite=rewrite)
    if state == CHANGED and not policy.ignore_config:
        return plan
    write_config = state in (NEW, CHANGED)  # -I continues with the new parameters, and stores them
    for rep in range(experiment.repetitions):
        index = first_index + rep
        if picked is not None and index not in picked:
            continue
        if selection.repetition is not None:
            if rep != selection.repetition:
                continue
            plan.jobs.append(Job(index, experiment, rep, selection.iteration or 0, write_config))
        elif states.get(rep) != "finished":
            plan.jobs.append(Job(index, experiment, rep, write_config=write_config))
    return plan


def expected_seconds(plans: Sequence[ExperimentPlan]) -> dict[int, float]:
    """Expected remaining seconds per job index: the repetition's own mean iteration time, else its
    experiment's, else the sweep's, times the iterations it has left. Empty when nothing was measured."""
    known = [t for plan in plans for t in plan.iteration_times.values()]
    if not known:
        return {}
    sweep_mean = sum(known) / len(known)
    expected = {}
    for plan in plans:
        times = plan.iteration_times
        experiment_mean = sum(times.values()) / len(times) if times else sweep_mean
        for job in plan.jobs:
            expected[job.index] = times.get(job.rep, experiment_mean) * plan.iterations_left(job)
    return expected


def apply_plan(plan: Plan, warn: Any = log.warning) -> None:
    """Delete what -d/-o asked to delete (configs are written by each experiment's first job)."""
    for item in plan.experiments:
        if not item.rewrite or item.skipped:
            continue
        left = ExperimentStore(item.experiment.path).delete()
        if left:
            shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            warn(f"{item.experiment.name}: -d/-o kept what cluster_work did not write: {shown}")


def warn_changed(plan: Plan, policy: Policy, warn: Any = log.warning) -> None:
    for item in plan.experiments:
        if item.state != CHANGED:
            continue
        keys = ", ".join(item.changed_keys)
        if policy.ignore_config:
            warn(f"{item.experiment.name}: parameters changed ({keys}); resuming anyway (-I)")
        else:
            warn(f"{item.experiment.name}: skipped, its parameters changed since its results were saved "
                 f"({keys}); use -o/--overwrite to delete its results and start over, or "
                 "-I/--ignore_config to continue with the new parameters")


"""Deciding what a run does: which experiments are selected, which repetitions are left, what changed.

Planning only reads the store; `apply_plan` is the one place that writes (configs, deletions), and it
runs only after the whole plan was built and validated.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import flatten_mapping
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
    jobs: Sequence[int] = ()
    repetition: int | None = None
    iteration: int | None = None


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
    """Keep the experiments named by base or expanded name; an unknown name is a ConfigError."""
    if not names:
        return list(expanded)
    known = {e.base_name for e in expanded} | {e.name for e in expanded}
    unknown = [name for name in names if name not in known]
    if unknown:
        bases = sorted({e.base_name for e in expanded})
        raise ConfigError(f"{source}: unknown experiment(s) {', '.join(map(repr, unknown))}; "
                          f"the config defines: {', '.join(bases)}")
    wanted = set(names)
    return [e for e in expanded if e.name in wanted or e.base_name in wanted]


def changed_params(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The dotted parameter names whose values differ between two params dicts."""
    old, new = flatten_mapping(to_plain(stored)), flatten_mapping(to_plain(current))
    return sorted(key for key in old.keys() | new.keys() if old.get(key, ...) != new.get(key, ...))


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
    """Build the plan: per experiment its state and the jobs to run, without writing anything."""
    if selection.iteration is not None and selection.repetition is None:
        raise ConfigError("-i/--iteration needs -r/--repetition: which repetition to restart")
    chosen = select_experiments(expanded, selection.experiments, source)
    wanted_jobs = set(selection.jobs)
    total_jobs = sum(e.repetitions for e in chosen)
    bad = sorted(j for j in wanted_jobs if not 0 <= j < total_jobs)
    if bad:
        raise ConfigError(f"-j/--job: no job {', '.join(map(str, bad))}; "
                          f"the selected experiments have jobs 0 to {total_jobs - 1} (see --list)")
    plans, index = [], 0
    for experiment in chosen:
        plans.append(_plan_experiment(experiment, index, selection, policy, wanted_jobs))
        index += experiment.repetitions
    if selection.repetition is not None and not any(p.jobs for p in plans) and not all(
            p.skipped for p in plans):
        raise ConfigError(f"-r/--repetition: no selected experiment has repetition {selection.repetition}")
    return Plan(plans)


def _plan_experiment(experiment: ExpandedExperiment, first_index: int, selection: Selection,
                     policy: Policy, wanted_jobs: set[int]) -> ExperimentPlan:
    store = ExperimentStore(experiment.path)
    stored = store.read_config()
    changed = changed_params(stored.get("params") or {}, experiment.params) if stored else []
    rewrite = policy.delete or (bool(changed) and policy.overwrite)
    states: dict[int, str] = {}
    times: dict[int, float] = {}
    saved: dict[int, int] = {}
    if stored is not None and not rewrite:  # a new experiment has no files to look at
        for rep in range(experiment.repetitions):
            status = store.repetition(rep).read_status()
            states[rep] = repetition_state(status, experiment.iterations)
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
    for rep in range(experiment.repetitions):
        index = first_index + rep
        if wanted_jobs and index not in wanted_jobs:
            continue
        if selection.repetition is not None:
            if rep != selection.repetition:
                continue
            plan.jobs.append(Job(index, experiment, rep, restart_from=selection.iteration or 0))
        elif states.get(rep) != "finished":
            plan.jobs.append(Job(index, experiment, rep))
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


def apply_plan(plan: Plan) -> None:
    """Delete what -d/-o asked to delete and write each experiment's effective config."""
    for item in plan.experiments:
        if item.skipped:
            continue
        store = ExperimentStore(item.experiment.path)
        if item.rewrite:
            store.delete()
        if item.jobs or not store.exists():
            store.write_config(item.experiment.config)


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


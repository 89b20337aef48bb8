"""Deciding what a run does: which experiments are selected, which repetitions are left, what changed.

Planning only reads the store; `apply_plan` is the one place that writes (deletions), and it runs only
after the whole plan was validated. Each experiment's config is written by its first job.
"""
from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attempts import AttemptIndex, compact, read_index
from .bulk_runs import DoneRun, FreshRun, compact_runs, fresh_runs
from .bulk_runs import folder_runs as folder_runs  # planning's names, as they were before the split
from .bulk_runs import present_folders as present_folders
from .campaign_plans import CampaignPlan as CampaignPlan
from .campaign_plans import _split_campaigns as _split_campaigns
from .compact_index import SummaryExperiment, SummaryStore
from .compact_store import CompactExperimentStore, is_compact, store_of
from .config import dotted, flatten_paths
from .errors import ConfigError
from .expansion import ExpandedDocument, ExpandedExperiment, Expansion, expand_path
from .kinds import kind
from .paths import compact_root
from .plan_warnings import refuse_changed_only as refuse_changed_only
from .plan_warnings import warn_changed as warn_changed
from .plan_warnings import warn_quarantined as warn_quarantined
from .preflight import check_experiment, check_writable
from .repetition_state import read_repetition
from .selection import Policy, Selection, select_experiments
from .store import ExperimentStore, to_plain, write_frozen_points
from .vocabulary import ConfigWrite, ExperimentState, RepetitionState, Segment, Suspicion

log = logging.getLogger("cluster_work")

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
    rewrite: bool = False  # delete the folder (-d, -o) before writing the config
    suspicions: dict[int, Suspicion] = field(default_factory=dict)  # per rep: runs died while it ran (quarantine)

    @property
    def skipped(self) -> bool:
        return self.state == CHANGED and not self.jobs

    def iterations_left(self, job: Segment) -> int:
        """Iterations `job` still has to run: from -i, else from its repetition's status."""
        saved = job.restart_from if job.restart_from is not None else self.iterations_saved.get(job.rep, 0)
        return max(self.experiment.iterations - saved, 0)


@dataclass
class PlanTotals:
    """What the whole plan holds, counted in one pass (the pass that validates it)."""

    experiments: int = 0
    experiments_to_run: int = 0  # those with a job to run
    jobs: int = 0
    iterations_left: int = 0
    skipped: int = 0  # experiments skipped because their parameters changed
    changed: int = 0  # experiments whose parameters changed (skipped, or continued with -I)
    rewrites: int = 0  # experiments -d/-o delete first
    sweep_paths: list[str] = field(default_factory=list)
    quarantined: list[tuple[str, Suspicion]] = field(default_factory=list)  # (label, why), run only if retried


SORT_LIMIT = 100_000  # up to this many jobs are ordered longest first; a larger sweep streams in config order

Chunk = ExperimentPlan | FreshRun | DoneRun  # what planning yields: one experiment's plan, or a run of alike ones


class Plan:
    """What a run does, planned lazily so that a sweep of 10^6 experiments starts at once.

    `make_plan` validates and counts in one pass (`totals`), writing nothing. A plan of up to SORT_LIMIT
    experiments keeps what that pass read (until `apply_plan` deletes something); a larger one plans again
    from the files at every look at `experiments` or `jobs`, experiment by experiment, so memory stays
    bounded. A document whose folder does not exist yet is planned without touching the disk."""

    def __init__(self, chosen: Sequence[ExpandedExperiment], selection: Selection, policy: Policy,
                 picked: range | None, source: str):
        self._selection, self._policy, self._picked, self._source = selection, policy, picked, source
        self._groups, self.campaigns = _split_campaigns(_groups(chosen))
        self.totals = PlanTotals()
        self._counted: list[Chunk] | None = None  # what `count` read, where it is small enough
        self._attempts: dict[str, AttemptIndex] = {}  # per sweep folder, read once

    @property
    def experiments(self) -> Iterator[ExperimentPlan]:
        """Each chosen experiment's plan, in config order (as counted, or read from the files now)."""
        for chunk in self.chunks():
            yield from self.fresh_plans(chunk) if isinstance(chunk, (FreshRun, DoneRun)) else (chunk,)

    def chunks(self) -> Iterator[Chunk]:
        """The experiments' plans in config order, runs of fresh or done experiments as FreshRuns, DoneRuns."""
        if self._counted is not None:
            yield from self._counted
            return
        for group, first_index in self._groups:
            yield from (chunk for chunk, _ in self._plan_group(group, first_index))

    def fresh_plans(self, run: FreshRun | DoneRun, start: int | None = None, stop: int | None = None,
                    ) -> Iterator[ExperimentPlan]:
        """The plans of `run`'s experiments (those from `start` to `stop - 1` of its document, else all)."""
        start, stop = run.start if start is None else start, run.stop if stop is None else stop
        known = run.store if isinstance(run, DoneRun) else None
        for position in range(start, stop):
            experiment = run.document[position]
            yield _plan_experiment(experiment, run.first_index + (position - run.start) * run.repetitions,
                                   self._selection, self._policy, self._picked, known is None,
                                   store=known.experiment(experiment.name, experiment.path) if known else None)

    def _plan_group(self, group: Sequence[ExpandedExperiment], first_index: int) -> Iterator[tuple[Chunk, bool]]:
        """Each experiment's plan, or a run of fresh ones, and whether it was fresh (its folder does not
        exist: no disk was read). A document's folder is listed once (`present_folders`), and where neither
        -r nor -j picks among its jobs, the folders missing from that list are FreshRuns. A compact store is
        read through its index (`SummaryStore`), once per pass; its done experiments are DoneRuns."""
        present = present_folders(group)
        document_path = expand_path(group.document["path"]) if isinstance(group, ExpandedDocument) else None
        summaries: dict[str, SummaryStore] = {}

        def store(experiment: ExpandedExperiment) -> ExperimentStore | CompactExperimentStore | SummaryExperiment:
            if experiment.store != "compact":
                return store_of(experiment)
            root = compact_root(experiment.config["_experiment_path"])
            found = summaries.get(root) or summaries.setdefault(root, SummaryStore(root, check_locks=False))
            return found.experiment(experiment.name, experiment.path)

        def plan(experiment: ExpandedExperiment, index: int) -> ExperimentPlan:
            return _plan_experiment(experiment, index, self._selection, self._policy, None, False, attempts,
                                    store(experiment))

        whole = isinstance(group, ExpandedDocument) and self._selection.repetition is None and self._picked is None
        if whole and isinstance(group, ExpandedDocument) and is_compact(group.document) and not self._policy.delete:
            assert document_path is not None
            attempts = self.attempts(document_path)
            known = SummaryStore(compact_root(group.base_folder), check_locks=False)
            summaries[known.root] = known
            yield from compact_runs(group, first_index, known, plan)
            return
        if whole and present is not None:
            assert isinstance(group, ExpandedDocument) and document_path is not None
            attempts = self.attempts(document_path)
            yield from fresh_runs(group, first_index, present, plan)
            return
        for experiment in group:
            fresh = present is not None and experiment.params_part not in present
            attempts = self.attempts(document_path or experiment.sweep_path) if not fresh else AttemptIndex()
            yield _plan_experiment(experiment, first_index, self._selection, self._policy, self._picked, fresh,
                                   attempts, None if fresh else store(experiment)), fresh
            first_index += experiment.repetitions

    def attempts(self, sweep_path: str) -> AttemptIndex:
        """What the attempts journals of `sweep_path` say (read once per plan)."""
        index = self._attempts.get(sweep_path)
        if index is None:
            index = self._attempts[sweep_path] = read_index(sweep_path)
        return index

    def compact_roots(self) -> list[str]:
        """The folders of the compact stores the plan's experiments are in (whole documents only: experiments
        chosen one by one are few), for their indexes (`compact_index.refresh`)."""
        return [compact_root(group.base_folder) for group, _ in self._groups
                if isinstance(group, ExpandedDocument) and is_compact(group.document)]

    def iterations_left(self) -> int:
        """Iterations the planned jobs still have to run (from each repetition's status)."""
        return self.totals.iterations_left

    def freeze_designs(self) -> None:
        """Store the points of each custom strategy that has none on disk yet (see cluster_work.design), so that
        no later run, resume or array task calls its function again."""
        for group, _ in self._groups:
            if isinstance(group, ExpandedDocument) and group.custom_points and not group.custom_frozen:
                write_frozen_points(group.base_folder, group.document["custom"], group.custom_points)
                group.custom_frozen = True

    def random_expansions(self) -> list[tuple[str, int, int]]:
        """(base name, samples, seed) of each chosen document with a `random:` block (for --list)."""
        return [(group.base, group.sampler.samples, group.sampler.seed) for group, _ in self._groups
                if isinstance(group, ExpandedDocument) and group.sampler]

    @property
    def jobs(self) -> Jobs:
        """The jobs to run. Up to SORT_LIMIT of them longest expected first (where an earlier run measured
        iteration times), so that a long job does not start last and stretch the makespan."""
        if self.totals.jobs > SORT_LIMIT:
            streamed = (plan for chunk in self.chunks() if not isinstance(chunk, DoneRun)  # no jobs
                        for plan in (self.fresh_plans(chunk) if isinstance(chunk, FreshRun) else (chunk,)))
            return Jobs(self.totals.jobs, (job for item in streamed for job in item.jobs))
        plans: list[ExperimentPlan] = []
        known: list[float] = []  # every measured mean iteration time, in config order
        for chunk in self.chunks():
            if isinstance(chunk, DoneRun):
                known.extend(chunk.iteration_times())
                continue
            for plan in self.fresh_plans(chunk) if isinstance(chunk, FreshRun) else (chunk,):
                plans.append(plan)
                known.extend(plan.iteration_times.values())
        expected = expected_seconds(plans, known)
        jobs = sorted((job for plan in plans for job in plan.jobs), key=lambda job: -expected.get(job.index, 0.0))
        return Jobs(len(jobs), jobs)

    def count(self) -> None:
        """Validate every experiment and fill `totals` (raises ConfigError on what a run would refuse)."""
        totals, checked = PlanTotals(), set[str]()
        counted: list[Chunk] | None = []
        for group, first_index in self._groups:
            if isinstance(group, ExpandedDocument):
                check_writable(group.base_folder, group.base, self._source, checked)
                totals.sweep_paths.append(expand_path(group.document["path"]))
            for item, fresh in self._plan_group(group, first_index):
                if counted is not None:
                    counted.append(item)
                    if len(counted) > SORT_LIMIT:
                        counted = None
                if isinstance(item, DoneRun):
                    totals.experiments += len(item)
                    continue
                if isinstance(item, FreshRun):
                    experiments, jobs = len(item), len(item) * item.repetitions
                    totals.experiments += experiments
                    totals.experiments_to_run += experiments if jobs else 0
                    totals.jobs += jobs
                    totals.iterations_left += jobs * item.document.document["iterations"]
                    continue
                if not fresh:
                    check_experiment(item, self._source, checked)
                totals.experiments += 1
                totals.experiments_to_run += bool(item.jobs)
                totals.jobs += len(item.jobs)
                totals.iterations_left += sum(item.iterations_left(job) for job in item.jobs)
                totals.skipped += item.skipped
                totals.changed += item.state == CHANGED
                totals.rewrites += item.rewrite
                totals.quarantined.extend((f"{item.experiment.name} rep {rep}", suspicion)
                                          for rep, suspicion in item.suspicions.items() if suspicion.quarantined)
                if not isinstance(group, ExpandedDocument):
                    totals.sweep_paths.append(item.experiment.sweep_path)
        for campaign in self.campaigns:
            kind(campaign.kind).check_selection(campaign, self._selection, self._source)
            campaign.plans = [_plan_experiment(e, 0, self._selection, self._policy, None, False)
                              for e in campaign.experiments]
            for experiment, item in zip(campaign.experiments, campaign.plans):
                check_writable(experiment.path, experiment.base_name, self._source, checked)  # even with no jobs
                check_experiment(item, self._source, checked)
                totals.rewrites += item.rewrite
                totals.sweep_paths.append(experiment.sweep_path)
        totals.sweep_paths = list(dict.fromkeys(totals.sweep_paths))
        self.totals, self._counted = totals, counted

    def forget(self) -> None:
        """Plan from the files again from now on (after deletions)."""
        self._counted = None


class Jobs:
    """The jobs of a plan: their number, and the jobs themselves, possibly produced as they are taken."""

    def __init__(self, count: int, jobs: Iterable[Segment]):
        self._count, self._jobs = count, jobs

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[Segment]:
        return iter(self._jobs)


def _groups(chosen: Sequence[ExpandedExperiment]) -> list[tuple[Sequence[ExpandedExperiment], int]]:
    """The chosen experiments as (group, first job index) pairs: whole documents where that is what was
    chosen (they can be planned without looking at each experiment's folder), else one list."""
    if not isinstance(chosen, Expansion):
        return [(chosen, 0)]
    groups: list[tuple[Sequence[ExpandedExperiment], int]] = []
    first_index = 0
    for document in chosen.documents:
        groups.append((document, first_index))
        first_index += len(document) * document.document["repetitions"]
    return groups


def changed_params(stored: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """The parameter names whose values differ between two params dicts, compared as stored: NaN equals
    NaN and a set equals itself whatever its order, so an unchanged config never counts as changed."""
    stored, current = to_plain(stored), to_plain(current)
    if json.dumps(stored, sort_keys=True, default=repr) == json.dumps(current, sort_keys=True, default=repr):
        return []  # the common case, in one comparison (equal texts: equal at every path)
    old, new = flatten_paths(stored), flatten_paths(current)
    return sorted(dotted(path) for path in old.keys() | new.keys()
                  if _canonical(old.get(path, ...)) != _canonical(new.get(path, ...)))


def _canonical(value: Any) -> str:
    return "<missing>" if value is ... else json.dumps(value, sort_keys=True, default=repr)


def make_plan(expanded: Sequence[ExpandedExperiment], selection: Selection, policy: Policy,
              source: str) -> Plan:
    """Build and validate the plan without writing anything.

    Everything a run would refuse is refused here, before `apply_plan` writes: a bad selection, a
    deletion through a symbolic link, a folder that cannot be created, a config.yml that is not ours."""
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
    total = (sum(len(d) * d.document["repetitions"] for d in chosen.documents) if isinstance(chosen, Expansion)
             else sum(e.repetitions for e in chosen))
    plan = Plan(chosen, selection, policy, selection.job_indices(total), source)
    plan.count()
    if selection.repetition is not None and not plan.totals.jobs and plan.totals.skipped < plan.totals.experiments:
        raise ConfigError(f"-r/--repetition: no selected experiment has repetition {selection.repetition}")
    return plan


def _plan_experiment(experiment: ExpandedExperiment, first_index: int, selection: Selection,
                     policy: Policy, picked: range | None, fresh: bool,
                     attempts: AttemptIndex | None = None,
                     store: ExperimentStore | CompactExperimentStore | SummaryExperiment | None = None,
                     ) -> ExperimentPlan:
    """One experiment's state and jobs; `fresh`: its document's folder does not exist, so neither do its files.
    `attempts`: its sweep folder's attempts journals (a quarantined repetition runs only with --retry-failed,
    or when -r names it). `store`: where it is read from (a compact store's index), else its own store."""
    store = store if store is not None else store_of(experiment)
    stored = None if fresh else store.read_config(own=True)
    original_done: set[int] = set()
    if not fresh and store.has_original_results():  # the original ClusterWork ran it: its finished repetitions count
        from .original_format import finished_repetitions, read_experiment_config

        original_done = finished_repetitions(experiment.path, experiment.iterations)
        if stored is None:
            stored = read_experiment_config(experiment.path)
    changed = changed_params(stored.get("params") or {}, experiment.params) if stored else []
    rewrite = policy.delete or (bool(changed) and policy.overwrite)
    states: dict[int, RepetitionState] = {}
    times: dict[int, float] = {}
    saved: dict[int, int] = {}
    suspicions: dict[int, Suspicion] = {}
    if stored is not None and not rewrite:  # a new experiment has no files to look at
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
    # parameters and stores them, once: its first job replaces the old config
    config = {NEW: ConfigWrite.IF_MISSING, CHANGED: ConfigWrite.REPLACE}.get(state, ConfigWrite.KEEP)
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
    (DoneRuns' are not planned one by one), else those of `plans`."""
    if known is None:
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
    """Delete what -d/-o asked to delete and freeze custom points (configs are written by each experiment's
    first job); fold the attempts journals of finished runs, forgetting those of deleted experiments."""
    plan.freeze_designs()
    deleted: dict[str, set[str]] = {}  # sweep folder -> names of the experiments deleted there
    for campaign in plan.campaigns if plan.totals.rewrites else ():
        if any(item.rewrite for item in campaign.plans):
            kind(campaign.kind).forget(campaign, warn)  # what it keeps beside its experiments first
    campaigns = (item for campaign in plan.campaigns for item in campaign.plans)
    for item in itertools.chain(plan.experiments, campaigns) if plan.totals.rewrites else ():
        if not item.rewrite or item.skipped:
            continue
        left = store_of(item.experiment).delete()
        deleted.setdefault(item.experiment.sweep_path, set()).add(item.experiment.name)
        if left:
            shown = ", ".join(left[:5]) + (f" and {len(left) - 5} more" if len(left) > 5 else "")
            warn(f"{item.experiment.name}: -d/-o kept what cluster_work did not write: {shown}")
    for sweep_path in plan.totals.sweep_paths:
        compact(sweep_path, forget=frozenset(deleted.get(sweep_path, ())))
    if plan.totals.rewrites:
        plan.forget()



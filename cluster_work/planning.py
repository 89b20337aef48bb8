"""Deciding what a run does: which experiments are selected, which repetitions are left, what changed.

Planning only reads the store; `apply_plan` is the one place that writes (deletions), and it runs only
after the whole plan was validated. Each experiment's config is written by its first job.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .attempts import AttemptIndex, compact, read_index
from .compact_store import is_compact, store_of
from .config import dotted, flatten_paths
from .errors import ConfigError
from .expansion import ExpandedDocument, ExpandedExperiment, Expansion, expand_path
from .kinds import campaign_key, kind
from .preflight import check_document_layout, check_experiment, check_writable
from .repetition_state import read_repetition
from .selection import Policy, Selection, select_experiments
from .store import to_plain, write_frozen_points
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


@dataclass(frozen=True)
class FreshRun:
    """Experiments `start` to `stop - 1` of one document, whose folders do not exist (so neither does any file
    of theirs): each is new, with every repetition a job, so the run is counted, listed and summed without
    making its experiments or looking at the disk for them (`Plan.chunks`). Only without -r and -j."""

    document: ExpandedDocument
    start: int
    stop: int
    first_index: int  # the job index of its first experiment's repetition 0

    def __len__(self) -> int:
        return self.stop - self.start

    @property
    def repetitions(self) -> int:
        """Of each of its experiments (a document's are all the same)."""
        return self.document.document["repetitions"]


Chunk = ExperimentPlan | FreshRun  # what planning yields: one experiment's plan, or a run of fresh ones


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
            yield from self.fresh_plans(chunk) if isinstance(chunk, FreshRun) else (chunk,)

    def chunks(self) -> Iterator[Chunk]:
        """The experiments' plans in config order, runs of fresh experiments as FreshRuns."""
        if self._counted is not None:
            yield from self._counted
            return
        for group, first_index in self._groups:
            yield from (chunk for chunk, _ in self._plan_group(group, first_index))

    def fresh_plans(self, run: FreshRun, start: int | None = None, stop: int | None = None,
                    ) -> Iterator[ExperimentPlan]:
        """The plans of `run`'s experiments (those from `start` to `stop - 1` of its document, else all)."""
        start, stop = run.start if start is None else start, run.stop if stop is None else stop
        for position in range(start, stop):
            yield _plan_experiment(run.document[position], run.first_index + (position - run.start) * run.repetitions,
                                   self._selection, self._policy, self._picked, True)

    def _plan_group(self, group: Sequence[ExpandedExperiment], first_index: int) -> Iterator[tuple[Chunk, bool]]:
        """Each experiment's plan, or a run of fresh ones, and whether it was fresh (its folder does not
        exist: no disk was read). A document's folder is listed once (`present_folders`), and where neither
        -r nor -j picks among its jobs, the folders missing from that list are FreshRuns."""
        present = present_folders(group)
        document_path = expand_path(group.document["path"]) if isinstance(group, ExpandedDocument) else None
        if present is not None and self._selection.repetition is None and self._picked is None:
            assert isinstance(group, ExpandedDocument) and document_path is not None
            attempts = self.attempts(document_path)
            yield from _fresh_runs(group, first_index, present,
                                   lambda experiment, index: _plan_experiment(
                                       experiment, index, self._selection, self._policy, None, False, attempts))
            return
        for experiment in group:
            fresh = present is not None and experiment.params_part not in present
            attempts = self.attempts(document_path or experiment.sweep_path) if not fresh else AttemptIndex()
            yield _plan_experiment(experiment, first_index, self._selection, self._policy, self._picked, fresh,
                                   attempts), fresh
            first_index += experiment.repetitions

    def attempts(self, sweep_path: str) -> AttemptIndex:
        """What the attempts journals of `sweep_path` say (read once per plan)."""
        index = self._attempts.get(sweep_path)
        if index is None:
            index = self._attempts[sweep_path] = read_index(sweep_path)
        return index

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
            return Jobs(self.totals.jobs, (job for item in self.experiments for job in item.jobs))
        plans = list(self.experiments)
        expected = expected_seconds(plans)
        jobs = sorted((job for plan in plans for job in plan.jobs), key=lambda job: -expected.get(job.index, 0.0))
        return Jobs(len(jobs), jobs)

    def count(self) -> None:
        """Validate every experiment and fill `totals` (raises ConfigError on what a run would refuse)."""
        totals, checked = PlanTotals(), set[str]()
        counted: list[Chunk] | None = []
        for group, first_index in self._groups:
            if isinstance(group, ExpandedDocument):
                check_writable(group.base_folder, group.base, self._source, checked)
                check_document_layout(group.document.get("store", "folders"), group.base_folder, group.base,
                                      self._source)
                totals.sweep_paths.append(expand_path(group.document["path"]))
            for item, fresh in self._plan_group(group, first_index):
                if counted is not None:
                    counted.append(item)
                    if len(counted) > SORT_LIMIT:
                        counted = None
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


def present_folders(group: Sequence[ExpandedExperiment]) -> set[str] | None:
    """For a document: the params parts of its experiments' folders that exist ('' for a document without
    grid or list), so the others are planned without a look at the disk. None: look at each one."""
    if not isinstance(group, ExpandedDocument) or is_compact(group.document):
        return None
    if not group.varies:
        return {""} if os.path.lexists(group.base_folder) else set()
    try:
        return {entry.name for entry in os.scandir(group.base_folder)}
    except (FileNotFoundError, NotADirectoryError):
        return set()


def _fresh_runs(document: ExpandedDocument, first_index: int, present: set[str],
                plan: Callable[[ExpandedExperiment, int], ExperimentPlan]) -> Iterator[tuple[Chunk, bool]]:
    """The document's experiments as FreshRuns between those whose folder is `present`, which `plan` plans
    (from the experiment and its first job index)."""
    repetitions = document.document["repetitions"]
    for start, stop, exists in folder_runs(document, present):
        if not exists:
            yield FreshRun(document, start, stop, first_index + start * repetitions), True
        for position in range(start, stop) if exists else ():
            yield plan(document[position], first_index + position * repetitions), False


def folder_runs(document: ExpandedDocument, present: set[str]) -> Iterator[tuple[int, int, bool]]:
    """The document's experiments as runs (start, stop, exists) of consecutive positions whose folders are all
    `present` (from `present_folders`), or all missing."""
    start, exists = 0, False
    for position, part in enumerate(document.folder_parts()) if present else ():
        if (part in present) != exists:
            if position > start:
                yield start, position, exists
            start, exists = position, not exists
    if start < len(document):
        yield start, len(document), exists


@dataclass
class CampaignPlan:
    """The experiments of one document that a campaign runs instead of a segment per repetition (`kind`:
    its campaign key, see `kinds`): a weighted ensemble, or a steered search. `spec`: its block's typed
    spec as validation parsed it (None: its drivers parse it, for experiments chosen one by one)."""

    kind: str
    experiments: Sequence[ExpandedExperiment]
    plans: list[ExperimentPlan] = field(default_factory=list)  # each experiment's, from `Plan.count` (-d/-o, -I)
    spec: Any = None

    @property
    def base(self) -> str:
        """The base name of its document ("" for a campaign with no experiments)."""
        return self.experiments[0].base_name if len(self.experiments) else ""


def _split_campaigns(groups: list[tuple[Sequence[ExpandedExperiment], int]],
                     ) -> tuple[list[tuple[Sequence[ExpandedExperiment], int]], list[CampaignPlan]]:
    """The plain groups, and the campaigns: whole documents with a campaign key, and, from a list of
    chosen experiments, theirs gathered by base name."""
    plain: list[tuple[Sequence[ExpandedExperiment], int]] = []
    campaigns: list[CampaignPlan] = []
    for group, first_index in groups:
        if isinstance(group, ExpandedDocument):
            key = campaign_key(group.document)
            if key is None:
                plain.append((group, first_index))
            else:
                campaigns.append(CampaignPlan(key, group, spec=group.campaign_spec))
            continue
        by_base: dict[tuple[str, str], list[ExpandedExperiment]] = {}
        rest = []
        for experiment in group:
            key = campaign_key(experiment.config)
            if key is None:
                rest.append(experiment)
            else:
                by_base.setdefault((key, experiment.base_name), []).append(experiment)
        plain.append((rest, first_index))
        campaigns.extend(CampaignPlan(key, experiments) for (key, _), experiments in by_base.items())
    return plain, campaigns


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
                     attempts: AttemptIndex | None = None) -> ExperimentPlan:
    """One experiment's state and jobs; `fresh`: its document's folder does not exist, so neither do its files.
    `attempts`: its sweep folder's attempts journals (a quarantined repetition runs only with --retry-failed,
    or when -r names it)."""
    store = store_of(experiment)
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


def warn_changed(plan: Plan, policy: Policy, warn: Any = log.warning, most: int = 20) -> None:
    """One warning per experiment whose parameters changed, `most` of them, then their number."""
    changed = 0
    for item in plan.experiments if plan.totals.changed else ():
        if item.state != CHANGED:
            continue
        changed += 1
        if changed > most:
            continue
        keys = ", ".join(item.changed_keys)
        if policy.ignore_config:
            warn(f"{item.experiment.name}: parameters changed ({keys}); resuming anyway (-I)")
        else:
            warn(f"{item.experiment.name}: skipped, its parameters changed since its results were saved "
                 f"({keys}); use -o/--overwrite to delete its results and start over, or "
                 "-I/--ignore_config to continue with the new parameters")
    if changed > most:
        warn(f"... and {changed - most} more experiments whose parameters changed")


def refuse_changed_only(plan: Plan, policy: Policy, source: str, most: int = 3) -> None:
    """Raise a ConfigError (exit 2, before anything is written) when nothing would run but experiments whose
    parameters changed since their results were saved: a rerun after an edit of the config that silently
    did nothing and exited 0 looked like a success. Where anything else runs, the skipped ones are only
    warned about (`warn_changed`) and named in the summary."""
    if policy.ignore_config or plan.totals.jobs:
        return
    skipped = [item for item in plan.experiments if item.skipped] if plan.totals.skipped else []
    for campaign in plan.campaigns:
        changed = [item for item in campaign.plans if item.skipped]
        # a campaign run as a whole is skipped by one changed experiment; another runs the others
        if not changed or (not kind(campaign.kind).runs_as_whole and len(changed) < len(campaign.plans)):
            return  # the campaign runs (or decides itself that it has nothing left)
        skipped += changed
    if not skipped:
        return
    named = "; ".join(f"{item.experiment.name}: {', '.join(item.changed_keys)}" for item in skipped[:most])
    more = f"; and {len(skipped) - most} more" if len(skipped) > most else ""
    raise ConfigError(f"{source}: nothing to run: the parameters of {len(skipped)} experiment(s) changed since "
                      f"their results were saved ({named}{more}); rerun with -o/--overwrite to delete their results "
                      "and run them from scratch, or -I/--ignore_config to continue them with the new parameters")


def warn_quarantined(plan: Plan, policy: Policy, warn: Any = log.warning, most: int = 20) -> None:
    """One warning for the quarantined repetitions (up to `most` named), at a run's start."""
    quarantined = plan.totals.quarantined
    if not quarantined:
        return
    shown = "; ".join(f"{label}: {suspicion.describe()}" for label, suspicion in quarantined[:most])
    more = f"; and {len(quarantined) - most} more" if len(quarantined) > most else ""
    if policy.retry_failed:
        warn(f"running {len(quarantined)} quarantined repetition(s) again (--retry-failed): {shown}{more}")
    else:
        warn(f"{len(quarantined)} repetition(s) quarantined, not run: {shown}{more}; "
             "run with --retry-failed to run them again")

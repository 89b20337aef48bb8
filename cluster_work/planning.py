"""Deciding what a run does: which experiments are selected, which repetitions are left, what changed.

Planning only reads the store; `apply_plan` is the one place that writes (deletions), and it runs only
after the whole plan was validated. Each experiment's config is written by its first job.
"""
from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import collector
from .attempts_index import AttemptIndex, compact, read_index
from .bulk_runs import FreshRun, NewOrDoneRun, compact_runs, fresh_runs
from .bulk_runs import folder_runs as folder_runs  # planning's names, as they were before the split
from .bulk_runs import present_folders as present_folders
from .campaign_plans import CampaignPlan as CampaignPlan
from .campaign_plans import campaign_plans, split_campaigns
from .compact_config import refresh_document_config
from .compact_index import SummaryExperiment, SummaryStore
from .compact_store import CompactExperimentStore, is_compact, store_of
from .errors import ConfigError
from .expansion import ExpandedDocument, ExpandedExperiment, Expansion, expand_path
from .experiment_plan import CHANGED, plan_experiment, sweep_mean
from .experiment_plan import ExperimentPlan as ExperimentPlan
from .experiment_plan import changed_params as changed_params
from .experiment_plan import expected_seconds as expected_seconds
from .files import StoreIO
from .folder_index import FolderIndex, indexed_runs
from .job_order import all_alike, ordered
from .kinds import kind
from .paths import compact_root
from .plan_warnings import refuse_changed_only as refuse_changed_only
from .plan_warnings import warn_changed as warn_changed
from .plan_warnings import warn_kept
from .plan_warnings import warn_quarantined as warn_quarantined
from .preflight import check_document_layout, check_experiment, check_writable
from .selection import Policy, Selection, select_experiments
from .store import ExperimentStore, write_frozen_points
from .vocabulary import Segment, Suspicion

log = logging.getLogger("cluster_work")


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

Chunk = ExperimentPlan | FreshRun | NewOrDoneRun  # what planning yields: one experiment's plan, or a run in bulk
Bulk = (FreshRun, NewOrDoneRun)


class Plan:
    """What a run does, planned lazily so that a sweep of 10^6 experiments starts at once.

    `make_plan` validates and counts in one pass (`totals`), writing nothing. A plan of up to SORT_LIMIT
    experiments keeps what that pass read (until `apply_plan` deletes something); a larger one plans again
    from the files at every look at `experiments` or `jobs`, experiment by experiment, so memory stays
    bounded. A document whose folder does not exist yet is planned without touching the disk."""

    def __init__(self, chosen: Sequence[ExpandedExperiment], selection: Selection, policy: Policy,
                 picked: range | None, source: str):
        self._selection, self._policy, self._picked, self._source = selection, policy, picked, source
        self._groups, self.campaigns = split_campaigns(_groups(chosen))
        self.totals = PlanTotals()
        self._counted: list[Chunk] | None = None  # what `count` read, where it is small enough
        self._attempts: dict[str, AttemptIndex] = {}  # per sweep folder, read once
        self._indexes: dict[str, FolderIndex] = {}  # per document folder of the default layout, loaded once
        self._indexed: dict[str, ExpandedDocument] = {}  # the documents of the default layout planned whole
        self.continued_stores: dict[str, Mapping[str, Any]] = {}  # compact store -> a config of a point with jobs

    @property
    def policy(self) -> Policy:
        """What the run was asked (-d, -o, -I, --retry-failed): `apply_plan` forgets a campaign's own files on -d
        even where none of its experiments has anything stored."""
        return self._policy

    @property
    def experiments(self) -> Iterator[ExperimentPlan]:
        """Each chosen experiment's plan, in config order (as counted, or read from the files now)."""
        for chunk in self.chunks():
            yield from self.fresh_plans(chunk) if isinstance(chunk, Bulk) else (chunk,)

    def chunks(self) -> Iterator[Chunk]:
        """The experiments' plans in config order, runs of new (or done) experiments as FreshRuns, NewOrDoneRuns."""
        if self._counted is not None:
            yield from self._counted
            return
        for group, first_index in self._groups:
            yield from (chunk for chunk, _ in self._plan_group(group, first_index))

    def fresh_plans(self, run: FreshRun | NewOrDoneRun, start: int | None = None, stop: int | None = None,
                    new: bool = False) -> Iterator[ExperimentPlan]:
        """The plans of `run`'s experiments (those from `start` to `stop - 1` of its document, else all; `new`:
        only its new ones, those with jobs)."""
        start, stop = run.start if start is None else start, run.stop if stop is None else stop
        for position in range(start, stop):
            done = run.done_at(position)
            if done and new:
                continue
            experiment = run.document[position]
            store = run.store.experiment(experiment.name, experiment.path) if isinstance(run, NewOrDoneRun) and \
                done else None
            yield plan_experiment(experiment, run.first_index + (position - run.start) * run.repetitions,
                                   self._selection, self._policy, self._picked, not done, store=store)

    def _plan_group(self, group: Sequence[ExpandedExperiment], first_index: int) -> Iterator[tuple[Chunk, bool]]:
        """Each experiment's plan, or a run of fresh ones, and whether it was fresh (its folder does not
        exist: no disk was read). A document's folder is listed once (`present_folders`), and where neither
        -r nor -j picks among its jobs, the folders missing from that list are FreshRuns. A compact store is
        read through its index (`SummaryStore`), once per pass; its new and done experiments are NewOrDoneRuns. So
        are those of a whole document of the default layout whose folder index says so (`folder_index`, except
        with -d)."""
        present = present_folders(group)
        document_path = expand_path(group.document["path"]) if isinstance(group, ExpandedDocument) else None
        summaries: dict[str, SummaryStore] = {}
        whole = isinstance(group, ExpandedDocument) and self._selection.repetition is None and self._picked is None
        folders = None  # the document's folder index, where it is planned whole
        if whole and present is not None and isinstance(group, ExpandedDocument) and group.varies:
            self._indexed[group.base_folder] = group
            if present and not self._policy.delete:
                folders = self._indexes.get(group.base_folder) or self._indexes.setdefault(
                    group.base_folder, FolderIndex.load(group, present))

        def store(experiment: ExpandedExperiment) -> ExperimentStore | CompactExperimentStore | SummaryExperiment:
            if experiment.store != "compact":
                return folders.store(experiment) if folders is not None else store_of(experiment)
            root = compact_root(experiment.config["_experiment_path"])
            found = summaries.get(root) or summaries.setdefault(root, SummaryStore(root, check_locks=False))
            return found.experiment(experiment.name, experiment.path)

        def plan(experiment: ExpandedExperiment, index: int) -> ExperimentPlan:
            return plan_experiment(experiment, index, self._selection, self._policy, None, False, attempts,
                                    store(experiment))

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
            yield from (indexed_runs(group, first_index, present, folders, plan) if folders is not None
                        else fresh_runs(group, first_index, present, plan))
            return
        for experiment in group:
            fresh = present is not None and experiment.params_part not in present
            attempts = self.attempts(document_path or experiment.sweep_path) if not fresh else AttemptIndex()
            yield plan_experiment(experiment, first_index, self._selection, self._policy, self._picked, fresh,
                                   attempts, None if fresh else store(experiment)), fresh
            first_index += experiment.repetitions

    def attempts(self, sweep_path: str) -> AttemptIndex:
        """What the attempts journals of `sweep_path` say (read once per plan)."""
        index = self._attempts.get(sweep_path)
        if index is None:
            index = self._attempts[sweep_path] = read_index(sweep_path)
        return index

    def compact_roots(self) -> list[str]:
        """The folders of the compact stores the plan's experiments are in (whole documents only, campaigns' too:
        experiments chosen one by one are few), for their indexes (`compact_index.refresh`)."""
        documents = [group for group, _ in self._groups] + [campaign.experiments for campaign in self.campaigns]
        return [compact_root(group.base_folder) for group in documents
                if isinstance(group, ExpandedDocument) and is_compact(group.document)]

    def write_indexes(self) -> None:
        """Write what this plan read of the default layout's experiment folders into their documents' indexes
        (`folder_index`; a run only: planning itself writes nothing)."""
        for index in self._indexes.values():
            index.write()

    def indexed_documents(self) -> list[ExpandedDocument]:
        """The documents of the default layout planned whole (neither -r nor -j: a run of part of a document
        leaves its index to the next whole one), for `folder_index.refresh` at the end of a run."""
        return list(self._indexed.values())

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
        iteration times), so that a long job does not start last and stretch the makespan. A run's new
        experiments are planned only as their jobs are taken (`job_order`): all of a run's jobs are expected the
        same, so it sorts as one; where only runs of one number of iterations have jobs, config order, without
        reading what was measured."""
        if self.totals.jobs > SORT_LIMIT:
            streamed = (plan for chunk in self.chunks()  # (a done experiment has no jobs)
                        for plan in (self.fresh_plans(chunk, new=True) if isinstance(chunk, Bulk) else (chunk,)))
            return Jobs(self.totals.jobs, (job for item in streamed for job in item.jobs))
        chunks = list(self.chunks())
        order = [chunk for chunk in chunks if (chunk.new if isinstance(chunk, Bulk) else chunk.jobs)]  # with jobs
        if all_alike(order):
            return Jobs(*ordered(order, {}, None, self._new_jobs))  # whatever was measured: config order
        known: list[float] = []  # every measured mean iteration time, in config order
        for chunk in chunks:
            if isinstance(chunk, NewOrDoneRun):
                known.extend(chunk.iteration_times())  # (a new experiment has none)
            elif not isinstance(chunk, Bulk):
                known.extend(chunk.iteration_times.values())
        plans = [item for item in order if isinstance(item, ExperimentPlan)]
        return Jobs(*ordered(order, expected_seconds(plans, known), sweep_mean(known), self._new_jobs))

    def _new_jobs(self, entry: Segment | FreshRun | NewOrDoneRun) -> Iterator[Segment]:
        """A job alone, or the jobs of a run's new experiments (planned now), in config order."""
        if not isinstance(entry, Bulk):
            return iter((entry,))
        return (job for plan in self.fresh_plans(entry, new=True) for job in plan.jobs)

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
                if isinstance(item, Bulk):
                    new, jobs = item.new, item.new * item.repetitions
                    if jobs and is_compact(item.document.document):
                        document = item.document
                        self.continued_stores.setdefault(compact_root(document.base_folder), document.document)
                    totals.experiments += len(item)
                    totals.experiments_to_run += new if jobs else 0
                    totals.jobs += jobs
                    totals.iterations_left += jobs * item.document.document["iterations"]
                    continue
                if not fresh:
                    check_experiment(item, self._source, checked)
                if item.jobs and item.experiment.store == "compact":
                    self.continued_stores.setdefault(compact_root(item.experiment.config["_experiment_path"]),
                                                     item.experiment.config)
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
            campaign.plans = []
            whole = campaign.experiments if isinstance(campaign.experiments, ExpandedDocument) else None
            if whole is not None:  # (what a plain document's experiments planned in bulk are checked by)
                check_writable(whole.base_folder, whole.base, self._source, checked)
                check_document_layout(whole.document.get("store", "folders"), whole.base_folder, whole.base,
                                      self._source)
                totals.sweep_paths.append(expand_path(whole.document["path"]))
            for item, alone in campaign_plans(campaign, self._selection, self._policy):
                campaign.plans.append(item)
                totals.rewrites += item.rewrite
                if not alone:
                    continue
                experiment = item.experiment
                check_writable(experiment.path, experiment.base_name, self._source, checked)  # even with no jobs
                check_experiment(item, self._source, checked)
                if whole is None:
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
    if selection.iteration is not None:
        iterations = max((d.document["iterations"] for d in chosen.documents) if isinstance(chosen, Expansion)
                         else (e.iterations for e in chosen), default=0)
        if selection.iteration > iterations:  # (-i N restarts after iteration N - 1: N = iterations restores the end)
            raise ConfigError(f"-i/--iteration: {selection.iteration} is past the last iteration of the selected "
                              f"experiments (they run {iterations}: -i takes 0 to {iterations})")
    plan = Plan(chosen, selection, policy, selection.job_indices(total), source)
    with collector.paused():  # a 10^6-point plan's runs and entries, in no cycle: the collector's passes cost ~10%
        plan.count()
    if selection.repetition is not None and not plan.totals.jobs and plan.totals.skipped < plan.totals.experiments:
        raise ConfigError(f"-r/--repetition: no selected experiment has repetition {selection.repetition}")
    return plan


def apply_plan(plan: Plan, warn: Any = log.warning, sync: bool = True) -> None:
    """Delete what -d/-o asked to delete and freeze custom points (configs are written by each experiment's
    first job, their counts brought up to date by the jobs that continue them, see config_refresh; a compact
    store's, which its points share, here: by the launcher alone, before any job); fold the attempts journals
    of finished runs, forgetting those of deleted experiments."""
    plan.freeze_designs()
    deleted: dict[str, set[str]] = {}  # sweep folder -> names of the experiments deleted there
    kept: list[tuple[str, list[str]]] = []  # experiment, what -d/-o left in its folder (not cluster_work's)
    for campaign in plan.campaigns:  # what it keeps beside its experiments first (with -d even where none is stored)
        if plan.policy.delete or any(item.rewrite for item in campaign.plans):
            kind(campaign.kind).forget(campaign, warn)
    campaigns = (item for campaign in plan.campaigns for item in campaign.plans)
    for item in itertools.chain(plan.experiments, campaigns) if plan.totals.rewrites else ():
        if not item.rewrite or item.skipped:
            continue
        left = store_of(item.experiment).delete()
        deleted.setdefault(item.experiment.sweep_path, set()).add(item.experiment.name)
        if left:
            kept.append((item.experiment.name, left))
    warn_kept(kept, warn)
    for root, config in plan.continued_stores.items():  # after -d removed a document config: its next job writes it
        with StoreIO("write", root):
            refresh_document_config(root, config, sync)
    for sweep_path in plan.totals.sweep_paths:
        compact(sweep_path, forget=frozenset(deleted.get(sweep_path, ())))
    if plan.totals.rewrites:
        plan.forget()
    plan.write_indexes()



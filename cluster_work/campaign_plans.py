"""The campaigns of a plan: documents (or chosen experiments) with a campaign key, which a campaign kind runs as
it decides instead of a job per repetition (see `kinds`), and their experiments' plans (`campaign_plans`)."""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .bulk_runs import FreshRun, NewOrDoneRun, compact_runs
from .compact_index import SummaryStore
from .compact_store import is_compact
from .expansion import ExpandedDocument, ExpandedExperiment
from .experiment_plan import ExperimentPlan, plan_experiment
from .kinds import campaign_key
from .paths import compact_root

if TYPE_CHECKING:
    from .selection import Policy, Selection


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


def split_campaigns(groups: list[tuple[Sequence[ExpandedExperiment], int]],
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


def campaign_plans(campaign: CampaignPlan, selection: Selection, policy: Policy,
                   ) -> Iterator[tuple[ExperimentPlan, bool]]:
    """Each of the campaign's experiments' plans, in order, as `plan_experiment` makes it alone (jobs numbered from
    0: a campaign numbers its own; no attempts journal: a campaign runs what it decides), and whether it was
    planned alone (its folder to be checked: `check_experiment`). A whole document of a compact store is planned
    as a plain one is (`compact_runs`, through its index): its new experiments without a look at the disk, its
    done ones from the index, each other one alone; so a campaign of 10^5 points costs its index, not 10^5
    reads of the store."""
    group = campaign.experiments
    if not (isinstance(group, ExpandedDocument) and is_compact(group.document) and not policy.delete
            and selection.repetition is None and not selection.jobs):
        yield from ((plan_experiment(experiment, 0, selection, policy, None, False), True) for experiment in group)
        return
    known = SummaryStore(compact_root(group.base_folder), check_locks=False)

    def alone(experiment: ExpandedExperiment, first_index: int) -> ExperimentPlan:
        return plan_experiment(experiment, 0, selection, policy, None, False,
                               store=known.experiment(experiment.name, experiment.path))

    for chunk, _ in compact_runs(group, 0, known, alone):
        if not isinstance(chunk, (FreshRun, NewOrDoneRun)):
            yield chunk, True
            continue
        for position in range(chunk.start, chunk.stop):  # (a new one's store is not read: given, it is not made)
            experiment, done = group[position], chunk.done_at(position)
            yield plan_experiment(experiment, 0, selection, policy, None, not done,
                                  store=known.experiment(experiment.name, experiment.path), unchanged=done), False

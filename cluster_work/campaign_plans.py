"""The campaigns of a plan: documents (or chosen experiments) with a campaign key, which a campaign kind runs as
it decides instead of a job per repetition (see `kinds`)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .expansion import ExpandedDocument, ExpandedExperiment
from .kinds import campaign_key

if TYPE_CHECKING:
    from .planning import ExperimentPlan


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

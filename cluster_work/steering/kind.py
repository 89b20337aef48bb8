"""The steered campaign as a campaign kind (`kinds.CampaignKind`, key `steer`): one campaign per whole
document, run as a whole by one `campaign.SteeredCampaign`; -p shows its journal's figures, and its
row in the progress table counts the iterations its decisions still plan.

Light to import (the registry imports it wherever a config has a `steer:` block): what it needs of the
steering package is imported where it is used."""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..kinds import CampaignKind

if TYPE_CHECKING:
    from rich.table import Table

    from ..expansion import ExpandedDocument, ExpandedExperiment
    from ..planning import CampaignPlan, Selection
    from ..progress_figures import ExperimentProgress
    from ..sweep import CampaignDriver
    from ..vocabulary import ConfigSource, RunSettings
    from .spec import SteerSpec


class SteeredKind(CampaignKind):
    key, label = "steer", "steered"
    runs_as_whole = True  # its decisions were made from every repetition's rows
    progress_json_key = "campaigns"
    stops_repetitions = True

    def check_document(self, experiment: Mapping[str, Any], source: ConfigSource) -> SteerSpec:
        from .spec import check_steered_document  # a user's policy class is loaded here: a typo is a config error

        return check_steered_document(experiment, source)

    def check_selection(self, campaign: CampaignPlan, selection: Selection, source: str) -> None:
        from .campaign import check_selection

        check_selection(campaign, selection, source)

    def forget(self, campaign: CampaignPlan, warn: Callable[[str], Any]) -> None:
        from .campaign import forget_campaign  # its journal first, then its experiments

        forget_campaign(campaign, warn)

    def drivers(self, campaign: CampaignPlan, settings: RunSettings, workers: int) -> list[CampaignDriver]:
        from .campaign import drivers

        return list(drivers(campaign, settings, workers))

    def progress_units(self, experiments: Sequence[ExpandedExperiment]) -> list[ExpandedDocument]:
        """The whole documents with a `steer:` block among `experiments` (a campaign is shown only as a whole)."""
        return [document for document in getattr(experiments, "documents", ()) if self.key in document.document]

    def planned(self, units: Sequence[ExpandedDocument], bases: Mapping[str, ExperimentProgress],
                sweep_mean: float | None) -> dict[str, ExperimentProgress]:
        """A campaign's row counts what its policy planned (its journal says), not every iteration of its
        grid: a finished campaign is done."""
        return {document.base: _as_planned(bases[document.base], document, sweep_mean)
                for document in units if document.base in bases}

    def progress_table(self, units: Sequence[ExpandedDocument], means: Mapping[str, float | None]) -> Table:
        from .progress import campaigns_table

        return campaigns_table(units, means)

    def progress_figures(self, units: Sequence[ExpandedDocument]) -> list[dict[str, Any]]:
        from .progress import campaign_progress

        return [campaign_progress(document) for document in units]


def _as_planned(row: ExperimentProgress, document: ExpandedDocument, sweep_mean: float | None) -> ExperimentProgress:
    """A steered campaign's row: its iterations done, and those its decisions still plan."""
    from .progress import campaign_progress

    figures = campaign_progress(document)
    if "error" in figures:
        return row
    planned, mean = figures["planned_iterations"], row.mean_iteration_time or sweep_mean
    return dataclasses.replace(row, iterations=row.iterations_done + planned, iterations_unmeasured=0,
                               work_left=planned * mean if mean is not None else (None if planned else 0.0))


KIND = SteeredKind()

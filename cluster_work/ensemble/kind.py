"""The weighted ensemble as a campaign kind (`kinds.CampaignKind`, key `ensemble`): one
`campaign.EnsembleCampaign` per expanded experiment, each with its own store; -p shows them in a table of
their own (their progress is iterations of walkers, not of repetitions).

Light to import (the registry imports it wherever a config has an `ensemble:` block): numpy comes with
what it uses, imported where it is used."""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..expansion import Expansion
from ..kinds import CampaignKind

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from ..expansion import ExpandedExperiment
    from ..planning import CampaignPlan
    from ..sweep import CampaignDriver
    from ..vocabulary import ConfigSource, RunSettings
    from .spec import EnsembleSpec


class EnsembleKind(CampaignKind):
    key, label = "ensemble", "weighted-ensemble"
    own_progress_rows = True
    progress_json_key = "ensembles"

    def prepare(self, experiment: dict[str, Any], document: Mapping[str, Any]) -> None:
        if "repetitions" not in document:
            experiment["repetitions"] = 1  # its only legal value (walkers are its repetitions), whatever DEFAULT says

    def check_document(self, experiment: Mapping[str, Any], source: ConfigSource) -> EnsembleSpec:
        from .spec import check_ensemble_document

        return check_ensemble_document(experiment, source)

    def check_experiment_class(self, experiment_class: type, documents: Sequence[Mapping[str, Any]],
                               source: ConfigSource) -> None:
        from .campaign import check_experiment_class

        check_experiment_class(experiment_class, documents, source)

    def forget(self, campaign: CampaignPlan, warn: Callable[[str], Any]) -> None:
        """-d/-o: the ensemble files of the experiments about to be deleted (theirs only: a file that
        cluster_work did not write stays, and so its folder), so that the store's delete finds their folders
        as plain ones."""
        from .store import delete_ensemble

        for item in campaign.plans:
            if item.rewrite and not item.skipped:
                delete_ensemble(item.experiment.path)

    def drivers(self, campaign: CampaignPlan, settings: RunSettings, workers: int) -> list[CampaignDriver]:
        from .campaign import drivers

        return list(drivers(campaign, settings, workers))

    def progress_units(self, experiments: Sequence[ExpandedExperiment]) -> list[ExpandedExperiment]:
        """The ensembles among `experiments` (a whole document's experiments are if the document is one)."""
        if isinstance(experiments, Expansion):
            return [e for document in experiments.documents if self.key in document.document for e in document]
        return [experiment for experiment in experiments if self.key in experiment.config]

    def progress_table(self, units: Sequence[ExpandedExperiment], means: Mapping[str, float | None]) -> Table:
        from .progress import ensembles_table

        return ensembles_table(units)

    def progress_figures(self, units: Sequence[ExpandedExperiment]) -> list[dict[str, Any]]:
        from .progress import ensembles_progress

        return ensembles_progress(units)

    def own_rows(self, experiment_path: str) -> pd.DataFrame | None:
        """Every (iteration, walker) of the folder's ensemble (`analysis.ensemble_rows`)."""
        from .analysis import ensemble_rows

        return ensemble_rows(experiment_path)


KIND = EnsembleKind()

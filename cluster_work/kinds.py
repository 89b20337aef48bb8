"""Campaign kinds as plug-ins: what a document with a campaign block (`steer:`, `ensemble:`) means at each
step of a run, behind one interface (`CampaignKind`), registered in one table (`KIND_MODULES`).

A plain document runs a segment per repetition; a document with a campaign key is run by its kind's
drivers instead (`campaign.drive` runs both side by side). The core names no kind: it asks this
registry, at each step, the kinds a config has:

    config      `prepare` the merged document, `check_document` its block (to a typed spec)
    cli         `check_experiment_class`: can the class run it (before anything is written)
    planning    `check_selection` (-e/-r/-i/-j), `runs_as_whole` (-o and changed parameters),
                `forget` (-d/-o: what the kind keeps beside its experiments)
    sweep       `drivers`: what runs it
    reporting   `label` (--list --json), `progress_units`, `planned`, `progress_table`,
                `progress_figures` (-p, -p --json); the summary lines are the drivers' own
    results     `stops_repetitions`: whether its repetitions' statuses say why they stopped; `own_rows`:
                the rows it keeps beside its repetitions' (load_results)

A kind's module is imported only where a config has its key (numpy only where a sweep has an
ensemble), by its name in `KIND_MODULES`, and it imports the core, never the other way round. Adding a
kind: a module with a `KIND` (a `CampaignKind`), and its line in `KIND_MODULES`.

This module imports nothing of the package, so that every layer may ask it (config at the bottom, the
run's drivers above) without a cycle: the core's types in its signatures are named in words (`campaign`:
a `planning.CampaignPlan`, `selection`: a `selection.Selection`, `experiments`: expanded experiments, a
driver: a `sweep.CampaignDriver`, a row: a `reporting.ExperimentProgress`); each kind's own module
states them as types.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from .vocabulary import ConfigSource

# a document with one of these keys is run by that kind's drivers; the order is the one of checks and reports
KIND_MODULES: dict[str, str] = {"ensemble": "cluster_work.ensemble.kind", "steer": "cluster_work.steering.kind"}
CAMPAIGN_KEYS = tuple(KIND_MODULES)


class CampaignKind:
    """One kind of campaign (see the module docstring); the defaults are those of a kind that needs nothing
    at that step."""

    key: str = ""  # its block's key in an experiment document
    label: str = ""  # its name in --list --json
    runs_as_whole: bool = False  # one experiment skipped (changed parameters) skips the whole campaign
    own_progress_rows: bool = False  # its experiments leave the plain progress table for its own
    progress_json_key: str = ""  # where -p --json puts its `progress_figures`
    stops_repetitions: bool = False  # its repetitions' statuses may say why they were stopped

    def prepare(self, experiment: dict[str, Any], document: Mapping[str, Any]) -> None:
        """Complete the merged `experiment` (of the user's `document`) with what the kind implies, before
        it is validated."""

    def check_document(self, experiment: Mapping[str, Any], source: ConfigSource) -> Any:
        """Validate the document's block (ConfigError: one line naming the file and key); its typed spec."""
        raise NotImplementedError

    def check_experiment_class(self, experiment_class: type, documents: Sequence[Mapping[str, Any]],
                               source: ConfigSource) -> None:
        """Refuse (ConfigError) a class that cannot run the kind's `documents` (those with its key)."""

    def check_selection(self, campaign: Any, selection: Any, source: str) -> None:
        """Refuse (ConfigError, before anything is written) a selection that the campaign cannot run."""

    def forget(self, campaign: Any, warn: Callable[[str], Any]) -> None:
        """-d/-o, before its experiments are deleted: remove what the kind keeps beside them."""

    def drivers(self, campaign: Any, settings: Any, workers: int) -> list[Any]:
        """What runs the campaign (see `campaign.Driver`)."""
        raise NotImplementedError

    def progress_units(self, experiments: Sequence[Any]) -> list[Any]:
        """What -p reports of the kind among `experiments` (experiments, or whole documents)."""
        return []

    def planned(self, units: Sequence[Any], bases: Mapping[str, Any],
                sweep_mean: float | None) -> dict[str, Any]:
        """The rows of the progress table (by base name) that the kind's plans replace."""
        return {}

    def progress_table(self, units: Sequence[Any], means: Mapping[str, float | None]) -> Table:
        """-p: the kind's own table (`means`: the mean iteration time of each base experiment)."""
        raise NotImplementedError

    def progress_figures(self, units: Sequence[Any]) -> list[dict[str, Any]]:
        """-p --json: the figures of each unit."""
        return []

    def own_rows(self, experiment_path: str) -> Any:
        """load_results: the rows the kind keeps of its own in an experiment's folder, beside its repetitions'
        (a pandas DataFrame whose first columns are `rep` and `iteration`), or None where it keeps none."""
        return None


def kind(key: str) -> CampaignKind:
    """The kind registered for `key` (its module imported now, at the first use)."""
    kind_: CampaignKind = importlib.import_module(KIND_MODULES[key]).KIND
    return kind_


def campaign_key(document: Mapping[str, Any]) -> str | None:
    """The campaign key of a document or config, or None for a plain one."""
    return next((key for key in CAMPAIGN_KEYS if key in document), None)


def kinds_in(documents: Iterable[Mapping[str, Any]]) -> list[CampaignKind]:
    """The kinds that some of `documents` (configs) have, in the order of `KIND_MODULES`."""
    present: set[str] = set()
    for document in documents:
        present.update(key for key in CAMPAIGN_KEYS if key in document)
    return [kind(key) for key in CAMPAIGN_KEYS if key in present]

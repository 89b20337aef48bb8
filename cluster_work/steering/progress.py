"""What a steered campaign's files say, for people and scripts: -p's Campaigns table (`campaigns_table`,
`campaign_progress` for -p --json), and why repetitions stopped (`stop_reasons`, as
`cluster_work.stop_reasons`).

The figures come from replaying the campaign's journal read-only (a `Steering` that is never started
writes nothing), so they are the campaign's own: stops per rung, and the iterations it still plans
(an upper bound where survival is unknown), safe to read while a run appends to the journal.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..compact_catalog import find_catalogs
from ..display import format_seconds
from ..store import find_experiment_folders
from ..vocabulary import Record
from .actions import SteeringError
from .core import Steering
from .journal import Journal, journal_path
from .spec import check_steer_block

if TYPE_CHECKING:
    from rich.table import Table

    from ..expansion import ExpandedDocument


def campaign_progress(document: ExpandedDocument, restores: bool = True) -> dict[str, Any]:
    """The figures of `document`'s campaign from its journal (`error`: why they cannot be had)."""
    spec = document.campaign_spec or check_steer_block(document.document["steer"], document.source, document.base)
    path = journal_path(document.base_folder)
    figures: dict[str, Any] = {"campaign": document.base, "policy": spec.policy, "started": os.path.isfile(path)}
    try:
        steering = Steering(spec, document, Journal(path, sync=False))
    except SteeringError as exc:  # a journal of another config, or a policy that raises: say so, show the rest
        return {**figures, "error": str(exc)}
    tally = steering.tally()
    best = steering.best()
    stops: dict[int, int] = {}
    for rung in steering.rungs():
        stops[rung["iteration"]] = stops.get(rung["iteration"], 0) + rung["stopped"]
    return {**figures, "experiments": steering.experiment_count(),
            "added": steering.point_count() - steering.configured_count(),
            **{state: tally[state] for state in ("finished", "stopped", "failed")},
            "stopped_per_rung": {str(iteration): count for iteration, count in sorted(stops.items())},
            "planned_iterations": steering.planned_iterations(restores),
            "done": steering.finished and not steering.jobs(),
            "best": {"experiment": best[0], "metric": spec.metric, "value": best[1]} if best else None}


def campaigns_table(documents: Sequence[ExpandedDocument], mean_seconds: Mapping[str, float | None]) -> Table:
    """-p: one row per steered document; `mean_seconds`: each one's mean iteration time (for the work left)."""
    from rich.table import Table

    table = Table(title="Campaigns (from their journals)", title_justify="left")
    for column in ("campaign", "policy", "experiments", "finished", "stopped", "stopped after (iterations: count)",
                   "planned iterations left", "work left", "best"):
        table.add_column(column, overflow="fold")
    for document in documents:
        figures = campaign_progress(document)
        if "error" in figures:
            table.add_row(document.base, figures["policy"], "-", "-", "-", figures["error"], "-", "-", "-")
            continue
        planned, mean = figures["planned_iterations"], mean_seconds.get(document.base)
        best = figures["best"]
        table.add_row(document.base, figures["policy"],
                      f"{figures['experiments']}" + (f" ({figures['added']} added)" if figures["added"] else ""),
                      str(figures["finished"]), str(figures["stopped"]),
                      " ".join(f"{i}: {n}" for i, n in figures["stopped_per_rung"].items()) or "-", str(planned),
                      format_seconds(planned * mean if mean is not None else (0.0 if not planned else None)),
                      f"{best['experiment']} ({best['metric']} {best['value']:.6g})" if best else "-")
    return table


def stop_reasons(path: str | os.PathLike[str]) -> dict[tuple[str, int], str]:
    """Why each stopped repetition below `path` (a sweep folder or a config file, as for `load_results`) was
    stopped: {(experiment, rep): reason}, e.g. `{("search__c4", 0): "successive halving: loss 12 after 1
    iteration ranks 40 of 81; the best 27 go on"}`. Repetitions no campaign stopped are not in it. A path
    that is neither a config nor a folder raises ResultsNotFoundError, as for `load_results`."""
    from ..results import _sweep_folders

    reasons = {}
    for folder in _sweep_folders(path):
        for store in find_experiment_folders(folder):
            name = (store.read_config() or {}).get("name", os.path.basename(store.path))
            for rep in store.repetition_numbers():
                status = store.repetition(rep).read_status()
                if status.get("state") == Record.STOPPED.value:
                    reasons[(name, rep)] = str(status.get("reason", ""))
        for _, compact in find_catalogs(folder):  # compact stores (`store: compact`): statuses in their segments
            for name, reps in compact.experiments().items():
                for rep in reps:
                    saved = compact.repetition(name, rep).status
                    if saved is not None and saved[1].get("state") == Record.STOPPED.value:
                        reasons[(name, rep)] = str(saved[1].get("reason", ""))
    return reasons

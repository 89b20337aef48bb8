"""What `-p` shows of weighted ensembles (a table of their own, after the progress table of the plain
experiments): per ensemble its state, iteration, walkers, occupied bins and flux, from the last committed
iteration only (safe while a run appends)."""
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.table import Table

from .analysis import ensemble_progress
from .store import ensemble_running

if TYPE_CHECKING:
    from ..expansion import ExpandedExperiment


def ensembles_progress(experiments: Sequence[ExpandedExperiment]) -> list[dict[str, Any]]:
    """Per ensemble (for `-p --json` too): `name`, `iterations` (to run in all), `state` (pending, partial,
    running, finished) and `ensemble_progress`'s figures."""
    rows = []
    for experiment in experiments:
        figures = ensemble_progress(experiment.path)
        done = figures["iterations_done"]
        state = ("running" if ensemble_running(experiment.path) else "finished" if done >= experiment.iterations
                 else "partial" if done else "pending")
        rows.append({"name": experiment.name, "iterations": experiment.iterations, "state": state, **figures})
    return rows


def ensembles_table(experiments: Sequence[ExpandedExperiment]) -> Table:
    table = Table(title="Weighted ensembles", title_justify="left")
    for column in ("experiment", "state", "iteration", "walkers", "occupied bins", "flux (last)",
                   "flux (mean per it.)", "flux (total)"):
        table.add_column(column, overflow="fold")
    for row in ensembles_progress(experiments):
        table.add_row(row["name"], row["state"], f"{row['iterations_done']}/{row['iterations']}", str(row["walkers"]),
                      str(row["occupied_bins"]), f"{row['flux_last']:.4g}", f"{row['flux_mean']:.4g}",
                      f"{row['flux_total']:.4g}")
    return table

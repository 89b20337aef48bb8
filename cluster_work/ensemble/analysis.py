"""Reading a weighted ensemble for analysis: a frame of every (iteration, walker) (also in load_results'),
the flux, progress.

pandas is imported inside the functions: workers import cluster_work, never pandas. States are not read.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from .store import ensemble_file, last_record, read_records

if TYPE_CHECKING:
    import pandas as pd

FIXED_COLUMNS = ("iteration", "walker", "parent", "weight", "recycled", "bin")


def load_ensemble(experiment_path: str) -> pd.DataFrame:
    """One row per committed (iteration, walker): `iteration`, `walker`, `parent` (-1: started from a
    basis state), `weight`, `recycled` (it reached the target: its weight is that iteration's flux),
    `bin`, then the columns of the rows `iterate` returned (None where a row lacks one; a row column
    named like a fixed one is left out). Empty (with the fixed columns) if nothing is committed."""
    import pandas as pd

    fixed: dict[str, list[Any]] = {name: [] for name in FIXED_COLUMNS}
    results: dict[str, list[Any]] = {}
    count = 0
    for record in read_records(experiment_path):
        walkers = record.walkers
        fixed["iteration"].extend([record.iteration] * walkers)
        fixed["walker"].extend(range(walkers))
        fixed["parent"].extend(record.parents)
        fixed["weight"].extend(record.weights)
        fixed["recycled"].extend(record.recycled)
        fixed["bin"].extend(record.bins)
        for name, values in record.columns.items():
            if name not in fixed:
                results.setdefault(name, [None] * count).extend(values)
        count += walkers
        for values in results.values():
            values.extend([None] * (count - len(values)))  # columns this iteration's rows lack
    frame = pd.DataFrame({**fixed, **results})
    return frame.astype({"iteration": "int64", "walker": "int64", "parent": "int64", "weight": "float64",
                         "recycled": "bool", "bin": "int64"})


def ensemble_rows(experiment_path: str) -> pd.DataFrame | None:
    """What load_results shows of an experiment folder's ensemble (`EnsembleKind.own_rows`): `load_ensemble`'s
    rows, with `rep` 0 (an ensemble is its experiment's one repetition); None where it holds no ensemble."""
    if not os.path.isfile(ensemble_file(experiment_path)):
        return None
    rows = load_ensemble(experiment_path)  # (its `iteration` first)
    rows.insert(0, "rep", 0, allow_duplicates=True)  # (a column of the rows may be named so too)
    return rows


def ensemble_flux(frame: pd.DataFrame) -> pd.Series:
    """The flux per iteration: the weight of the walkers recycled in it (0 where none was), indexed by
    iteration (by experiment and iteration if the frame has an `experiment` column: `load_results`' frame,
    whose rows of plain experiments, without a `walker`, are left out)."""
    if "experiment" in frame.columns and "walker" in frame.columns:
        frame = frame[frame["walker"].notna()]
    keys = [key for key in ("experiment", "iteration") if key in frame.columns]
    recycled_weight = frame["weight"].where(frame["recycled"].eq(True), 0.0)
    return recycled_weight.groupby([frame[key] for key in keys]).sum().rename("flux")


def ensemble_progress(experiment_path: str) -> dict[str, Any]:
    """What `-p` shows of an ensemble, from its last committed iteration only: `iterations_done`, the
    `walkers` of the iteration that runs next, the `occupied_bins` of the last one, the flux summed over
    the iterations so far (`flux_total`), per iteration (`flux_mean`) and of the last one (`flux_last`)."""
    record = last_record(experiment_path)
    if record is None:
        return {"iterations_done": 0, "walkers": 0, "occupied_bins": 0, "flux_total": 0.0, "flux_mean": 0.0,
                "flux_last": 0.0}
    done = record.iteration + 1
    return {"iterations_done": done, "walkers": len(record.next_weights), "occupied_bins": record.occupied_bins,
            "flux_total": record.flux_total, "flux_mean": record.flux_total / done, "flux_last": record.flux}

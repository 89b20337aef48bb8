"""Loading a sweep's results into one tidy pandas DataFrame."""
from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from .config import flatten_mapping, load_config
from .expansion import base_name_of
from .store import find_experiment_folders

INDEX_COLUMNS = ["experiment", "rep", "iteration"]


def resolve_folder(config_path: str | os.PathLike[str], folder: str) -> str:
    """Where a config's relative `path` (or an experiment folder below it) is found from here: the working
    folder, as a run uses; failing that, the config's folder or the nearest folder above it."""
    folder = os.path.expanduser(os.path.expandvars(folder))
    if os.path.isabs(folder) or os.path.isdir(folder):
        return folder
    return _find_above(os.path.dirname(os.path.abspath(config_path)), folder) or folder


def _sweep_folders(path: str | os.PathLike[str]) -> list[str]:
    """A config file stands for the `path` folders of its experiments (see resolve_folder); a folder for itself."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        return [path]
    return list(dict.fromkeys(resolve_folder(path, e["path"]) for e in load_config(path, warn=lambda m: None)))


def _find_above(start: str, relative: str) -> str | None:
    here = start
    while True:
        candidate = os.path.join(here, relative)
        if os.path.isdir(candidate):
            return candidate
        parent = os.path.dirname(here)
        if parent == here:
            return None
        here = parent


def load_results(path: str | os.PathLike[str], experiments: Iterable[str] | None = None,
                 params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per saved iteration of every repetition below `path` (a sweep folder or a config file).

    Columns: `experiment` (expanded name), `rep`, `iteration`, one `params.<dotted.name>` per parameter,
    then the result columns. `experiments` keeps the named experiments (base or expanded names);
    `params` keeps those whose parameters equal the given values, e.g. `{"model.width": 8}`.
    Files being appended to are read safely: each repetition shows a consistent prefix of its rows.
    """
    wanted = set(experiments) if experiments is not None else None
    rows: list[dict[str, Any]] = []
    blocks: list[dict[str, Any]] = []  # one per repetition: experiment, rep and params columns
    counts: list[int] = []
    for folder in _sweep_folders(path):
        for store in find_experiment_folders(folder):
            config = store.read_config() or {}
            name = config.get("name", os.path.basename(store.path))
            if wanted is not None and name not in wanted and base_name_of(name) not in wanted:
                continue
            flat_params = flatten_mapping(config.get("params") or {})
            if params and any(flat_params.get(k, ...) != v for k, v in params.items()):
                continue
            param_columns = {f"params.{k}": v for k, v in flat_params.items()}
            for rep in store.repetition_numbers():
                rep_rows = store.repetition(rep).read_results().rows
                if rep_rows:
                    rows.extend(rep_rows)
                    blocks.append({"experiment": name, "rep": rep, **param_columns})
                    counts.append(len(rep_rows))
    if not rows:
        return pd.DataFrame(columns=INDEX_COLUMNS)
    meta = pd.DataFrame.from_records(blocks)
    meta = meta.loc[meta.index.repeat(counts)].reset_index(drop=True)
    results = pd.DataFrame.from_records(rows)
    meta.insert(2, "iteration", results.pop("iteration").astype("int64"))
    return pd.concat([meta, results], axis=1)


def summary(frame: pd.DataFrame, column: str, mode: str = "max") -> pd.DataFrame:
    """One row per expanded experiment: mean, std, best and worst of `column` at each repetition's last
    saved iteration, with the number of repetitions and that iteration. `mode` says what best is."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    if column not in frame:
        raise KeyError(f"no result column {column!r}; columns: {', '.join(map(str, frame.columns))}")
    last = frame.sort_values("iteration").groupby(["experiment", "rep"], sort=False).tail(1)
    grouped = last.groupby("experiment")[column]
    table = pd.DataFrame({"repetitions": grouped.size(), "iteration": last.groupby("experiment").iteration.max(),
                          "mean": grouped.mean(), "std": grouped.std(ddof=1),
                          "best": grouped.max() if mode == "max" else grouped.min(),
                          "worst": grouped.min() if mode == "max" else grouped.max()})
    return table.sort_values("mean", ascending=mode == "min")

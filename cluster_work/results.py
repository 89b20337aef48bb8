"""Loading a sweep's results into one tidy pandas DataFrame, from cluster_work's files or the original's.

An experiment folder may hold both: the original's finished repetitions beside the ones cluster_work ran
later. Per repetition, cluster_work's rows win where it saved any; else the original's rep file counts.
"""
from __future__ import annotations

import errno
import itertools
import os
import warnings
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from . import original_format
from .arrow_rows import start_reader as _fast_reader
from .compact_catalog import find_catalogs
from .compact_store import CompactExperimentStore, find_compact
from .config import flatten_mapping, load_config
from .errors import ResultsNotFoundError
from .kinds import campaign_key, kind
from .paths import CONFIG_FILE
from .store import ExperimentStore, find_experiment_folders, parse_results, repetition_numbers_in
from .vocabulary import Record

if TYPE_CHECKING:  # pandas is imported where a frame is made: `import cluster_work` and its workers need none
    import pandas as pd

INDEX_COLUMNS = ["experiment", "rep", "iteration"]


def resolve_folder(config_path: str | os.PathLike[str], folder: str) -> str:
    """Where a config's relative `path` (or an experiment folder below it) is found from here: the working
    folder, as a run uses; failing that, the config's folder or the nearest folder above it."""
    folder = os.path.expanduser(os.path.expandvars(folder))
    if os.path.isabs(folder) or os.path.isdir(folder):
        return folder
    return _find_above(os.path.dirname(os.path.abspath(config_path)), folder) or folder


def _sweep_folders(path: str | os.PathLike[str]) -> list[str]:
    """A config file stands for the `path` folders of its experiments (see resolve_folder); a folder for itself.
    A path that is neither is a ResultsNotFoundError: a typo must not read as a sweep without results."""
    path = os.fspath(path)
    if os.path.isdir(path):
        return [path]
    if not os.path.isfile(path):
        raise ResultsNotFoundError(errno.ENOENT, "no such config file or results folder", path)
    documents = load_config(path, warn=lambda m: None, keep_unknown_tags=True)
    return list(dict.fromkeys(resolve_folder(path, e["path"]) for e in documents))


def _warn_nothing_found(path: str | os.PathLike[str], folders: list[str]) -> None:
    """An existing config or folder below which no experiment saved anything yet: an empty frame, said aloud."""
    if os.path.isdir(path):
        message = f"{os.fspath(path)}: no experiment folders in it (no sweep has saved results there yet)"
    else:
        message = f"{os.fspath(path)}: no results yet in {', '.join(folders)} (has its sweep run?)"
    warnings.warn(message, stacklevel=3)


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
    `stop_reason` where a steered campaign stopped a repetition (why; missing for the others), then the
    result columns. `experiments` keeps the named experiments (base or expanded names);
    `params` keeps those whose parameters equal the given values, e.g. `{"model.width": 8}`.
    Files being appended to are read safely: each repetition shows a consistent prefix of its rows.
    A path that is neither a config file nor a folder raises ResultsNotFoundError (a FileNotFoundError);
    a config or folder with no experiment folders yet gives an empty frame and a warning.
    A weighted ensemble has one row per (iteration, walker), see `ensemble.analysis.with_ensembles`.
    """
    import pandas as pd

    from .ensemble.analysis import with_ensembles

    wanted = set(experiments) if experiments is not None else None
    chunks: list[bytes | list[dict[str, Any]]] = []  # per repetition: our lines, or the original's rows
    blocks: list[dict[str, Any]] = []  # one per repetition: experiment, rep and params columns
    folders: list[tuple[str, dict[str, Any]]] = []  # each kept folder, for a weighted ensemble's rows
    sweep_folders = _sweep_folders(path)
    fast = _fast_reader()  # where pyarrow is installed, parses what was read while more is read
    found = False
    for folder in sweep_folders:
        for store in find_experiment_folders(folder):
            found = True
            config = stored_config(store.path) or {}
            name = config.get("name", os.path.basename(store.path))
            if wanted is not None and not wanted & {name, config.get("experiment_name", name)}:
                continue
            flat_params = flatten_mapping(config.get("params") or {})
            if params and any(flat_params.get(k, ...) != v for k, v in params.items()):
                continue
            param_columns = {f"params.{k}": v for k, v in flat_params.items()}
            folders.append((store.path, {"experiment": name, **param_columns}))
            key = campaign_key(config)  # only a campaign stops repetitions: only its statuses are read
            steered = key is not None and kind(key).stops_repetitions
            for rep in repetition_numbers(store.path):
                repetition = store.repetition(rep)
                chunk: bytes | list[dict[str, Any]] = repetition.read_complete_lines()
                chunk = chunk or original_format.repetition_rows(_original_log(store.path), rep)
                if chunk:
                    chunks.append(chunk)
                    fast.add(chunk)
                    blocks.append({"experiment": name, "rep": rep, **param_columns,
                                   **(_stop_reason(repetition.read_status()) if steered else {})})
        for _, compact in find_catalogs(folder):  # compact stores (`store: compact`): rows from their segments
            found = True
            for name, reps in compact.experiments().items():
                rows_of = {rep: compact.repetition(name, rep) for rep in reps}
                config = {"name": name, "params": next((r.params for r in rows_of.values() if r.params), {}),
                          "experiment_name": next((r.base for r in rows_of.values() if r.base), name)}
                if wanted is not None and not wanted & {name, config["experiment_name"]}:
                    continue
                flat_params = flatten_mapping(config.get("params") or {})
                if params and any(flat_params.get(k, ...) != v for k, v in params.items()):
                    continue
                param_columns = {f"params.{k}": v for k, v in flat_params.items()}
                for rep, saved in rows_of.items():
                    lines = saved.row_lines()
                    if lines:
                        chunk = b"\n".join(lines) + b"\n"  # as a results file holds them: the fast reader reads it
                        chunks.append(chunk)
                        fast.add(chunk)
                        status = saved.status[1] if saved.status else {}
                        blocks.append({"experiment": name, "rep": rep, **param_columns, **_stop_reason(status)})
    if not found:
        _warn_nothing_found(path, sweep_folders)
    results, counts = fast.rows() or _parsed_rows(chunks)
    kept = [block for block, count in zip(blocks, counts) if count]
    if not kept:
        return with_ensembles(pd.DataFrame(columns=INDEX_COLUMNS), folders)
    import numpy as np

    meta = pd.DataFrame.from_records(kept)
    meta = meta.iloc[np.repeat(np.arange(len(kept)), [c for c in counts if c])].reset_index(drop=True)
    meta.insert(2, "iteration", results.pop("iteration").astype("int64"))
    return with_ensembles(pd.concat([meta, results], axis=1), folders)


def _stop_reason(status: Mapping[str, Any]) -> dict[str, str]:
    """The `stop_reason` column of a repetition a campaign stopped (as `cluster_work.stop_reasons` gives it);
    nothing for the others, so that the column is there only where a campaign stopped something."""
    if status.get("state") != Record.STOPPED.value:
        return {}
    return {"stop_reason": str(status.get("reason", ""))}


def _parsed_rows(chunks: list[bytes | list[dict[str, Any]]]) -> tuple[pd.DataFrame, list[int]]:
    """Every repetition's rows, each file read as its longest prefix of rows 0, 1, 2... (see store): the
    definition the fast reader (`arrow_rows`, where pyarrow is installed) matches."""
    import pandas as pd

    rows: list[dict[str, Any]] = []
    counts = []
    for chunk in chunks:
        chunk_rows = parse_results(chunk).rows if isinstance(chunk, bytes) else chunk
        rows.extend(chunk_rows)
        counts.append(len(chunk_rows))
    # the columns in order of first appearance, as pandas finds them, but in C instead of a loop over rows
    columns = list(dict.fromkeys(itertools.chain.from_iterable(rows)))
    return pd.DataFrame.from_records(rows, columns=columns), counts


def stored_config(experiment_path: str) -> dict[str, Any] | None:
    """The config stored in an experiment folder: cluster_work's config.yml (or a compact store's config of the
    experiment whose folder this would be, see compact_config), else the original's experiment.yml (beside
    which a config.yml without cluster_work's marker is the user's)."""
    store = ExperimentStore(experiment_path)
    ours = store.read_config(own=True)  # (one read of the file, where it is ours)
    if ours is None and not store.has_original_results():
        ours = store.read_config()
        compact = find_compact(experiment_path) if ours is None else None
        ours = compact.read_config() if compact is not None else ours
    return ours or original_format.read_experiment_config(experiment_path)


def _original_log(experiment_path: str, log_path: str | None = None) -> str:
    return log_path or original_format.default_log_path(experiment_path)


def repetition_numbers(experiment_path: str) -> list[int]:
    """The repetitions with files in the folder, cluster_work's or the original's, in order: both are in its
    log folder (`rep_00/`, `rep_0.csv`), listed once."""
    try:
        names = os.listdir(_original_log(experiment_path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted(set(repetition_numbers_in(names)) | set(original_format.repetition_numbers_in(names)))


def repetition_rows(experiment_path: str, rep: int, log_path: str | None = None) -> list[dict[str, Any]]:
    """The saved rows of repetition `rep` ({"iteration": n, column: value...}): cluster_work's if it saved any,
    else the original's (`log_path`: the original's log folder, if the config moved it)."""
    rows = _store_of(experiment_path).repetition(rep).read_results().rows
    return rows or original_format.repetition_rows(_original_log(experiment_path, log_path), rep)


def _store_of(experiment_path: str) -> ExperimentStore | CompactExperimentStore:
    """The store of the experiment in `experiment_path`: its folder's, or a compact store's (see find_compact)."""
    if os.path.isfile(os.path.join(experiment_path, CONFIG_FILE)):
        return ExperimentStore(experiment_path)
    return find_compact(experiment_path) or ExperimentStore(experiment_path)


def _indexed(rows: list[dict[str, Any]], rep: int) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame.from_records(rows)
    iterations = frame.pop("iteration").astype("int64")
    frame.index = pd.MultiIndex.from_arrays([[rep] * len(frame), iterations], names=original_format.INDEX_COLUMNS)
    return frame


def repetition_frame(experiment_path: str, rep: int, log_path: str | None = None) -> pd.DataFrame | None:
    """Repetition `rep` as the original's `load_repetition_results` returned it: indexed by (r, i); None when
    nothing was saved."""
    rows = _store_of(experiment_path).repetition(rep).read_results().rows
    if rows:
        return _indexed(rows, rep)
    return original_format.read_repetition(_original_log(experiment_path, log_path), rep)


def experiment_frame(experiment_path: str, repetitions: int, log_path: str | None = None) -> pd.DataFrame | None:
    """Repetitions 0 to `repetitions - 1` as the original's `load_experiment_results` returned them: one frame
    indexed by (r, i), or None when nothing was saved. A folder only the original wrote is read by its rule
    (results.csv first); one where cluster_work saved rows, repetition by repetition."""
    import pandas as pd

    store, log_path = _store_of(experiment_path), _original_log(experiment_path, log_path)
    ours = {rep: rows for rep in range(repetitions) if (rows := store.repetition(rep).read_results().rows)}
    if not ours:
        return original_format.read_experiment(experiment_path, repetitions, log_path)
    frames = [_indexed(ours[rep], rep) if rep in ours else original_format.read_repetition(log_path, rep)
              for rep in range(repetitions)]
    return pd.concat([frame for frame in frames if frame is not None])


def summary(frame: pd.DataFrame, column: str, mode: str = "max") -> pd.DataFrame:
    """One row per expanded experiment: mean, std, best and worst of `column` at each repetition's last
    saved iteration, with the number of repetitions and that iteration. `mode` says what best is."""
    import pandas as pd

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

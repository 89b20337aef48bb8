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

from . import arrow_rows, collector, compact_bulk, compact_frame, original_format
from .arrow_rows import start_reader as _fast_reader
from .compact_catalog import find_compact_roots
from .compact_store import CompactExperimentStore, find_compact
from .config import flatten_mapping, load_config
from .errors import ClusterWorkError, ResultsNotFoundError
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
    warnings.warn(message, stacklevel=4)  # (from _load, from load_results: at its caller)


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
    a config or folder with no experiment folders yet gives an empty frame and a warning. So does a name in
    `experiments` that the config does not define (or, for a folder, that saved nothing there): a typo must
    not read as an experiment without results. One the config defines but that has not run yet is no typo:
    no warning for it (as the original ClusterWork, which ignored unknown names, nothing is raised).
    A campaign kind may keep rows of its own beside the repetitions' (`kinds.CampaignKind.own_rows`): a weighted
    ensemble has one row per (iteration, walker), after the repetitions' rows.
    """
    wanted = list(experiments) if experiments is not None else None
    frame, saved = _load(path, wanted, params)
    if wanted is not None and (saved is not None or os.path.isfile(path)):  # (an empty folder: said already)
        _warn_unknown_names(path, [name for name in dict.fromkeys(wanted) if name not in (saved or ())], saved or set())
    return frame


def load_configured_results(path: str | os.PathLike[str], experiments: Iterable[str],
                            params: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """`load_results` for names that a config defines (their callers expanded it: PlotWork, `Sweep.results`,
    --plot): one that has not run yet is no typo, so no warning for it, even where `path` is a folder."""
    return _load(path, list(experiments), params, want_names=False)[0]


@collector.paused()  # a frame of 10^6 rows is made of as many objects, in no cycle
@arrow_rows.malloc_pool()  # (see there: a fresh process's ~1 GB faulted in at a third of mimalloc's cost)
def _load(path: str | os.PathLike[str], wanted: list[str] | None, params: Mapping[str, Any] | None,
          want_names: bool = True) -> tuple[pd.DataFrame, set[str] | None]:
    """load_results' frame, and the names (expanded and base) of every experiment that has a folder or rows
    below `path`, kept or not (None where none has: the warning that nothing was found is given); a large compact
    store's names only where a selection asks and the caller `want_names` (its 10^6 names as a set: 0.3 s)."""
    import pandas as pd

    kept_names = set(wanted) if wanted is not None else None
    chunks: list[bytes | list[dict[str, Any]]] = []  # per repetition: our lines, or the original's rows
    blocks: list[dict[str, Any]] = []  # one per repetition: experiment, rep and params columns
    pieces: list[tuple[pd.DataFrame, list[str]]] = []  # the frame so far, in order: (rows, their meta columns)
    folders: list[tuple[str, dict[str, Any], str]] = []  # each kept folder of a campaign, for its kind's own rows
    sweep_folders = _sweep_folders(path)
    fast = _fast_reader()  # where pyarrow is installed, parses what was read while more is read
    saved: set[str] = set()
    found = False
    for folder in sweep_folders:
        for store in find_experiment_folders(folder):
            found = True
            config = stored_config(store.path) or {}
            name = config.get("name", os.path.basename(store.path))
            names = {name, config.get("experiment_name", name)}
            saved |= names
            if kept_names is not None and not kept_names & names:
                continue
            flat_params = flatten_mapping(config.get("params") or {})
            if not flat_params_match(flat_params, params):
                continue
            param_columns = {f"params.{k}": v for k, v in flat_params.items()}
            key = campaign_key(config)  # only a campaign stops repetitions: only its statuses are read
            steered = key is not None and kind(key).stops_repetitions
            if key is not None:
                folders.append((store.path, {"experiment": name, **param_columns}, key))
            for rep in repetition_numbers(store.path):
                repetition = store.repetition(rep)
                chunk: bytes | list[dict[str, Any]] = repetition.read_complete_lines()
                chunk = chunk or original_format.repetition_rows(_original_log(store.path), rep)
                if chunk:
                    chunks.append(chunk)
                    fast.add(chunk)
                    blocks.append({"experiment": name, "rep": rep, **param_columns,
                                   **(_stop_reason(repetition.read_status()) if steered else {})})
        for root in find_compact_roots(folder):  # compact stores (`store: compact`): rows from their segments
            found = True
            columnar = compact_frame.read_frame(root, kept_names, params)  # a large store's, in columns
            if columnar is not None:
                saved |= columnar.names() if want_names and wanted is not None else set()
                if columnar.frame is not None:
                    pieces += _piece(chunks, blocks, fast)  # (the rows before it, in their place)
                    chunks, blocks, fast = [], [], _fast_reader()
                    pieces.append((columnar.frame, columnar.meta))
                continue
            experiments = compact_bulk.read_bulk(root)
            for experiment in compact_bulk.read_catalogued(root) if experiments is None else experiments:
                name, base = experiment.name, experiment.base or experiment.name
                saved.add(name)
                saved.add(base)
                if kept_names is not None and not kept_names & {name, base}:
                    continue
                flat_params = flatten_mapping(experiment.params or {})
                if not flat_params_match(flat_params, params):
                    continue
                param_columns = {f"params.{k}": v for k, v in flat_params.items()}
                for held in experiment.repetitions:
                    if held.rows:  # as a results file holds them: the fast reader reads it
                        chunks.append(held.rows)
                        fast.add(held.rows)
                        blocks.append({"experiment": name, "rep": held.rep, **param_columns,
                                       **(_stop_reason(held.status) if held.status else {})})
    if not found:
        _warn_nothing_found(path, sweep_folders)
    pieces += _piece(chunks, blocks, fast)
    if not pieces:
        return _with_own_rows(pd.DataFrame(columns=INDEX_COLUMNS), folders), saved if found else None
    return _with_own_rows(_joined(pieces), folders), saved if found else None


def _piece(chunks: list[bytes | list[dict[str, Any]]], blocks: list[dict[str, Any]],
           fast: Any) -> list[tuple[pd.DataFrame, list[str]]]:
    """The frame of the repetitions' rows in `chunks` (each with its `blocks`' columns), read by `fast` where it
    can, and its meta columns (experiment, rep, iteration, params.*, stop_reason); none where no row was saved."""
    import numpy as np
    import pandas as pd

    results, counts = fast.rows() or _parsed_rows(chunks)
    kept = [block for block, count in zip(blocks, counts) if count]
    if not kept:
        return []
    meta = pd.DataFrame.from_records(kept)
    meta = meta.iloc[np.repeat(np.arange(len(kept)), [c for c in counts if c])].reset_index(drop=True)
    meta.insert(2, "iteration", results.pop("iteration").astype("int64"))
    return [(pd.concat([meta, results], axis=1), list(meta.columns))]


def _joined(pieces: list[tuple[pd.DataFrame, list[str]]]) -> pd.DataFrame:
    """The pieces' rows one after the other, as one piece of them all would give them: the meta columns in order
    of first appearance, then the result columns in order of first appearance (pandas types a column made of
    several pieces' as it types their values together)."""
    import pandas as pd

    if len(pieces) == 1:
        return pieces[0][0]
    meta = list(dict.fromkeys(name for _, names in pieces for name in names))
    results = list(dict.fromkeys(name for frame, names in pieces for name in frame.columns if name not in names))
    return pd.concat([frame for frame, _ in pieces], ignore_index=True)[meta + results]


def _with_own_rows(frame: pd.DataFrame, folders: Iterable[tuple[str, Mapping[str, Any], str]]) -> pd.DataFrame:
    """`frame` (the repetitions' rows) and, after them, the rows each campaign's kind keeps of its own in a folder
    (`CampaignKind.own_rows`: a weighted ensemble's walkers), named by `columns` (`experiment`, the `params.*`)
    and with `rep` and `iteration` after `experiment`, as in every frame of load_results."""
    import pandas as pd

    parts = []
    for path, columns, key in folders:
        rows = kind(key).own_rows(path)
        if rows is None or not len(rows):
            continue
        meta = pd.DataFrame({name: [value] * len(rows) for name, value in columns.items()})
        meta.insert(1, "rep", rows.iloc[:, 0])  # (by place: a column of the rows may be named so too)
        meta.insert(2, "iteration", rows.iloc[:, 1])
        parts.append(pd.concat([meta, rows.iloc[:, 2:]], axis=1))
    if not parts:
        return frame
    return pd.concat([frame, *parts] if len(frame) else parts, ignore_index=True)


def flat_params_match(flat_params: Mapping[str, Any], wanted: Mapping[str, Any] | None) -> bool:
    """Whether parameters (flattened: {"model.width": 8}) have every value of `wanted` (None or {}: all do):
    load_results' `params` rule, also PlotWork's `-f name=value`."""
    return not wanted or all(flat_params.get(key, ...) == value for key, value in wanted.items())


def _warn_unknown_names(path: str | os.PathLike[str], unknown: list[str], saved: set[str]) -> None:
    """Warn of the names in `unknown` (none saved anything below `path`) that are typos: for a config, those
    it does not define; for a folder, all of them (which names a config defines, a folder does not say)."""
    if not unknown:
        return
    if os.path.isfile(path):
        bases, defined = _defined_names(path, unknown)
        unknown = [name for name in unknown if name not in defined]
        if unknown:
            warnings.warn(f"{os.fspath(path)}: defines no experiment {', '.join(map(repr, unknown))} "
                          f"(it defines: {', '.join(bases)})", stacklevel=3)
    else:
        warnings.warn(f"{os.fspath(path)}: no experiment {', '.join(map(repr, unknown))} saved anything here "
                      f"(those that did: {', '.join(sorted(saved))})", stacklevel=3)


def _defined_names(config_path: str | os.PathLike[str], names: list[str]) -> tuple[list[str], set[str]]:
    """The base names of a config's documents, and which of `names` the config defines (base, expanded or the
    original's names). The config is expanded only where some name is no base name."""
    from .design import points
    from .expansion import NAME_SEPARATOR, expand_all

    documents = load_config(config_path, warn=lambda m: None, keep_unknown_tags=True)
    bases = list(dict.fromkeys(document["name"] for document in documents))
    if set(names) <= set(bases):
        return bases, set(names)
    wanted = set(names) - set(bases)
    defined = set(names) & set(bases)
    try:
        expanded = expand_all(documents, warn=lambda m: None, custom_points=points)
    except ClusterWorkError:  # (a design that cannot be made here): a name under a base's prefix may be one
        return bases, defined | {n for n in wanted if n.split(NAME_SEPARATOR, 1)[0] in bases}
    for experiment in expanded:
        defined |= wanted & {experiment.name, experiment.original_name}
    return bases, defined


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

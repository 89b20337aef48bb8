"""Reading experiment folders that the original ClusterWork wrote (read only: cluster_work never writes them).

    <path>/<base name>/<params part>/experiment.yml   the expanded config, as the original's yaml.dump wrote it
    <path>/<base name>/<params part>/results.csv      all repetitions, written once at the end of a full run
    <path>/<base name>/<params part>/log/rep_N.csv    one row per saved iteration of repetition N (N unpadded)

The CSV files are tab-separated with the index columns `r` and `i` first, floats as `%+.8e` and missing
values as `NaN`; a rep file is appended to after every iteration. An iteration whose `iterate` returned
None has no row, so `i` may skip values. A row counts only once its line is complete: a killed writer's
torn last line is ignored, as cluster_work's own readers ignore a torn JSON line.
"""
from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import yaml

from .config import construct_unknown_tag, loader_class, read_yaml  # the config's own tag handling, shared
from .errors import StoreError
from .store import LOG_FOLDER, ORIGINAL_CONFIG_FILE

if TYPE_CHECKING:  # imported where a frame is made (planning reads these files without pandas)
    import pandas as pd

RESULTS_FILE = "results.csv"
INDEX_COLUMNS = ["r", "i"]
_REPETITION_FILE = re.compile(r"^rep_(\d+)\.csv$")


def _tuple(loader: Any, node: Any) -> tuple[Any, ...]:
    return tuple(loader.construct_sequence(node, deep=True))


def _stored_config_loader(python: bool) -> type[Any]:
    """The config's loader (the tags the experiment's code declares construct as they do in the config, so
    stored and current params compare equal), that also takes what the original's `yaml.dump` wrote: tuples
    as tuples, other Python-tagged values (numpy arrays, objects) as UnknownTag, never running code."""
    loader: type[Any] = type("_StoredConfigLoader", (loader_class(keep_unknown_tags=True, python=python),), {})
    loader.add_constructor("tag:yaml.org,2002:python/tuple", _tuple)
    loader.add_multi_constructor("tag:yaml.org,2002:python/", construct_unknown_tag)
    return loader


def read_yaml_file(path: str) -> Any:
    """The first document of a YAML file the original wrote (see _stored_config_loader); None if it is missing."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        return next(iter(read_yaml(text, _stored_config_loader, first_only=True)), None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def read_experiment_config(experiment_path: str) -> dict[str, Any] | None:
    """The expanded config the original stored in `experiment.yml` (keys `name`, `path`, `log_path`,
    `params`, `repetitions`, `iterations`...), or None where there is none."""
    config = read_yaml_file(os.path.join(experiment_path, ORIGINAL_CONFIG_FILE))
    return config if isinstance(config, dict) else None


def default_log_path(experiment_path: str) -> str:
    return os.path.join(experiment_path, LOG_FOLDER)


def repetition_file(log_path: str, rep: int) -> str:
    return os.path.join(log_path, f"rep_{rep}.csv")


def repetition_numbers(log_path: str) -> list[int]:
    """The repetitions that have a `rep_N.csv` file, in order."""
    try:
        return repetition_numbers_in(os.listdir(log_path))
    except (FileNotFoundError, NotADirectoryError):
        return []


def repetition_numbers_in(names: Iterable[str]) -> list[int]:
    """The repetitions whose `rep_N.csv` files are among `names` (of a log folder), in order."""
    return sorted(int(match.group(1)) for match in map(_REPETITION_FILE.match, names) if match)


def _complete_lines(path: str) -> bytes | None:
    """The file up to its last newline, if it starts with the original's header (`r<TAB>i...`)."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        return None
    data = data[:data.rfind(b"\n") + 1]
    header = data.split(b"\n", 1)[0].rstrip(b"\r").split(b"\t")
    return data if [h.decode(errors="replace") for h in header[:2]] == INDEX_COLUMNS else None


def _read_csv(path: str) -> pd.DataFrame | None:
    """A CSV file the original wrote, indexed by (r, i) as its `load_repetition_results` returned it."""
    import pandas as pd

    data = _complete_lines(path)
    if data is None:
        return None
    return pd.read_csv(io.BytesIO(data), sep="\t").set_index(INDEX_COLUMNS)


def read_repetition(log_path: str, rep: int) -> pd.DataFrame | None:
    """The saved iterations of repetition `rep` (`log/rep_N.csv`), indexed by (r, i); None without a file."""
    return _read_csv(repetition_file(log_path, rep))


def read_results_file(experiment_path: str) -> pd.DataFrame | None:
    """The `results.csv` a full run of the original wrote at its end (NaN rows where nothing was saved)."""
    return _read_csv(os.path.join(experiment_path, RESULTS_FILE))


def read_experiment(experiment_path: str, repetitions: int, log_path: str | None = None) -> pd.DataFrame | None:
    """All results of the experiment by the original's rule (its `load_experiment_results`): `results.csv`
    if it exists, else the rep files of repetitions 0 to `repetitions - 1` one after the other."""
    import pandas as pd

    results = read_results_file(experiment_path)
    if results is not None:
        return results
    log_path = log_path or default_log_path(experiment_path)
    frames = [frame for rep in range(repetitions) if (frame := read_repetition(log_path, rep)) is not None]
    return pd.concat(frames) if frames else None


def repetition_rows(log_path: str, rep: int) -> list[dict[str, Any]]:
    """The saved iterations of `rep` as cluster_work's result rows: {"iteration": i, column: value, ...}."""
    frame = read_repetition(log_path, rep)
    if frame is None:
        return []
    rows = frame.reset_index(level="r", drop=True).reset_index().rename(columns={"i": "iteration"})
    return rows.to_dict("records")


def saved_iterations(log_path: str, rep: int) -> int:
    """How many iterations of `rep` the original saved (complete rows of its rep file)."""
    data = _complete_lines(repetition_file(log_path, rep))
    return max(data.count(b"\n") - 1, 0) if data is not None else 0


def finished_repetitions(experiment_path: str, iterations: int, log_path: str | None = None) -> set[int]:
    """The repetitions the original finished: their `rep_N.csv` holds at least `iterations` rows (the
    original's own rule was exactly `iterations`; more only happen when the config lowered them since)."""
    log_path = log_path or default_log_path(experiment_path)
    return {rep for rep in repetition_numbers(log_path) if saved_iterations(log_path, rep) >= iterations}

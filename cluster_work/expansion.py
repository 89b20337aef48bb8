"""Expanding experiment documents by `grid` (product) and `list` (zip) into named parameter sets.

A worked example:

    name: fit
    params: {batch_size: 32}
    grid: {learning_rate: [0.1, 0.01]}
    list: {model: {width: [8, 16]}, seed_offset: [0, 1]}

expands to grid x list = 2 x 2 experiments; the first is named `fit__lr0.1_mod.wid8_so0` and has
params {batch_size: 32, learning_rate: 0.1, model: {width: 8}, seed_offset: 0}. Short names follow
the original ClusterWork (`optimizer.learning_rate` -> `opt.lr`); where two would collide the full
dotted name is used. Names depend only on the config, so they are stable from run to run.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import Warn, deep_merge, flatten_mapping, set_dotted

log = logging.getLogger("cluster_work")

MAX_NAME_LENGTH = 150
_UNSAFE = re.compile(r"[^A-Za-z0-9._+=,-]")


@dataclass(frozen=True)
class ExpandedExperiment:
    """One parameter set of one experiment document: the unit that owns a results folder."""

    name: str
    base_name: str
    config: dict[str, Any] = field(hash=False, compare=False)
    varied: dict[str, Any] = field(hash=False, compare=False)

    @property
    def path(self) -> str:
        """The folder holding this experiment's config and repetitions."""
        return self.config["path"]

    @property
    def sweep_path(self) -> str:
        """The config's `path`: the folder that holds this experiment and its siblings."""
        return os.path.dirname(self.path)

    @property
    def params(self) -> dict[str, Any]:
        return self.config["params"]

    @property
    def repetitions(self) -> int:
        return self.config["repetitions"]

    @property
    def iterations(self) -> int:
        return self.config["iterations"]


NAME_SEPARATOR = "__"  # between the base name and the parameters of an expanded experiment


def base_name_of(expanded_name: str) -> str:
    """'fit' for 'fit__lr0.1_bs32' (and for 'fit' itself)."""
    return expanded_name.split(NAME_SEPARATOR, 1)[0]


def params_part_of(expanded_name: str) -> str:
    """'lr0.1_bs32' for 'fit__lr0.1_bs32'; an experiment without parameters gives its name."""
    return expanded_name.split(NAME_SEPARATOR, 1)[-1]


def sweep_paths(experiments: Iterable[ExpandedExperiment]) -> list[str]:
    """The sweep folders of these experiments, each once, in order."""
    return list(dict.fromkeys(experiment.sweep_path for experiment in experiments))


def shorten_param(dotted: str) -> str:
    """Short names as in the original ClusterWork: 'optimizer.learning_rate' -> 'opt.lr'.

    A leaf of several words gives its initials, a one-word leaf its first three letters ('width' -> 'wid').
    """
    *parents, leaf = dotted.split(".")
    words = [part for part in leaf.split("_") if part]
    short_leaf = "".join(word[0] for word in words) if len(words) > 1 else leaf[:3]
    return ".".join([p[:3] for p in parents] + [short_leaf])


def format_value(value: Any) -> str:
    """A compact, exact text for a parameter value inside a folder name."""
    if isinstance(value, float):
        text = repr(value)
    elif isinstance(value, (str, int)):
        text = str(value)
    else:
        text = json.dumps(value, separators=(",", ""), sort_keys=True, default=str)
    return _UNSAFE.sub("-", text)


def _short_names(keys: Sequence[str]) -> dict[str, str]:
    shorts = {key: shorten_param(key) for key in keys}
    counts: dict[str, int] = {}
    for short in shorts.values():
        counts[short] = counts.get(short, 0) + 1
    return {key: short if counts[short] == 1 else key for key, short in shorts.items()}


def _combinations(experiment: Mapping[str, Any]) -> list[dict[str, Any]]:
    """All {dotted param: value} assignments: the grid's product times the list's zip."""
    grid = flatten_mapping(experiment.get("grid") or {})
    listed = flatten_mapping(experiment.get("list") or {})
    grid_points = [dict(zip(grid, values)) for values in itertools.product(*grid.values())]
    list_points = [dict(zip(listed, values)) for values in zip(*listed.values())] or [{}]
    return [{**g, **l} for g in grid_points for l in list_points]


def expanded_name(base: str, varied: Mapping[str, Any], shorts: Mapping[str, str]) -> str:
    """`base__lr0.01_bs32`; over-long names are cut and suffixed with a hash of the full name."""
    if not varied:
        return base
    name = base + NAME_SEPARATOR + "_".join(shorts[k] + format_value(v) for k, v in varied.items())
    if len(name) > MAX_NAME_LENGTH:
        digest = hashlib.sha1(name.encode()).hexdigest()[:10]
        name = name[:MAX_NAME_LENGTH - 11] + "-" + digest
    return name


def expand_experiment(experiment: Mapping[str, Any], default_params: Mapping[str, Any] | None = None,
                      ) -> list[ExpandedExperiment]:
    """Expand one validated experiment document into its parameter sets, in a stable order."""
    base_params = deep_merge(default_params or {}, experiment.get("params") or {})
    combinations = _combinations(experiment)
    shorts = _short_names(list(combinations[0]))
    expanded = []
    for varied in combinations:
        params = deep_merge(base_params, {})
        for dotted, value in varied.items():
            set_dotted(params, dotted, value)
        name = expanded_name(experiment["name"], varied, shorts)
        config = {key: value for key, value in experiment.items() if key not in ("grid", "list")}
        root = os.path.expanduser(os.path.expandvars(experiment["path"]))
        config.update(name=name, params=params, path=os.path.join(root, name),
                      log_path=os.path.join(root, name, "log"))
        expanded.append(ExpandedExperiment(name, experiment["name"], config, dict(varied)))
    return expanded


def expand_all(experiments: Sequence[Mapping[str, Any]], default_params: Mapping[str, Any] | None = None,
               source: str = "config", warn: Warn = log.warning) -> list[ExpandedExperiment]:
    """Expand every experiment; warn on params unknown to `default_params`, fail on name clashes."""
    expanded: list[ExpandedExperiment] = []
    for experiment in experiments:
        expanded.extend(expand_experiment(experiment, default_params))
        if default_params:
            _warn_unknown_params(experiment, default_params, source, warn)
    _check_unique_folders(expanded, source)
    return expanded


def _warn_unknown_params(experiment: Mapping[str, Any], default_params: Mapping[str, Any],
                         source: str, warn: Warn) -> None:
    known = flatten_mapping(default_params)
    given = list(flatten_mapping(experiment.get("params") or {}))
    for key in ("grid", "list"):
        given += list(flatten_mapping(experiment.get(key) or {}))
    for dotted in dict.fromkeys(given):
        prefixes = [".".join(dotted.split(".")[:i]) for i in range(1, dotted.count(".") + 2)]
        if not any(prefix in known for prefix in prefixes):
            warn(f"{source}: experiment '{experiment['name']}': parameter '{dotted}' is not among the "
                 "experiment's _default_params (a typo?)")


def _check_unique_folders(expanded: Sequence[ExpandedExperiment], source: str) -> None:
    from .errors import config_error

    seen: dict[str, str] = {}
    for experiment in expanded:
        folder = os.path.normpath(experiment.path)
        if folder in seen:
            raise config_error(source, f"expands to the folder {folder!r}, which experiment "
                                       f"'{seen[folder]}' also uses; rename one of them",
                               experiment=experiment.base_name, key="name")
        seen[folder] = experiment.base_name

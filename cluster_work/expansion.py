"""Expanding experiment documents by `grid` (product) and `list` (zip) into named parameter sets.

A worked example:

    name: fit
    path: out
    params: {batch_size: 32}
    grid: {learning_rate: [0.1, 0.01]}
    list: {model: {width: [8, 16]}, seed_offset: [0, 1]}

expands to grid x list = 2 x 2 experiments; the first is named `fit__lr0.1_mod.w8_so0`, lives in
`out/fit/lr0.1_mod.w8_so0/` and has params {batch_size: 32, learning_rate: 0.1, model: {width: 8},
seed_offset: 0}. Names and folders are the original ClusterWork's (its `shorten_param` and its
clean-up of the value text), so scripts and notebooks written for it find them. Where the original's
rule would give two experiments one name, or a name no folder can have, cluster_work keeps them apart
with a longer form and says so. Names depend only on the config, so they are stable from run to run.
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

from .config import KeyPath, Warn, deep_merge, dotted, flatten_paths, set_path

log = logging.getLogger("cluster_work")

NAME_SEPARATOR = "__"  # between the base name and the parameters of an expanded experiment
MAX_FOLDER_NAME = 200  # characters of the parameters part; longer ones are cut and suffixed with a hash
LOG_FOLDER = "log"


@dataclass(frozen=True)
class ExpandedExperiment:
    """One parameter set of one experiment document: the unit that owns a results folder.

    `config` is what the experiment's hooks receive, with the original's keys: `name` (expanded),
    `experiment_name` (base), `path` (this folder), `log_path`, `_config_path` (the YAML's `path`),
    `_experiment_path` (`<path>/<base name>`), `params`, `repetitions`, `iterations`...
    """

    name: str
    base_name: str
    config: dict[str, Any] = field(hash=False, compare=False)
    varied: dict[KeyPath, Any] = field(hash=False, compare=False)
    original_name: str = field(default="", hash=False, compare=False)  # the original's name, if it differs

    @property
    def path(self) -> str:
        """The folder holding this experiment's config and repetitions."""
        return self.config["path"]

    @property
    def sweep_path(self) -> str:
        """The config's `path`: the folder that holds this experiment's base folder and its siblings'."""
        return expand_path(self.config["_config_path"])

    @property
    def params_part(self) -> str:
        """'lr0.1_bs32' of 'fit__lr0.1_bs32'; an experiment without grid or list gives ''."""
        return self.name[len(self.base_name) + len(NAME_SEPARATOR):] if self.varied else ""

    @property
    def params(self) -> dict[str, Any]:
        return self.config["params"]

    @property
    def repetitions(self) -> int:
        return self.config["repetitions"]

    @property
    def iterations(self) -> int:
        return self.config["iterations"]


def base_name_of(expanded_name: str) -> str:
    """'fit' for 'fit__lr0.1_bs32', for display only (plot files, legends): a base name may itself hold
    '__', so selecting experiments uses `ExpandedExperiment.base_name` or a stored `experiment_name`."""
    return expanded_name.split(NAME_SEPARATOR, 1)[0]


def params_part_of(expanded_name: str) -> str:
    """'lr0.1_bs32' for 'fit__lr0.1_bs32' (a legend's label); without parameters the name itself."""
    return expanded_name.split(NAME_SEPARATOR, 1)[-1]


def expand_path(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def sweep_paths(experiments: Iterable[ExpandedExperiment]) -> list[str]:
    """The sweep folders of these experiments, each once, in order."""
    return list(dict.fromkeys(experiment.sweep_path for experiment in experiments))


def shorten_param(name: str) -> str:
    """The original's short names: every part but the last cut to 3 letters, the last one the initials
    of its words: 'optimizer.learning_rate' -> 'opt.lr', 'tau' -> 't'."""
    *parents, leaf = name.split(".")
    short_leaf = "".join(word[:1] for word in leaf.split("_"))
    return ".".join([p[:3] for p in parents] + [short_leaf])


def original_params_part(varied: Mapping[KeyPath, Any]) -> str:
    """The original's folder name for these values: `'{short}{value}'` joined by '_', without quotes and
    spaces, brackets turned into '_' (opening) or dropped (closing), commas into '_'."""
    text = "_".join(f"{shorten_param(dotted(path))}{value}" for path, value in varied.items())
    text = re.sub("[' ]", "", text)
    text = re.sub('["]', "", text)
    text = re.sub(r"[(\[]", "_", text)
    text = re.sub(r"[)\]]", "", text)
    return re.sub("[,]", "_", text)


_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def folder_safe(text: str) -> str:
    """`text` as one folder name: '/', '\\' and control characters percent-escaped (the original made
    sub-folders of a '/'), '.' and '..' escaped, and over-long names cut and suffixed with a hash."""
    safe = _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)
    if safe in (".", ".."):
        safe = safe.replace(".", "%2E")
    if len(safe) > MAX_FOLDER_NAME:
        safe = safe[:MAX_FOLDER_NAME - 11] + "-" + _digest(safe)
    return safe


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def _typed(varied: Mapping[KeyPath, Any]) -> str:
    """A text that tells apart values the original's name confuses (1.0 and '1.0', 'a b' and 'ab')."""
    return json.dumps([[list(path), type(value).__name__, repr(value)] for path, value in varied.items()])


def _combinations(experiment: Mapping[str, Any]) -> Iterable[dict[KeyPath, Any]]:
    """All {key path: value} assignments: the grid's product times the list's zip, in a stable order."""
    grid = flatten_paths(experiment.get("grid") or {})
    listed = flatten_paths(experiment.get("list") or {})
    list_points = [dict(zip(listed, values)) for values in zip(*listed.values())] or [{}]
    for values in itertools.product(*grid.values()):
        point = dict(zip(grid, values))
        for listed_point in list_points:
            yield {**point, **listed_point}


def expand_experiment(experiment: Mapping[str, Any], default_params: Mapping[str, Any] | None = None,
                      warn: Warn = log.warning) -> list[ExpandedExperiment]:
    """Expand one validated experiment document into its parameter sets, in a stable order."""
    base = experiment["name"]
    base_params = deep_merge(default_params or {}, experiment.get("params") or {})
    root = expand_path(experiment["path"])
    points = list(_combinations(experiment))
    original_parts = [original_params_part(varied) for varied in points]
    parts = [folder_safe(part) for part in original_parts]
    counts: dict[str, int] = {}
    for part in parts:
        counts[part] = counts.get(part, 0) + 1
    expanded = []
    for varied, original_part, part in zip(points, original_parts, parts):
        if counts[part] > 1:  # the original would give these one name: add what tells them apart
            part = folder_safe(f"{part}-{_digest(_typed(varied))}")
        params = deep_merge(base_params, {})
        for path, value in varied.items():
            set_path(params, path, value)
        name = f"{base}{NAME_SEPARATOR}{part}" if varied else base
        original_name = f"{base}{NAME_SEPARATOR}{original_part}" if varied else base
        folder = os.path.join(root, base, part) if varied else os.path.join(root, base)
        config = {key: value for key, value in experiment.items() if key not in ("grid", "list")}
        config.update(name=name, experiment_name=base, params=params, _config_path=experiment["path"],
                      _experiment_path=os.path.join(root, base), path=folder,
                      log_path=(os.path.join(expand_path(experiment["log_path"]), name) if "log_path" in experiment
                                else os.path.join(folder, LOG_FOLDER)))
        expanded.append(ExpandedExperiment(name, base, config, dict(varied),
                                           original_name if original_name != name else ""))
    renamed = [e for e in expanded if e.original_name]
    if renamed:
        examples = "; ".join(f"{e.original_name!r} -> {e.name!r}" for e in renamed[:3])
        warn(f"experiment '{base}': {len(renamed)} expanded name(s) differ from the original ClusterWork's, which "
             f"would clash or cannot name a folder: {examples}{' ...' if len(renamed) > 3 else ''}")
    return expanded


def expand_all(experiments: Sequence[Mapping[str, Any]], default_params: Mapping[str, Any] | None = None,
               source: str = "config", warn: Warn = log.warning) -> list[ExpandedExperiment]:
    """Expand every experiment; warn on params unknown to `default_params`, fail on folder clashes."""
    expanded: list[ExpandedExperiment] = []
    for experiment in experiments:
        expanded.extend(expand_experiment(experiment, default_params, warn))
        if default_params:
            _warn_unknown_params(experiment, default_params, source, warn)
    _check_unique_folders(expanded, source)
    return expanded


def _warn_unknown_params(experiment: Mapping[str, Any], default_params: Mapping[str, Any],
                         source: str, warn: Warn) -> None:
    known = set(flatten_paths(default_params))
    given = list(flatten_paths(experiment.get("params") or {}))
    for key in ("grid", "list"):
        given += list(flatten_paths(experiment.get(key) or {}))
    for path in dict.fromkeys(given):
        if not any(path[:length] in known for length in range(1, len(path) + 1)):
            warn(f"{source}: experiment '{experiment['name']}': parameter '{dotted(path)}' is not among the "
                 "experiment's _default_params (a typo?)")


def _check_unique_folders(expanded: Sequence[ExpandedExperiment], source: str) -> None:
    """Two experiment documents must not share a folder (e.g. one named like another's base folder)."""
    from .errors import config_error

    seen: dict[str, str] = {}
    for experiment in expanded:
        folder = os.path.normpath(experiment.path)
        if folder in seen and seen[folder] == experiment.base_name:
            raise config_error(source, f"two parameter sets are the same ({experiment.name!r}): a grid or list "
                                       "repeats a value", experiment=experiment.base_name, key="grid")
        if folder in seen:
            raise config_error(source, f"expands to the folder {folder!r}, which experiment "
                                       f"'{seen[folder]}' also uses; rename one of them",
                               experiment=experiment.base_name, key="name")
        seen[folder] = experiment.base_name

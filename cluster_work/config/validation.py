"""Validating experiment documents: the reserved keys, their types and limits, one ConfigError line each.

`check_document_keys` looks at a document as the user wrote it (a key one typo away from a reserved one, a
block whose values were not indented under it); `validate_experiment` at a merged experiment, after the
DEFAULT document and the command line's overrides (required keys, names, counts, folders, the sweep
blocks, and the campaign block through its kind, which returns the block's typed spec). Pure functions
over dicts: every message names the file (`ConfigSource`), the experiment and the key.
"""
from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import config_error
from ..kinds import CAMPAIGN_KEYS, kinds_in
from ..lookalike import lookalike
from ..vocabulary import ConfigSource
from .keypaths import dotted, flatten_paths

log = logging.getLogger("cluster_work")

REQUIRED_KEYS = ("name", "repetitions", "iterations", "path")
KNOWN_KEYS = frozenset(REQUIRED_KEYS + ("params", "grid", "list", "random", "custom", "slurm", "gui", "plotting",
                                       "log_path", "command", "files", "keep_keys", "max_failures", "store",
                                       "export", "stall_timeout")
                       + CAMPAIGN_KEYS)
STORES = ("folders", "compact")  # `store:`: a folder per point (the default), or segment files (compact_store)
ALIASES = frozenset({"replicas"})  # read as a known key (SmartSim's name for repetitions)
BLOCK_KEYS = ("params", "grid", "list", "random", "custom")  # mappings whose values are indented under them
CUSTOM_KEYS = frozenset({"function", "samples", "params"})
RANDOM_KEYS = frozenset({"samples", "seed", "params", "without_replacement"})
_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+=,-]*")

# What a config may expand to; beyond these it is refused with one line (see the README).
MAX_NAME_LENGTH = 100               # characters of an experiment's base name
MAX_PATH_COMPONENT = 255            # bytes of one folder name (NAME_MAX of Linux file systems)
MAX_REPETITIONS = 1_000_000
MAX_SAMPLES = 10_000_000

Warn = Callable[[str], None]


def check_document_keys(document: Mapping[str, Any], source: ConfigSource, number: int,
                        inherited: list[str]) -> list[str]:
    """Refuse what a slip of the keyboard makes of a document: a key one typo away from a reserved one
    (`gird:` would run the defaults only; see `lookalike`), unless `keep_keys` lists it (here or in the
    DEFAULT document), and a block whose values were not indented under it (`grid:` then `lr: [...]` on
    the next line reads as an empty grid beside a key `lr`). Returns the keys the document keeps."""
    name = document.get("name")
    label = name if isinstance(name, str) else f"document {number}"
    keeps = document.get("keep_keys", [])
    if not isinstance(keeps, list) or not all(isinstance(key, str) for key in keeps):
        raise config_error(source, f"must be a list of key names, got {keeps!r}",
                           experiment=label, key="keep_keys")
    kept = [*inherited, *keeps]
    unknown = [key for key in document if key not in KNOWN_KEYS]
    for key in unknown:
        meant = lookalike(key, KNOWN_KEYS | ALIASES) if isinstance(key, str) and key not in kept else None
        if meant:
            raise config_error(source, f"unknown key in document {number}; did you mean '{meant}'? (to keep a "
                                       f"key of this name, list it: keep_keys: [{key}])", experiment=label, key=key)
    for key in BLOCK_KEYS:
        if key in document and document[key] is None:
            stray = f"; were {', '.join(map(repr, unknown))} meant to be indented under it?" if unknown else ""
            raise config_error(source, f"is empty in document {number}{stray}", experiment=label, key=key)
    return kept


def validate_experiment(experiment: Mapping[str, Any], source: ConfigSource | str, number: int,
                        warn: Warn = log.warning) -> Any:
    """Check one merged experiment document; raise a ConfigError on the first problem. Returns the typed
    spec of its campaign block (None for a plain document)."""
    source = ConfigSource.of(source)
    label = experiment.get("name") if isinstance(experiment.get("name"), str) else f"document {number}"
    for key in REQUIRED_KEYS:
        if key not in experiment:
            raise config_error(source, "required key is missing (required: "
                                       f"{', '.join(REQUIRED_KEYS)})", experiment=label, key=key)
    name = experiment["name"]
    if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name) or ".." in name:
        raise config_error(source, "must be a non-empty name of letters, digits and . _ + = , - "
                                   f"that starts with a letter or digit (it names a folder), got {name!r}",
                           experiment=label, key="name")
    if len(name) > MAX_NAME_LENGTH:
        raise config_error(source, f"is {len(name)} characters long; at most {MAX_NAME_LENGTH} are allowed",
                           experiment=name[:40] + "...", key="name")
    for key, limit in (("repetitions", MAX_REPETITIONS), ("iterations", None)):
        value = experiment[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise config_error(source, f"must be a positive integer, got {value!r}", experiment=name, key=key)
        if limit is not None and value > limit:
            raise config_error(source, f"must be at most {limit:,}, got {value:,}", experiment=name, key=key)
    for key in ("path", "log_path"):
        if key in experiment:
            problem = path_problem(experiment[key])
            if problem:
                raise config_error(source, problem, experiment=name, key=key)
    _check_store(experiment, source, name)
    stall = experiment.get("stall_timeout")
    if stall is not None and (isinstance(stall, bool) or not isinstance(stall, (int, float)) or not stall > 0):
        raise config_error(source, f"must be a positive number of seconds, got {stall!r}", experiment=name,
                           key="stall_timeout")
    params = experiment.get("params")
    if params is not None and not isinstance(params, Mapping):
        raise config_error(source, f"must be a mapping, got {type(params).__name__}", experiment=name, key="params")
    lengths = {}
    for key in ("grid", "list"):
        if experiment.get(key) is None:
            continue
        if not isinstance(experiment[key], Mapping) or not experiment[key]:
            raise config_error(source, "must be a non-empty mapping of parameter names to lists of values",
                               experiment=name, key=key)
        for path, values in flatten_paths(experiment[key]).items():
            if not isinstance(values, list) or not values:
                raise config_error(source, f"must be a non-empty list of values, got {values!r}",
                                   experiment=name, key=f"{key}.{dotted(path)}")
            if key == "list":
                lengths[dotted(path)] = len(values)
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise config_error(source, f"all lists must have the same length ({described})",
                           experiment=name, key="list")
    if experiment.get("grid") and experiment.get("list"):
        shared = set(flatten_paths(experiment["grid"])) & set(flatten_paths(experiment["list"]))
        if shared:
            raise config_error(source, f"parameter(s) {', '.join(sorted(map(dotted, shared)))} appear under "
                                       "both 'grid' and 'list'", experiment=name, key="grid")
    if experiment.get("random") is not None:
        _validate_random(experiment, source, name)
    if experiment.get("custom") is not None:
        _validate_custom(experiment, source, name)
    given: list[str] = []  # one campaign kind per document
    spec = None
    for campaign in kinds_in([experiment]):
        if given:
            raise config_error(source, f"give {' or '.join(map(repr, [*given, campaign.key]))}, not both",
                               experiment=name, key=campaign.key)
        given.append(campaign.key)
        spec = campaign.check_document(experiment, source)
    if "export" in experiment:
        from ..export_spec import check_export_block  # the trackers' packages are imported by the exporter only

        check_export_block(experiment["export"], source, name)
    for key in experiment:
        if key not in KNOWN_KEYS and key not in experiment.get("keep_keys", ()):
            warn(f"{source}: experiment '{name}': unknown key '{key}' (known: {', '.join(sorted(KNOWN_KEYS))}); "
                 "it is passed to the experiment unchanged")
    return spec


def _check_block(experiment: Mapping[str, Any], block: str, known: frozenset[str], source: ConfigSource,
                 name: str) -> Mapping[str, Any]:
    """A `random:` or `custom:` block: a mapping of known keys whose `samples` is a count of points."""
    value = experiment[block]
    if not isinstance(value, Mapping):
        raise config_error(source, f"must be a mapping of {', '.join(sorted(known))}", experiment=name, key=block)
    for key in value:
        if key not in known:
            raise config_error(source, f"unknown key (known: {', '.join(sorted(known))})", experiment=name,
                               key=f"{block}.{key}")
    samples = value.get("samples")
    if isinstance(samples, bool) or not isinstance(samples, int) or not 1 <= samples <= MAX_SAMPLES:
        raise config_error(source, f"must be an integer from 1 to {MAX_SAMPLES:,}, got {samples!r}",
                           experiment=name, key=f"{block}.samples")
    return value


def _check_store(experiment: Mapping[str, Any], source: ConfigSource, name: str) -> None:
    """`store:` of the merged experiment, so that a DEFAULT document's or an override's value is checked as a
    document's own is. A steered campaign runs on either store (its journal is one file in the document's
    folder); a weighted ensemble is refused, and needs none: every walker's segment of every iteration is
    already in its experiment's one file (ensemble.store: a frame per iteration, pickled states included)."""
    if "store" in experiment and experiment["store"] not in STORES:
        raise config_error(source, f"must be one of {', '.join(STORES)}, got {experiment['store']!r}",
                           experiment=name, key="store")
    if experiment.get("store") != "compact":
        return
    if "ensemble" in experiment:
        raise config_error(source, "the compact store does not hold a weighted ensemble, nor need to: its walkers' "
                                   "segments of every iteration are already in one file per experiment "
                                   "(ensemble/iterations.cwe, one write per iteration, no file per walker); remove "
                                   "the key", experiment=name, key="store")


def _validate_random(experiment: Mapping[str, Any], source: ConfigSource, name: str) -> None:
    from .. import sampling

    random = _check_block(experiment, "random", RANDOM_KEYS, source, name)
    samples = random["samples"]
    if "seed" in random and (isinstance(random["seed"], bool) or not isinstance(random["seed"], int)):
        raise config_error(source, f"must be an integer, got {random['seed']!r}", experiment=name, key="random.seed")
    if not isinstance(random.get("params"), Mapping) or not random["params"]:
        raise config_error(source, "must be a non-empty mapping of parameters to distributions", experiment=name,
                           key="random.params")
    leaves = sampling.leaves(random["params"])
    for path, spec in leaves.items():
        problem = sampling.problem(spec)
        if problem:
            raise config_error(source, problem, experiment=name, key=f"random.params.{dotted(path)}")
    swept = set(flatten_paths(experiment.get("grid") or {})) | set(flatten_paths(experiment.get("list") or {}))
    if swept & set(leaves):
        shared = ", ".join(sorted(dotted(p) for p in swept & set(leaves)))
        raise config_error(source, f"parameter(s) {shared} also appear under 'grid' or 'list'", experiment=name,
                           key="random.params")
    without = random.get("without_replacement", False)
    if not isinstance(without, bool):
        raise config_error(source, f"must be true or false, got {without!r}", experiment=name,
                           key="random.without_replacement")
    if without:
        distributions = [sampling.Distribution.of(spec) for spec in leaves.values()]
        if any(d.choices is None for d in distributions):
            raise config_error(source, "needs every random parameter to be a list, a choice or a randint",
                               experiment=name, key="random.without_replacement")
        space = math.prod(d.choices or 0 for d in distributions)
        if space < samples:
            raise config_error(source, f"asks for {samples:,} distinct points of only {space:,}", experiment=name,
                               key="random.samples")


def _validate_custom(experiment: Mapping[str, Any], source: ConfigSource, name: str) -> None:
    if experiment.get("random") is not None:
        raise config_error(source, "give 'random' or 'custom', not both", experiment=name, key="custom")
    custom = _check_block(experiment, "custom", CUSTOM_KEYS, source, name)
    function = custom.get("function")
    if not isinstance(function, str) or not re.fullmatch(r"[\w.]+:[\w.]+", function):
        raise config_error(source, f"must name a function as 'module:name', got {function!r}", experiment=name,
                           key="custom.function")
    if not isinstance(custom.get("params"), Mapping) or not custom["params"]:
        raise config_error(source, "must be a non-empty mapping of parameters to lists of values", experiment=name,
                           key="custom.params")
    swept = set(flatten_paths(experiment.get("grid") or {})) | set(flatten_paths(experiment.get("list") or {}))
    for path, values in flatten_paths(custom["params"]).items():
        if not isinstance(values, list) or not values:
            raise config_error(source, f"must be a non-empty list of values, got {values!r}", experiment=name,
                               key=f"custom.params.{dotted(path)}")
        if path in swept:
            raise config_error(source, f"parameter {dotted(path)} also appears under 'grid' or 'list'",
                               experiment=name, key="custom.params")


def path_problem(value: Any) -> str | None:
    """Why `value` cannot be a folder path, or None: not text, empty, a NUL or control character, or a
    component longer than a file system allows (the run would fail after creating folders)."""
    if not isinstance(value, str) or not value.strip():
        return f"must be a folder name, got {value!r}"
    if any(ord(c) < 32 or c == "\x7f" for c in value):
        return f"must not hold control characters (NUL, newline...), got {value!r}"
    expanded = os.path.expanduser(os.path.expandvars(value))
    for component in expanded.split(os.sep):
        if len(component.encode("utf-8", "surrogateescape")) > MAX_PATH_COMPONENT:
            return (f"has a folder name of {len(component)} characters ({component[:20]}...); "
                    f"file systems allow {MAX_PATH_COMPONENT} bytes")
    return None

"""Reading a multi-document YAML config into validated experiment documents.

Pure functions over dicts apart from `load_config`, which reads the file:

    name: DEFAULT            # optional first document, deep-merged under every experiment
    repetitions: 3
    path: results
    ---
    name: fit                # one document per experiment
    iterations: 100
    params: {model: {width: 8}}
    grid: {lr: [0.1, 0.01]}  # expanded later by `cluster_work.expansion`

Every problem becomes one `ConfigError` naming the file, the experiment and the key.
"""
from __future__ import annotations

import copy
import logging
import os
import re
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from .errors import config_error

log = logging.getLogger("cluster_work")

REQUIRED_KEYS = ("name", "repetitions", "iterations", "path")
KNOWN_KEYS = frozenset(REQUIRED_KEYS + ("params", "grid", "list", "slurm"))
DEFAULT_NAME = "DEFAULT"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+=,-]*$")

Warn = Callable[[str], None]


class _SafeLoaderWithFloats(yaml.SafeLoader):
    """SafeLoader that also reads `1e-3` and `1E5` as floats (YAML 1.1 insists on a dot)."""


_SafeLoaderWithFloats.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                   |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                   |\.[0-9_]+(?:[eE][-+][0-9]+)?
                   |[-+]?\.(?:inf|Inf|INF)
                   |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."),
)


def parse_documents(text: str, source: str) -> list[Any]:
    """Parse YAML text into its documents, turning syntax errors into one-line ConfigErrors."""
    try:
        documents = list(yaml.load_all(text, Loader=_SafeLoaderWithFloats))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise config_error(source, f"invalid YAML{where}: {problem}") from None
    documents = [d for d in documents if d is not None]
    if not documents:
        raise config_error(source, "the file holds no experiment documents")
    return documents


def load_config(path: str | os.PathLike[str], warn: Warn = log.warning) -> list[dict[str, Any]]:
    """Read `path` and return one validated, DEFAULT-merged document per experiment."""
    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise config_error(source, f"cannot read the config file: {exc.strerror}") from None
    return merge_and_validate(parse_documents(text, source), source, warn)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `base` with `override` merged in; nested mappings merge key by key."""
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_and_validate(documents: list[Any], source: str, warn: Warn = log.warning) -> list[dict[str, Any]]:
    """Merge the optional DEFAULT document under each experiment and validate every one."""
    for number, document in enumerate(documents, start=1):
        if not isinstance(document, Mapping):
            raise config_error(source, f"document {number} must be a mapping of keys to values, "
                                       f"got {type(document).__name__}")
    default: Mapping[str, Any] = {}
    if documents[0].get("name") == DEFAULT_NAME:
        default, documents = documents[0], documents[1:]
    experiments = []
    seen: dict[str, int] = {}
    for number, document in enumerate(documents, start=2 if default else 1):
        if document.get("name") == DEFAULT_NAME:
            raise config_error(source, f"document {number}: only the first document may be named "
                                       f"'{DEFAULT_NAME}'")
        experiment = deep_merge(default, document)
        validate_experiment(experiment, source, number, warn)
        name = experiment["name"]
        if name in seen:
            raise config_error(source, f"duplicate experiment name (documents {seen[name]} and {number})",
                               experiment=name, key="name")
        seen[name] = number
        experiments.append(experiment)
    if not experiments:
        raise config_error(source, "the file holds a DEFAULT document but no experiment")
    return experiments


def validate_experiment(experiment: Mapping[str, Any], source: str, number: int,
                        warn: Warn = log.warning) -> None:
    """Check one merged experiment document; raise a ConfigError on the first problem."""
    label = experiment.get("name") if isinstance(experiment.get("name"), str) else f"document {number}"
    for key in REQUIRED_KEYS:
        if key not in experiment:
            raise config_error(source, "required key is missing (required: "
                                       f"{', '.join(REQUIRED_KEYS)})", experiment=label, key=key)
    name = experiment["name"]
    if not isinstance(name, str) or not _NAME_PATTERN.match(name) or ".." in name:
        raise config_error(source, "must be a non-empty name of letters, digits and . _ + = , - "
                                   f"that starts with a letter or digit (it names a folder), got {name!r}",
                           experiment=label, key="name")
    for key in ("repetitions", "iterations"):
        value = experiment[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise config_error(source, f"must be a positive integer, got {value!r}", experiment=name, key=key)
    if not isinstance(experiment["path"], str) or not experiment["path"].strip():
        raise config_error(source, f"must be a folder name, got {experiment['path']!r}",
                           experiment=name, key="path")
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
        for dotted, values in flatten_mapping(experiment[key]).items():
            if not isinstance(values, list) or not values:
                raise config_error(source, f"must be a non-empty list of values, got {values!r}",
                                   experiment=name, key=f"{key}.{dotted}")
            if key == "list":
                lengths[dotted] = len(values)
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise config_error(source, f"all lists must have the same length ({described})",
                           experiment=name, key="list")
    if experiment.get("grid") and experiment.get("list"):
        shared = set(flatten_mapping(experiment["grid"])) & set(flatten_mapping(experiment["list"]))
        if shared:
            raise config_error(source, f"parameter(s) {', '.join(sorted(shared))} appear under both "
                                       "'grid' and 'list'", experiment=name, key="grid")
    for key in experiment:
        if key not in KNOWN_KEYS:
            warn(f"{source}: experiment '{name}': unknown key '{key}' (known: {', '.join(sorted(KNOWN_KEYS))}); "
                 "it is passed to the experiment unchanged")


def flatten_mapping(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Flatten nested mappings into dotted keys: {'a': {'b': 1}} -> {'a.b': 1}."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten_mapping(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def set_dotted(mapping: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `mapping['a']['b'] = value` for `dotted == 'a.b'`, creating mappings on the way."""
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = mapping.get(part)
        if not isinstance(child, dict):
            child = mapping[part] = {}
        mapping = child
    mapping[leaf] = value

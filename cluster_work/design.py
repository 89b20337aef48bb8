"""Custom expansion strategies: a user's function that designs the points of a sweep, as in SmartSim.

    custom:
      function: "mypkg.design:latin_hypercube"   # (param_names, param_values, n) -> list of dicts
      samples: 32                                 # n
      params: {lr: [0.001, 0.01, 0.1], width: [8, 16, 32]}

The function gets the dotted parameter names, the list of candidate values of each, and `samples`; it
returns one dict per point, keyed by those names. It is called once per sweep: its points are frozen
on disk (atomically, by the store) when the sweep first runs, and every later run, resume and rank
reads them instead of calling it again, so a function that draws at random cannot change a running
sweep. Anything wrong with it is a config error naming `custom.function`, before anything is written.
"""
from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from typing import Any

from .config import KeyPath, dotted, flatten_paths
from .errors import config_error
from .expansion import expand_path
from .rows import to_plain
from .store import read_frozen_points
from .vocabulary import ConfigSource

Point = dict[KeyPath, Any]


def points(experiment: Mapping[str, Any], source: ConfigSource) -> tuple[list[Point], bool]:
    """The custom points of a validated experiment document, and whether they were frozen already."""
    frozen = read_frozen_points(os.path.join(expand_path(experiment["path"]), experiment["name"]), experiment["custom"])
    if frozen is not None:
        return frozen, True
    return call(experiment, source), False


def call(experiment: Mapping[str, Any], source: ConfigSource) -> list[Point]:
    """Call the document's design function and check what it returns (one line naming the key if wrong)."""
    custom, name = experiment["custom"], experiment["name"]

    def error(message: str) -> Exception:
        return config_error(source, message, experiment=name, key="custom.function")

    module_name, _, attribute = custom["function"].partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise error(f"cannot load {custom['function']!r} ({type(exc).__name__}: {exc})") from None
    candidates = flatten_paths(custom["params"])
    names = [dotted(path) for path in candidates]
    try:
        result = function(list(names), [list(values) for values in candidates.values()], custom["samples"])
    except Exception as exc:  # the user's function: any failure is theirs to see, in one line
        raise error(f"{custom['function']} raised {type(exc).__name__}: {exc}") from None
    if not isinstance(result, list) or not result or not all(isinstance(p, Mapping) for p in result):
        raise error(f"must return a non-empty list of dicts, got {type(result).__name__}")
    by_name = dict(zip(names, candidates))
    designed = []
    for number, point in enumerate(result):
        unknown = [str(key) for key in point if key not in by_name]
        if unknown:
            raise error(f"point {number} has key(s) {', '.join(unknown)}; known: {', '.join(names)}")
        designed.append({by_name[key]: to_plain(value) for key, value in point.items()})
    return designed

"""Points a policy adds to a campaign, and how an experiment's metric is reduced and ranked.

An added point is an experiment of the steered document: its params are the document's with the
point's own values set, its name `<base>__<values>_<tag><k>` (`k` counts the campaign's added points,
so names never depend on anything but the order of the policy's decisions, which is deterministic),
its folder `<path>/<base>/<values>_<tag><k>/`. The `values` part is the original ClusterWork's name
part of those values, as for a grid.
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..config import KeyPath, flatten_paths
from ..expansion import NAME_SEPARATOR, ExpandedDocument, ExpandedExperiment, folder_safe, original_token
from ..store import to_plain
from .actions import SteeringError
from .journal import Journal

Params = tuple[tuple[KeyPath, Any], ...]


def point_params(params: Mapping[str, Any]) -> Params:
    """A policy's `params` as (key path, value) pairs: nested mappings name nested parameters, and a key
    that holds a dot stays one key, as everywhere in a config."""
    if not isinstance(params, Mapping) or not params:
        raise SteeringError(f"a new point needs a non-empty mapping of parameter values, got {params!r}")
    return tuple((path, to_plain(value)) for path, value in flatten_paths(params).items())


def added_name(base: str, params: Params, tag: str, number: int) -> str:
    part = "_".join([original_token(path, value) for path, value in params] + [f"{tag}{number}"])
    return f"{base}{NAME_SEPARATOR}{folder_safe(part)}"


def expand_added(document: ExpandedDocument, params: Params, repetitions: int, iterations: int,
                 name: str) -> ExpandedExperiment:
    """The experiment of an added point of `document`, named `name` (see `added_name`)."""
    return document.added_experiment(name, dict(params), repetitions, iterations)


def read_added(document: ExpandedDocument, journal: Journal) -> list[ExpandedExperiment]:
    """The points a campaign added to `document`, from its journal alone (for `-p` and the summary)."""
    return [expand_added(document, tuple((tuple(path), value) for path, value in record["params"]),
                         record["repetitions"], record["iterations"], record["e"])
            for record in journal.read() if record["k"] == "add"]


class Experiments(Sequence[ExpandedExperiment]):
    """The campaign's experiments, configured then added, without listing a large grid."""

    def __init__(self, configured: Sequence[ExpandedExperiment], added: list[ExpandedExperiment]):
        self._configured, self._added = configured, added

    def __len__(self) -> int:
        return len(self._configured) + len(self._added)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        configured = len(self._configured)
        return self._configured[index] if index < configured else self._added[index - configured]


_REDUCERS: dict[str, Callable[[Sequence[float]], float]] = {
    "mean": statistics.fmean, "min": min, "max": max, "median": statistics.median}


def reduce(values: Sequence[float], how: str) -> float:
    """The metric of an experiment from its repetitions' values; a NaN anywhere makes it NaN."""
    if any(math.isnan(v) for v in values):
        return math.nan
    return float(_REDUCERS[how](values))


def badness(value: float, mode: str) -> float:
    """How bad `value` is, the lower the better whatever the mode; NaN is the worst of all."""
    if math.isnan(value):
        return math.inf
    return value if mode == "min" else -value


def metric_value(row: Mapping[str, Any], metric: str, where: str) -> float:
    """The metric of one saved row as a float (None counts as NaN); a missing column is an error."""
    if metric not in row:
        raise SteeringError(f"{where}: its results have no column '{metric}' (steer.metric must name a column that "
                            "iterate() returns)")
    value = row[metric]
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SteeringError(f"{where}: its '{metric}' is {value!r}, not a number") from None

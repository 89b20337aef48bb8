"""The `ensemble:` block of an experiment document, validated into an `EnsembleSpec`.

    ensemble:
      walkers: 10                 # initial walkers, from reset, equal weights
      coordinate: pcoord          # the row column used for binning and recycling
      bins: [0.5, 1.5, 2.5]       # bin edges (or {uniform: [low, high, count]})
      walkers_per_bin: 10
      recycle: {at_least: 80}     # or {at_most: x}; optional
      seed: 1                     # optional; default derived from the experiment's name
      resampler: huber_kim        # or "module:Class"

Edges are inner boundaries: k edges make k + 1 bins, (-inf, e0), [e0, e1), ..., [e(k-1), inf), so no
coordinate falls outside every bin. `{uniform: [low, high, count]}` is the edges low, ..., high of
`count` equal bins (plus the two outer ones). Every problem is one ConfigError naming the file, the
experiment and the key `ensemble.<key>`, raised before anything runs or is written.
"""
from __future__ import annotations

import bisect
import importlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import config_error
from ..seeding import seed_for
from ..vocabulary import ConfigSource

KEYS = frozenset({"walkers", "coordinate", "bins", "walkers_per_bin", "recycle", "seed", "resampler"})
HUBER_KIM = "huber_kim"
MAX_WALKERS = 1_000_000
MAX_EDGES = 100_000
_CLASS_PATTERN = re.compile(r"[\w.]+:[\w.]+")


@dataclass(frozen=True)
class EnsembleSpec:
    """A validated `ensemble:` block. `recycle` is ("at_least" | "at_most", threshold) or None."""

    walkers: int
    coordinate: str
    edges: tuple[float, ...]
    walkers_per_bin: int
    seed: int
    recycle: tuple[str, float] | None = None
    resampler: str = HUBER_KIM

    def bin_of(self, coordinate: float) -> int:
        """The bin of a coordinate: 0 below the first edge, len(edges) at or above the last."""
        return bisect.bisect_right(self.edges, coordinate)

    def reaches_target(self, coordinate: float) -> bool:
        if self.recycle is None:
            return False
        side, threshold = self.recycle
        return coordinate >= threshold if side == "at_least" else coordinate <= threshold


def check_ensemble_document(experiment: Mapping[str, Any], source: ConfigSource) -> EnsembleSpec:
    """Validate an experiment document that has an `ensemble:` block (its other keys are valid already).

    `repetitions` must be 1: an ensemble's walkers take the place of repetitions (`rep` in `reset` and
    `iterate` is the walker's slot), and its one store holds every walker. Independent ensembles (for
    error bars) are documents of their own, each with its own `ensemble.seed`. A document that gives no
    `repetitions` has 1 (`config.merge_and_validate`), whatever its DEFAULT document gives the others."""
    name = experiment["name"]
    if experiment["repetitions"] != 1:
        raise config_error(source, f"must be 1 for a weighted ensemble (its walkers are its repetitions: `rep` is "
                                   f"the walker's slot), got {experiment['repetitions']!r}; for independent "
                                   "ensembles give each a document of its own with its own ensemble.seed",
                           experiment=name, key="repetitions")
    return check_ensemble_block(experiment["ensemble"], source, name)


def check_ensemble_block(block: Any, source: ConfigSource | str, name: str) -> EnsembleSpec:
    """Validate the `ensemble:` block of experiment `name` (of the config file `source`)."""

    def error(key: str, message: str) -> Exception:
        return config_error(source, message, experiment=name, key=f"ensemble.{key}" if key else "ensemble")

    if not isinstance(block, Mapping):
        raise error("", f"must be a mapping of {', '.join(sorted(KEYS))}, got {type(block).__name__}")
    for key in block:
        if key not in KEYS:
            raise error(str(key), f"unknown key (known: {', '.join(sorted(KEYS))})")
    for key in ("walkers", "coordinate", "bins", "walkers_per_bin"):
        if key not in block:
            raise error(key, "required key is missing (required: walkers, coordinate, bins, walkers_per_bin)")
    walkers = _count(block["walkers"], MAX_WALKERS, lambda m: error("walkers", m))
    walkers_per_bin = _count(block["walkers_per_bin"], MAX_WALKERS, lambda m: error("walkers_per_bin", m))
    coordinate = block["coordinate"]
    if not isinstance(coordinate, str) or not coordinate:
        raise error("coordinate", f"must name a column of the rows iterate returns, got {coordinate!r}")
    edges = _edges(block["bins"], lambda key, m: error(key, m))
    seed = block.get("seed", seed_for(f"{name}\x00ensemble", 0))
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise error("seed", f"must be a non-negative integer, got {seed!r}")
    resampler = block.get("resampler", HUBER_KIM)
    if resampler != HUBER_KIM:
        if not isinstance(resampler, str) or not _CLASS_PATTERN.fullmatch(resampler):
            raise error("resampler", f"must be {HUBER_KIM!r} or a class as 'module:Class', got {resampler!r}")
        problem = _class_problem(resampler)
        if problem:
            raise error("resampler", problem)
    return EnsembleSpec(walkers, coordinate, edges, walkers_per_bin, seed,
                        _recycle(block.get("recycle"), lambda m: error("recycle", m)), resampler)


def _count(value: Any, limit: int, error: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise error(f"must be an integer from 1 to {limit:,}, got {value!r}")
    return value


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _edges(bins: Any, error: Any) -> tuple[float, ...]:
    if isinstance(bins, Mapping):
        if set(bins) != {"uniform"}:
            raise error("bins", f"a mapping must be {{uniform: [low, high, count]}}, got keys {sorted(map(str, bins))}")
        spec = bins["uniform"]
        if (not isinstance(spec, list) or len(spec) != 3 or not _finite(spec[0]) or not _finite(spec[1])
                or isinstance(spec[2], bool) or not isinstance(spec[2], int) or not 1 <= spec[2] < MAX_EDGES
                or not spec[0] < spec[1]):
            raise error("bins.uniform", f"must be [low, high, count] with low < high and a count from 1 to "
                                        f"{MAX_EDGES - 1:,}, got {spec!r}")
        low, high, count = float(spec[0]), float(spec[1]), spec[2]
        edges = [low + (high - low) * i / count for i in range(count)] + [high]
        if any(a >= b for a, b in zip(edges, edges[1:])):
            raise error("bins.uniform", f"{count} bins between {low} and {high} are too narrow for floats")
        return tuple(edges)
    if not isinstance(bins, list) or not bins or len(bins) > MAX_EDGES or not all(_finite(e) for e in bins):
        raise error("bins", f"must be a list of 1 to {MAX_EDGES:,} finite numbers (bin edges) or "
                            f"{{uniform: [low, high, count]}}, got {bins!r}"[:300])
    for position, (a, b) in enumerate(zip(bins, bins[1:])):
        if not a < b:
            raise error("bins", f"edges must increase, but edge {position + 1} ({b}) follows {a}")
    return tuple(float(e) for e in bins)


def _recycle(recycle: Any, error: Any) -> tuple[str, float] | None:
    if recycle is None:
        return None
    if (not isinstance(recycle, Mapping) or len(recycle) != 1 or next(iter(recycle)) not in ("at_least", "at_most")
            or not _finite(next(iter(recycle.values())))):
        raise error(f"must be {{at_least: x}} or {{at_most: x}} with a finite number x, got {recycle!r}")
    [(side, threshold)] = recycle.items()
    return side, float(threshold)


def load_class(text: str) -> Any:
    """The class named by 'module:Class' (attributes may be dotted: 'module:Outer.Inner')."""
    module_name, _, attribute = text.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def _class_problem(text: str) -> str | None:
    try:
        resampler = load_class(text)
    except (ImportError, AttributeError, ValueError) as exc:
        return f"cannot load {text!r} ({type(exc).__name__}: {exc})"
    if not isinstance(resampler, type) or not callable(getattr(resampler, "resample", None)):
        return f"{text!r} must be a class with a method resample(walkers, rng)"
    return None

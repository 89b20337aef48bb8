"""Resampling between weighted-ensemble iterations: pure functions of the walkers and a seeded generator.

After every iteration the walkers (in canonical order: by walker id) are grouped, and each group is
split and merged to its target count by the Huber-Kim algorithm, as WESTPA does:

1. split every walker heavier than twice the group's ideal weight (total / target) into
   ceil(weight / ideal) copies of equal weight;
2. merge the lightest walkers whose cumulative weight stays within the ideal weight, repeatedly;
3. split the heaviest walker in two, or merge the two lightest, until the group holds its target.

A merge keeps one walker of the merged ones, chosen with probability proportional to its weight, and
gives it their summed weight (math.fsum), so in expectation every walker's weight is preserved and the
total is conserved to rounding (1e-12 is checked). Groups are the bins of the progress coordinate;
walkers that reached the target form a group of their own, since they all restart from a basis state.

Reproducibility: the generator is seeded by (seed, iteration) alone, groups are visited in a fixed
order, walkers within a group in canonical order, so the next ensemble depends on nothing but the
previous one (not on block sizes, worker counts or the order in which outcomes arrived).
"""
from __future__ import annotations

import bisect
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from .spec import HUBER_KIM, EnsembleSpec, load_class

_WEIGHT = operator.itemgetter(1)  # of a NextWalker
BASIS_GROUP = -1  # the group of walkers that reached the target: resampled before the bins
WEIGHT_TOLERANCE = 1e-12


class Walker(NamedTuple):
    """A walker at the end of its segment, as a resampler sees it.

    `walker`: its id in this iteration (0 .. n-1, the canonical order); `bin`: the bin of its
    coordinate; `recycled`: it reached the target, so its successors restart from a basis state.
    """

    walker: int
    weight: float
    coordinate: float
    bin: int
    recycled: bool
    row: Mapping[str, Any]


class NextWalker(NamedTuple):
    """A walker of the next iteration: the walker it continues (`parent`, an id) and its weight."""

    parent: int
    weight: float


def rng_for(seed: int, iteration: int) -> np.random.Generator:
    """The generator of one iteration's resampling: the same for the same (seed, iteration), always."""
    return np.random.default_rng(np.random.SeedSequence([seed, iteration]))


class HuberKim:
    """The built-in resampler: Huber-Kim split and merge to `walkers_per_bin` in every occupied bin."""

    def __init__(self, spec: EnsembleSpec):
        self.target = spec.walkers_per_bin

    def resample(self, walkers: Sequence[Walker], rng: np.random.Generator) -> list[NextWalker]:
        groups: dict[int, list[NextWalker]] = {}
        for walker in walkers:
            key = BASIS_GROUP if walker.recycled else walker.bin
            groups.setdefault(key, []).append(NextWalker(walker.walker, walker.weight))
        return [child for key in sorted(groups) for child in resample_group(groups[key], self.target, rng)]


def resample_group(group: list[NextWalker], target: int, rng: np.random.Generator) -> list[NextWalker]:
    """Split and merge one group (in canonical order) to exactly `target` walkers (the module docstring)."""
    ideal = math.fsum(w.weight for w in group) / target
    walkers: list[NextWalker] = []
    for walker in group:
        if walker.weight > 2 * ideal:
            copies = math.ceil(walker.weight / ideal - 1e-9)  # 1e-9: 10.000000001 copies are 10
            walkers.extend([NextWalker(walker.parent, walker.weight / copies)] * copies)
        else:
            walkers.append(walker)
    while True:
        walkers.sort(key=_WEIGHT)  # stable: equal weights stay in canonical order
        lightest = bisect.bisect_right(list(itertools.accumulate(map(_WEIGHT, walkers))), ideal)
        if lightest < 2:
            break
        walkers = [_merge(walkers[:lightest], rng)] + walkers[lightest:]
    while len(walkers) < target:
        heaviest = walkers.pop(max(range(len(walkers)), key=lambda i: walkers[i].weight))  # the first of equals
        walkers.extend([NextWalker(heaviest.parent, heaviest.weight / 2)] * 2)
    while len(walkers) > target:
        walkers.sort(key=_WEIGHT)
        walkers = [_merge(walkers[:2], rng)] + walkers[2:]
    return walkers


def _merge(walkers: list[NextWalker], rng: np.random.Generator) -> NextWalker:
    """One walker of `walkers`, chosen with probability proportional to weight, with their total weight."""
    cumulative = list(itertools.accumulate(map(_WEIGHT, walkers)))
    chosen = min(bisect.bisect_right(cumulative, rng.uniform(0.0, cumulative[-1])), len(walkers) - 1)
    return NextWalker(walkers[chosen].parent, math.fsum(map(_WEIGHT, walkers)))


def make_resampler(spec: EnsembleSpec) -> Any:
    """The resampler of a spec: HuberKim, or the user's class (constructed with the spec)."""
    return HuberKim(spec) if spec.resampler == HUBER_KIM else load_class(spec.resampler)(spec)


def check_next(walkers: Sequence[Walker], result: Any) -> list[NextWalker]:
    """A resampler's result as NextWalkers, or a ValueError saying what is wrong with it: at least one
    walker, parents among this iteration's ids, finite positive weights, the total weight conserved."""
    try:
        children = [NextWalker(int(parent), float(weight)) for parent, weight in result]
    except (TypeError, ValueError) as exc:
        raise ValueError(f"must return (parent, weight) pairs ({type(exc).__name__}: {exc})") from None
    if not children:
        raise ValueError("returned no walkers")
    for child in children:
        if not 0 <= child.parent < len(walkers):
            raise ValueError(f"returned parent {child.parent}, not a walker of this iteration (0..{len(walkers) - 1})")
        if not (math.isfinite(child.weight) and child.weight > 0):
            raise ValueError(f"returned weight {child.weight} (weights must be finite and positive)")
    before, after = math.fsum(w.weight for w in walkers), math.fsum(c.weight for c in children)
    if abs(after - before) > WEIGHT_TOLERANCE:
        raise ValueError(f"changed the total weight from {before!r} to {after!r}")
    return children

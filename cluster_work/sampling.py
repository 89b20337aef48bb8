"""Reproducible random parameter values for `random:` expansion, independent of any library's generator.

Every value is a function of (seed, parameter path, sample index) alone, computed with blake2b:
- the same seed gives byte-identical points in every process, on every backend, after a resume, and
  with any numpy version (numpy guarantees no stream across versions; we use none);
- raising `samples` keeps every earlier point (sample i never depends on how many there are);
- adding a parameter leaves the others' values unchanged (each parameter draws from its own stream).
Without replacement, points are the prefix of a seeded permutation of the (finite) space of choices,
built by a sparse Fisher-Yates shuffle, so a longer prefix again keeps the earlier points.

    random:
      samples: 40
      seed: 7
      params:
        lr: {loguniform: [1.0e-5, 1.0e-1]}
        dropout: {uniform: [0.0, 0.5]}
        layers: {randint: [2, 9]}          # integers 2..8
        activation: {choice: [relu, tanh]}
        batch_size: [16, 32, 64]           # a bare list: choose among these
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("uniform", "loguniform", "randint", "choice")
_TWO_64 = 2**64


def _word(seed: int, stream: str, index: int, attempt: int = 0) -> int:
    """A uniformly distributed 64-bit integer for (seed, stream, index, attempt)."""
    key = f"{seed}\x00{stream}\x00{index}\x00{attempt}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "little")


def unit(seed: int, stream: str, index: int) -> float:
    """A float uniform in [0, 1): the top 53 bits of the word (every double in the grid 2^-53 equally likely)."""
    return (_word(seed, stream, index) >> 11) / 2**53


def below(seed: int, stream: str, index: int, count: int) -> int:
    """An integer uniform in [0, count), exactly: words past the largest multiple of `count` are redrawn."""
    limit = _TWO_64 - _TWO_64 % count
    attempt = 0
    while True:
        word = _word(seed, stream, index, attempt)
        if word < limit:
            return word % count
        attempt += 1


@dataclass(frozen=True)
class Distribution:
    """One random parameter: `kind` in KINDS and its arguments ([low, high] or the values to choose from)."""

    kind: str
    arguments: tuple[Any, ...]

    @staticmethod
    def of(spec: Any) -> Distribution:
        """A distribution from its config form (a bare list is a choice); validated by the config."""
        if isinstance(spec, list):
            return Distribution("choice", tuple(spec))
        [(kind, arguments)] = spec.items()
        return Distribution(kind, tuple(arguments))

    @property
    def choices(self) -> int | None:
        """How many values it can take, where that is finite (choice, randint)."""
        if self.kind == "choice":
            return len(self.arguments)
        if self.kind == "randint":
            return int(self.arguments[1]) - int(self.arguments[0])
        return None

    def value_at(self, position: int) -> Any:
        """The `position`-th of its finite values (choice, randint)."""
        return self.arguments[position] if self.kind == "choice" else int(self.arguments[0]) + position

    def draw(self, seed: int, stream: str, index: int) -> Any:
        count = self.choices
        if count is not None:
            return self.value_at(below(seed, stream, index, count))
        low, high = (float(a) for a in self.arguments)
        u = unit(seed, stream, index)
        if self.kind == "uniform":
            return low + u * (high - low)
        return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))  # loguniform


def problem(spec: Any) -> str | None:
    """Why `spec` is no distribution (one line), or None."""
    if isinstance(spec, list):
        return None if spec else "a list to choose from must not be empty"
    if not isinstance(spec, Mapping) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        return f"must be a list of values or one of {{{': [...], '.join(KINDS)}: [...]}}, got {spec!r}"
    [(kind, arguments)] = spec.items()
    if kind == "choice":
        return None if isinstance(arguments, list) and arguments else "choice needs a non-empty list"
    if not (isinstance(arguments, list) and len(arguments) == 2 and all(
            isinstance(a, (int, float)) and not isinstance(a, bool) and math.isfinite(a) for a in arguments)):
        return f"{kind} needs [low, high], two finite numbers, got {arguments!r}"
    low, high = arguments
    if kind == "randint" and not all(isinstance(a, int) for a in arguments):
        return f"randint needs two integers [low, high) (high excluded), got {arguments!r}"
    if not low < high:
        return f"{kind} needs low < high, got {arguments!r}"
    if kind == "loguniform" and low <= 0:
        return f"loguniform needs 0 < low < high, got {arguments!r}"
    return None


class Sampler:
    """The random points of one document: sample i's values for every random parameter, on demand."""

    def __init__(self, distributions: Mapping[tuple[str, ...], Distribution], samples: int, seed: int,
                 without_replacement: bool = False):
        self.distributions, self.samples, self.seed = dict(distributions), samples, seed
        self.without_replacement = without_replacement
        self._sizes = [d.choices or 0 for d in self.distributions.values()]
        self._permutation: dict[int, int] = {}  # the sparse Fisher-Yates shuffle's swapped positions
        self._shuffled = 0

    @property
    def space(self) -> int:
        """How many distinct points there are (without replacement; every distribution finite)."""
        return math.prod(self._sizes)

    def point(self, index: int) -> dict[tuple[str, ...], Any]:
        if self.without_replacement:
            return self._distinct_point(index)
        return {path: d.draw(self.seed, "\x1f".join(path), index) for path, d in self.distributions.items()}

    def _distinct_point(self, index: int) -> dict[tuple[str, ...], Any]:
        position = self._position(index)
        point = {}
        for (path, distribution), size in reversed(list(zip(self.distributions.items(), self._sizes))):
            position, digit = divmod(position, size)
            point[path] = distribution.value_at(digit)
        return {path: point[path] for path in self.distributions}

    def _position(self, index: int) -> int:
        """Entry `index` of the seeded permutation of range(space): positions 0..index are shuffled in order,
        each swapped with one drawn from those after it, so entry i never depends on later draws."""
        space = self.space
        while self._shuffled <= index:
            i = self._shuffled
            j = i + below(self.seed, "\x1fpermutation", i, space - i)
            self._permutation[i], self._permutation[j] = (self._permutation.get(j, j), self._permutation.get(i, i))
            self._shuffled += 1
        return self._permutation.get(index, index)


def default_seed(base_name: str) -> int:
    """The seed of an experiment document that names none: derived from its base name, so it is stable."""
    return int.from_bytes(hashlib.blake2b(f"random\x00{base_name}".encode(), digest_size=4).digest(), "little")


def leaves(mapping: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """The random parameters of `random.params`: nested mappings down to a distribution or a list."""
    found: dict[tuple[str, ...], Any] = {}
    for key, value in mapping.items():
        path = (*prefix, str(key))
        if isinstance(value, Mapping) and not (len(value) == 1 and next(iter(value)) in KINDS) and value:
            found.update(leaves(value, path))
        else:
            found[path] = value
    return found


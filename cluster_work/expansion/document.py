"""The experiments of one document, by `grid` (product), `list` (zip), `random` or `custom` points, built
on demand: a 10^6-point grid costs its axes, not 10^6 configs."""
from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .. import sampling
from ..config import KeyPath, Warn, deep_merge, flatten_paths, set_path
from ..errors import config_error
from ..paths import SweepPaths, experiment_folder, log_folder
from ..vocabulary import ConfigSource
from .experiment import ExpandedExperiment, ExperimentSequence, expand_path
from .names import MAX_FOLDER_NAME, NAME_SEPARATOR, digest, escape, folder_safe, original_token, typed_text

DesignedPoints = tuple[list[dict[KeyPath, Any]], bool]  # a custom strategy's points, and whether they were frozen


class ExpandedDocument(ExperimentSequence):
    """The experiments of one document, in the order grid (last key fastest) x list, built on demand.

    A 10^6-point grid costs its axes, not 10^6 configs: an experiment is made when it is looked at.
    Names are checked for clashes without listing them where that is provable from the axes alone (each
    axis' values give distinct name parts without '_', so the joined names are distinct too); only a
    document where it is not lists its names once, to give clashing ones their longer form. `source`: the
    config it was read from, which a later check of the document (a campaign's) names in its messages."""

    def __init__(self, experiment: Mapping[str, Any], default_params: Mapping[str, Any] | None,
                 source: ConfigSource, warn: Warn, custom_points: DesignedPoints | None = None):
        self.document, self.base, self.source = experiment, experiment["name"], source
        self.root = expand_path(experiment["path"])
        self.base_folder = SweepPaths(self.root).document_folder(self.base)
        self._base_params = deep_merge(default_params or {}, experiment.get("params") or {})
        grid = flatten_paths(experiment.get("grid") or {})
        listed = flatten_paths(experiment.get("list") or {})
        self._grid = list(grid.items())
        self._list_length = len(next(iter(listed.values()))) if listed else 1
        self._list_points = [[(path, values[j]) for path, values in listed.items()] for j in range(self._list_length)]
        random = experiment.get("random") or {}
        self.sampler = sampling.Sampler(
            {path: sampling.Distribution.of(spec) for path, spec in sampling.leaves(random["params"]).items()},
            random["samples"], random.get("seed", sampling.default_seed(self.base)),
            random.get("without_replacement", False)) if random else None
        # a custom strategy's points (see cluster_work.design) and whether they are frozen on disk already
        self.custom_points: list[dict[KeyPath, Any]] | None = custom_points[0] if custom_points else None
        self.custom_frozen = bool(custom_points and custom_points[1])
        self.campaign_spec: Any = None  # its campaign block's typed spec, where validation made one (`Documents`)
        self._samples = self.sampler.samples if self.sampler else len(self.custom_points) if self.custom_points else 1
        self.varies = bool(grid or listed or random or self.custom_points)
        self._size = math.prod(len(values) for _, values in self._grid) * self._list_length * self._samples
        self._grid_tokens = [[original_token(path, value) for value in values] for path, values in self._grid]
        self._list_tokens = [[original_token(path, value) for path, value in point] for point in self._list_points]
        self._longer: dict[int, str] = {} if self._provably_distinct() else self._longer_forms(source)
        self._name_axes_made: tuple[list[list[str]] | None] | None = None
        self._encoded_axes: dict[tuple[Callable[[KeyPath, Any], str], str], list[list[str]]] = {}
        self._warn_renamed(warn)

    def __len__(self) -> int:
        return self._size

    def _at(self, position: int) -> ExpandedExperiment:
        return self._make(position)

    def __iter__(self) -> Iterator[ExpandedExperiment]:
        return map(self._make, range(self._size))

    def _indices(self, index: int) -> tuple[list[int], int, int]:
        """The value index on each grid axis, the list position and the random sample of experiment `index`
        (grid x list x samples, the sample fastest)."""
        rest, sample = divmod(index, self._samples)
        rest, position = divmod(rest, self._list_length)
        digits = []
        for _, values in reversed(self._grid):
            rest, digit = divmod(rest, len(values))
            digits.append(digit)
        return digits[::-1], position, sample

    def _point(self, index: int) -> dict[KeyPath, Any]:
        digits, position, sample = self._indices(index)
        point = {path: values[d] for (path, values), d in zip(self._grid, digits)}
        point.update(self._list_points[position])
        if self.sampler:
            point.update(self.sampler.point(sample))
        elif self.custom_points:
            point.update(self.custom_points[sample])
        return point

    def _original_part(self, index: int) -> str:
        """The original's name part; a random or custom point adds `sample<i>` (a float never names a folder)."""
        digits, position, sample = self._indices(index)
        tokens = [axis[d] for axis, d in zip(self._grid_tokens, digits)] + self._list_tokens[position]
        return "_".join(tokens + ([f"sample{sample}"] if self.sampler or self.custom_points else []))

    def _make(self, index: int) -> ExpandedExperiment:
        if not self.varies:
            return ExpandedExperiment(self.base, self.base, document=self)
        original = self._original_part(index)
        part = self._longer.get(index) or folder_safe(original)
        name = f"{self.base}{NAME_SEPARATOR}{part}"
        original_name = f"{self.base}{NAME_SEPARATOR}{original}" if part != original else ""
        return ExpandedExperiment(name, self.base, None, self._point(index), original_name, self)

    def folder_parts(self, start: int = 0) -> Iterator[str]:
        """Each experiment's `params_part` (its folder in the document's), in order from experiment `start` on,
        without making the experiments: where every name is the original's as it is (no clash, nothing to
        escape or cut), the axes' name parts joined by itertools (0.2 us an experiment instead of 5)."""
        if not self.varies:
            return iter([""][start:])
        axes = self._name_axes()
        if axes is not None:
            return map("_".join, product_from(axes, start))
        return (self._longer.get(index) or folder_safe(self._original_part(index))
                for index in range(start, self._size))

    def _name_axes(self) -> list[list[str]] | None:
        """The name part of each axis' values, where every name is the original's as it is (else None); made once
        (a document named run by run, from any experiment on, asks again for each run)."""
        if self._name_axes_made is None:
            axes = list(self._grid_tokens)
            if self._list_points[0]:
                axes.append(["_".join(point) for point in self._list_tokens])
            if self.sampler or self.custom_points:
                axes.append([f"sample{sample}" for sample in range(self._samples)])
            longest = sum(max(map(len, axis)) for axis in axes) + len(axes) - 1
            fast = not self._longer and longest <= MAX_FOLDER_NAME and all(
                escape(token) == token not in (".", "..") for axis in axes for token in axis)
            self._name_axes_made = (axes if fast else None,)
        return self._name_axes_made[0]

    def names(self, start: int = 0) -> Iterator[str]:
        """Each experiment's name, in order from experiment `start` on, without making the experiments (see
        `folder_parts`)."""
        if not self.varies:
            return iter([self.base][start:])
        return self.names_of(self.folder_parts(start))

    def names_of(self, parts: Iterable[str]) -> Iterator[str]:
        """The names of the experiments whose `folder_parts` are `parts` (of those on disk, say: no other's made)."""
        if not self.varies:
            return (self.base for _ in parts)
        return map(f"{self.base}{NAME_SEPARATOR}".__add__, parts)

    def joined_points(self, encode: Callable[[KeyPath, Any], str], separator: str, start: int = 0) -> Iterator[str]:
        """For each experiment, in order from experiment `start` on, `separator.join(encode(path, value) for each
        of its varied values)`, from each axis' values encoded once (a random or custom document's from each
        point)."""
        if self.sampler or self.custom_points:
            return (separator.join(encode(path, value) for path, value in self._point(index).items())
                    for index in range(start, self._size))
        axes = self._encoded_axes.get((encode, separator))
        if axes is None:  # (made once for each `encode`: a document joined run by run asks again for each run)
            axes = [[encode(path, value) for value in values] for path, values in self._grid]
            if self._list_points[0]:
                axes.append([separator.join(encode(path, value) for path, value in point)
                             for point in self._list_points])
            self._encoded_axes = {(encode, separator): axes}  # (the last one only: memory stays its axes')
        return map(separator.join, product_from(axes, start))

    def config_of(self, experiment: ExpandedExperiment, folder: str | None = None) -> dict[str, Any]:
        """The experiment's config (see ExpandedExperiment), from this document and its parameter values;
        `folder`: its folder, where it is not one of the document's own points (see `added_experiment`)."""
        params = deep_merge(self._base_params, {})
        for path, value in experiment.varied.items():
            set_path(params, path, value)
        folder = folder or self.folder_of(experiment)
        config = {key: value for key, value in self.document.items() if key not in ("grid", "list")}
        config.update(name=experiment.name, experiment_name=self.base, params=params,
                      _config_path=self.document["path"], _experiment_path=self.base_folder, path=folder,
                      log_path=(os.path.join(expand_path(self.document["log_path"]), experiment.name)
                                if "log_path" in self.document else log_folder(folder)))
        return config

    def folder_of(self, experiment: ExpandedExperiment) -> str:
        return experiment_folder(self.base_folder, experiment.params_part if self.varies else "")

    def added_experiment(self, name: str, varied: dict[KeyPath, Any], repetitions: int,
                         iterations: int) -> ExpandedExperiment:
        """An experiment a steered campaign adds to this document (none of its own points): `name` is
        `<base>__<part>`, its folder `<base folder>/<part>/` (even where the document varies nothing), its
        params the document's with `varied` set, its repetitions and iterations its own."""
        part = name[len(self.base) + len(NAME_SEPARATOR):]
        config = self.config_of(ExpandedExperiment(name, self.base, None, dict(varied)),
                                experiment_folder(self.base_folder, part))
        config.update(repetitions=repetitions, iterations=iterations)
        return ExpandedExperiment(name, self.base, config, dict(varied))

    def _provably_distinct(self) -> bool:
        safe_axes = [[escape(t) for t in axis] for axis in self._grid_tokens]
        safe_list = [tuple(escape(t) for t in point) for point in self._list_tokens]
        tokens = [t for axis in safe_axes for t in axis] + [t for point in safe_list for t in point]
        return (all("_" not in t for t in tokens) and all(len(set(axis)) == len(axis) for axis in safe_axes)
                and len(set(safe_list)) == len(safe_list))

    def _longer_forms(self, source: ConfigSource) -> dict[int, str]:
        """Where the original's rule gives several experiments one folder: each its name plus a hash of its
        typed values. Two experiments with equal values are a config error."""
        by_part: dict[str, list[int]] = {}
        for index in range(self._size):
            by_part.setdefault(folder_safe(self._original_part(index)), []).append(index)
        longer: dict[int, str] = {}
        for part, indices in by_part.items():
            if len(indices) < 2:
                continue
            typed = {index: typed_text(self._point(index)) for index in indices}
            if len(set(typed.values())) < len(indices):
                raise config_error(source, f"two parameter sets are the same ({self.base}{NAME_SEPARATOR}{part}): "
                                           "a grid or list repeats a value", experiment=self.base, key="grid")
            longer.update((index, folder_safe(f"{part}-{digest(typed[index])}")) for index in indices)
        return longer

    def _warn_renamed(self, warn: Warn) -> None:
        examples = [f"{self.base + NAME_SEPARATOR + self._original_part(i)!r} -> {self._make(i).name!r}"
                    for i in list(self._longer)[:3]]
        escaped = sorted({t for axis in self._grid_tokens for t in axis if escape(t) != t}
                         | {t for point in self._list_tokens for t in point if escape(t) != t})
        examples += [f"{t!r} -> {escape(t)!r}" for t in escaped[:3 - len(examples)]]
        longest = sum(max(map(len, axis)) for axis in self._grid_tokens) + len(self._grid_tokens)
        longest += max((sum(map(len, point)) + len(point) for point in self._list_tokens), default=0)
        if longest > MAX_FOLDER_NAME:
            examples.append(f"names over {MAX_FOLDER_NAME} characters are cut and end in a hash")
        if examples:
            warn(f"experiment '{self.base}': some expanded names differ from the original ClusterWork's, which "
                 f"would clash or cannot name a folder: {'; '.join(examples)}")


def product_from(axes: Sequence[Sequence[Any]], start: int) -> Iterator[tuple[Any, ...]]:
    """`itertools.product(*axes)` from its item `start` on, without making the items before it (a run of
    experiments far into a document names them at once): for each axis from the fastest, the items that keep
    the slower axes' values of item `start` and take this one's next values, chained."""
    if start <= 0 or not all(axes):
        return itertools.product(*axes) if start <= 0 else iter(())
    digits, rest = [], start
    for axis in reversed(axes):
        rest, digit = divmod(rest, len(axis))
        digits.append(digit)
    if rest:  # past the end
        return iter(())
    digits.reverse()
    last = len(axes) - 1
    return itertools.chain.from_iterable(
        itertools.product(*([axis[digit]] for axis, digit in zip(axes[:k], digits)),
                          axes[k][digits[k] + (k != last):], *axes[k + 1:])
        for k in range(last, -1, -1))

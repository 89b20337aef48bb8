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

import bisect
import hashlib
import itertools
import json
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from . import sampling
from .config import KeyPath, Warn, deep_merge, dotted, flatten_paths, set_path
from .paths import SweepPaths, experiment_folder, log_folder

log = logging.getLogger("cluster_work")

NAME_SEPARATOR = "__"  # between the base name and the parameters of an expanded experiment
MAX_FOLDER_NAME = 200  # characters of the parameters part; longer ones are cut and suffixed with a hash


class ExpandedExperiment:
    """One parameter set of one experiment document: the unit that owns a results folder.

    `config` is what the experiment's hooks receive, with the original's keys: `name` (expanded),
    `experiment_name` (base), `path` (this folder), `log_path`, `_config_path` (the YAML's `path`),
    `_experiment_path` (`<path>/<base name>`), `params`, `repetitions`, `iterations`... It is built on
    first use from the document it was expanded from, so a huge grid costs only what is looked at.
    `original_name` is the original ClusterWork's name where cluster_work's differs (else '').
    """

    __slots__ = ("name", "base_name", "varied", "original_name", "_config", "_document")

    def __init__(self, name: str, base_name: str, config: dict[str, Any] | None = None,
                 varied: dict[KeyPath, Any] | None = None, original_name: str = "",
                 document: ExpandedDocument | None = None):
        self.name, self.base_name, self.original_name = name, base_name, original_name
        self.varied = varied or {}
        self._config, self._document = config, document

    @property
    def config(self) -> dict[str, Any]:
        if self._config is None:
            assert self._document is not None
            self._config = self._document.config_of(self)
        return self._config

    def __reduce__(self) -> tuple[Any, ...]:  # travels to workers with its config, not its whole document
        return ExpandedExperiment, (self.name, self.base_name, self.config, self.varied, self.original_name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExpandedExperiment) and (self.name, self.base_name) == (other.name, other.base_name)

    def __hash__(self) -> int:
        return hash((self.name, self.base_name))

    def __repr__(self) -> str:
        return f"ExpandedExperiment({self.name!r})"

    @property
    def path(self) -> str:
        """The folder holding this experiment's config and repetitions."""
        if self._config is None and self._document is not None:  # without building the config
            return self._document.folder_of(self)
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
        return (self._document.document if self._config is None and self._document else self.config)["repetitions"]

    @property
    def iterations(self) -> int:
        return (self._document.document if self._config is None and self._document else self.config)["iterations"]

    @property
    def store(self) -> str:
        """The document's `store:` (`folders`, the default, or `compact`), without building the config."""
        return (self._document.document if self._config is None and self._document else self.config).get(
            "store", "folders")


def expand_path(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


def sweep_paths(experiments: Iterable[ExpandedExperiment]) -> list[str]:
    """The sweep folders of these experiments, each once, in order (of whole documents, from the documents)."""
    if isinstance(experiments, Expansion):
        return list(dict.fromkeys(expand_path(d.document["path"]) for d in experiments.documents if len(d)))
    return list(dict.fromkeys(experiment.sweep_path for experiment in experiments))


def shorten_param(name: str) -> str:
    """The original's short names: every part but the last cut to 3 letters, the last one the initials
    of its words: 'optimizer.learning_rate' -> 'opt.lr', 'tau' -> 't'."""
    *parents, leaf = name.split(".")
    short_leaf = "".join(word[:1] for word in leaf.split("_"))
    return ".".join([p[:3] for p in parents] + [short_leaf])


def original_token(path: KeyPath, value: Any) -> str:
    """The original's name part for one parameter value: `'{short}{value}'` without quotes and spaces,
    brackets turned into '_' (opening) or dropped (closing), commas into '_'. The original cleaned the
    joined text, but every rule replaces single characters other than '_', so per value is the same.
    A value that holds a set (`!!set`) is written with the set sorted: Python prints a set in an order
    that changes with PYTHONHASHSEED, so the original's name of it changed from run to run."""
    text = f"{shorten_param(dotted(path))}{value if not _holds_set(value) else stable_repr(value)}"
    text = re.sub("[' ]", "", text)
    text = re.sub('["]', "", text)
    text = re.sub(r"[(\[]", "_", text)
    text = re.sub(r"[)\]]", "", text)
    return re.sub("[,]", "_", text)


def _holds_set(value: Any) -> bool:
    if isinstance(value, (set, frozenset)):
        return True
    if isinstance(value, (list, tuple)):
        return any(map(_holds_set, value))
    if isinstance(value, dict):
        return any(map(_holds_set, value.keys())) or any(map(_holds_set, value.values()))
    return False


def stable_repr(value: Any) -> str:
    """repr(value), but with every set's elements sorted by their own stable_repr, so that the text depends
    only on the value, never on the hash seed (lists, tuples and dicts keep their order, as repr does)."""
    if isinstance(value, (set, frozenset)):
        body = ", ".join(sorted(map(stable_repr, value)))
        if isinstance(value, frozenset):
            return f"frozenset({{{body}}})" if value else "frozenset()"
        return f"{{{body}}}" if value else "set()"
    if isinstance(value, list):
        return f"[{', '.join(map(stable_repr, value))}]"
    if isinstance(value, tuple):
        return f"({', '.join(map(stable_repr, value))}{',' if len(value) == 1 else ''})"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{stable_repr(k)}: {stable_repr(v)}" for k, v in value.items()) + "}"
    return repr(value)


_UNSAFE = re.compile(r"[/\\\x00-\x1f\x7f]")


def escape(text: str) -> str:
    """'/', '\\' and control characters percent-escaped (the original made sub-folders of a '/')."""
    return _UNSAFE.sub(lambda m: f"%{ord(m.group()):02X}", text)


def folder_safe(text: str) -> str:
    """`text` as one folder name: escaped, '.' and '..' escaped too, and an over-long name cut and
    suffixed with a hash of the whole."""
    safe = escape(text)
    if safe in (".", ".."):
        safe = safe.replace(".", "%2E")
    if len(safe) > MAX_FOLDER_NAME:
        safe = safe[:MAX_FOLDER_NAME - 11] + "-" + _digest(safe)
    return safe


def _digest(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8", "surrogateescape")).hexdigest()[:10]


def _typed(varied: Mapping[KeyPath, Any]) -> str:
    """A text that tells apart values the original's name confuses (1.0 and '1.0', 'a b' and 'ab')."""
    return json.dumps([[list(path), type(value).__name__, stable_repr(value)] for path, value in varied.items()])


class ExpandedDocument(Sequence[ExpandedExperiment]):
    """The experiments of one document, in the order grid (last key fastest) x list, built on demand.

    A 10^6-point grid costs its axes, not 10^6 configs: an experiment is made when it is looked at.
    Names are checked for clashes without listing them where that is provable from the axes alone (each
    axis' values give distinct name parts without '_', so the joined names are distinct too); only a
    document where it is not lists its names once, to give clashing ones their longer form."""

    def __init__(self, experiment: Mapping[str, Any], default_params: Mapping[str, Any] | None,
                 source: str, warn: Warn, custom_points: tuple[list[dict[KeyPath, Any]], bool] | None = None):
        self.document, self.base = experiment, experiment["name"]
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
        self._warn_renamed(warn)

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> ExpandedExperiment:  # type: ignore[override]
        if not -self._size <= index < self._size:
            raise IndexError(index)
        return self._make(index % self._size)

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

    def folder_parts(self) -> Iterator[str]:
        """Each experiment's `params_part` (its folder in the document's), in order, without making the
        experiments: where every name is the original's as it is (no clash, nothing to escape or cut), the
        axes' name parts joined by itertools (0.2 us an experiment instead of 5)."""
        if not self.varies:
            return iter([""])
        axes = list(self._grid_tokens)
        if self._list_points[0]:
            axes.append(["_".join(point) for point in self._list_tokens])
        if self.sampler or self.custom_points:
            axes.append([f"sample{sample}" for sample in range(self._samples)])
        longest = sum(max(map(len, axis)) for axis in axes) + len(axes) - 1
        if not self._longer and longest <= MAX_FOLDER_NAME and all(
                escape(token) == token not in (".", "..") for axis in axes for token in axis):
            return map("_".join, itertools.product(*axes))
        return (self._longer.get(index) or folder_safe(self._original_part(index)) for index in range(self._size))

    def names(self) -> Iterator[str]:
        """Each experiment's name, in order, without making the experiments (see `folder_parts`)."""
        if not self.varies:
            return iter([self.base])
        return (f"{self.base}{NAME_SEPARATOR}{part}" for part in self.folder_parts())

    def joined_points(self, encode: Callable[[KeyPath, Any], str], separator: str) -> Iterator[str]:
        """For each experiment, in order, `separator.join(encode(path, value) for each of its varied values)`,
        from each axis' values encoded once (a random or custom document's from each point)."""
        if self.sampler or self.custom_points:
            return (separator.join(encode(path, value) for path, value in self._point(index).items())
                    for index in range(self._size))
        axes = [[encode(path, value) for value in values] for path, values in self._grid]
        if self._list_points[0]:
            axes.append([separator.join(encode(path, value) for path, value in point) for point in self._list_points])
        return map(separator.join, itertools.product(*axes))

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

    def _longer_forms(self, source: str) -> dict[int, str]:
        """Where the original's rule gives several experiments one folder: each its name plus a hash of its
        typed values. Two experiments with equal values are a config error."""
        from .errors import config_error

        by_part: dict[str, list[int]] = {}
        for index in range(self._size):
            by_part.setdefault(folder_safe(self._original_part(index)), []).append(index)
        longer: dict[int, str] = {}
        for part, indices in by_part.items():
            if len(indices) < 2:
                continue
            typed = {index: _typed(self._point(index)) for index in indices}
            if len(set(typed.values())) < len(indices):
                raise config_error(source, f"two parameter sets are the same ({self.base}{NAME_SEPARATOR}{part}): "
                                           "a grid or list repeats a value", experiment=self.base, key="grid")
            longer.update((index, folder_safe(f"{part}-{_digest(typed[index])}")) for index in indices)
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


class Expansion(Sequence[ExpandedExperiment]):
    """Every expanded experiment of a config, document after document, each built on demand."""

    def __init__(self, documents: Sequence[ExpandedDocument]):
        self.documents = list(documents)
        self._ends = list(itertools.accumulate(len(d) for d in self.documents))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __getitem__(self, index: int) -> ExpandedExperiment:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        number = bisect.bisect_right(self._ends, index)
        return self.documents[number][index - (self._ends[number - 1] if number else 0)]

    def __iter__(self) -> Iterator[ExpandedExperiment]:
        return itertools.chain.from_iterable(self.documents)


CustomPoints = Callable[[Mapping[str, Any], str], tuple[list[dict[KeyPath, Any]], bool]]


def expand_all(experiments: Sequence[Mapping[str, Any]], default_params: Mapping[str, Any] | None = None,
               source: str = "config", warn: Warn = log.warning, custom_points: CustomPoints | None = None,
               ) -> Expansion:
    """Expand every experiment; warn on params unknown to `default_params`, fail on folder clashes.

    `custom_points(document, source)` gives a `custom:` document's points and whether they are frozen; by
    default `cluster_work.design.points` (the frozen points, else a call of the document's function)."""
    if custom_points is None:
        from .design import points as design_points

        custom_points = design_points
    documents = []
    specs: Mapping[str, Any] = getattr(experiments, "specs", {})  # parsed once, by validation (config.Documents)
    for experiment in experiments:
        designed = custom_points(experiment, source) if experiment.get("custom") else None
        documents.append(ExpandedDocument(experiment, default_params, source, warn, designed))
        documents[-1].campaign_spec = specs.get(experiment["name"])
        if default_params:
            _warn_unknown_params(experiment, default_params, source, warn)
    _check_separate_folders(documents, source)
    return Expansion(documents)


def _warn_unknown_params(experiment: Mapping[str, Any], default_params: Mapping[str, Any],
                         source: str, warn: Warn) -> None:
    known = set(flatten_paths(default_params))
    given = list(flatten_paths(experiment.get("params") or {}))
    for key in ("grid", "list"):
        given += list(flatten_paths(experiment.get(key) or {}))
    given += list(sampling.leaves((experiment.get("random") or {}).get("params") or {}))
    given += list(flatten_paths((experiment.get("custom") or {}).get("params") or {}))
    for path in dict.fromkeys(given):
        if not any(path[:length] in known for length in range(1, len(path) + 1)):
            warn(f"{source}: experiment '{experiment['name']}': parameter '{dotted(path)}' is not among the "
                 "experiment's _default_params (a typo?)")


def _check_separate_folders(documents: Sequence[ExpandedDocument], source: str) -> None:
    """Two experiment documents must not share a folder, nor hold one inside the other's (which could
    clash with one of its experiments): each document owns the tree below `<path>/<base name>`."""
    from .errors import config_error

    folders = [(os.path.normpath(os.path.abspath(d.base_folder)), d.base) for d in documents]
    for number, (folder, base) in enumerate(folders):
        for other, other_base in folders[:number]:
            if folder == other or folder.startswith(other + os.sep) or other.startswith(folder + os.sep):
                raise config_error(source, f"its folder {folder!r} overlaps experiment '{other_base}''s "
                                           f"folder {other!r}; rename one of them", experiment=base, key="name")

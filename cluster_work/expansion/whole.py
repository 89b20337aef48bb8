"""Every expanded experiment of a config, document after document (`expand_all`), and the checks across
documents: folders apart, parameters the experiment knows.

Pure: a `custom:` document's points come in through `custom_points`, from the layer that reads files
(`cluster_work.design.points`: the points frozen on disk, else a call of the document's function).
"""
from __future__ import annotations

import bisect
import itertools
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from .. import sampling
from ..config import Warn, dotted, flatten_paths
from ..errors import config_error
from ..vocabulary import ConfigSource
from .document import DesignedPoints, ExpandedDocument
from .experiment import ExpandedExperiment, ExperimentSequence, expand_path

log = logging.getLogger("cluster_work")


def sweep_paths(experiments: Iterable[ExpandedExperiment]) -> list[str]:
    """The sweep folders of these experiments, each once, in order (of whole documents, from the documents)."""
    if isinstance(experiments, Expansion):
        return list(dict.fromkeys(expand_path(d.document["path"]) for d in experiments.documents if len(d)))
    return list(dict.fromkeys(experiment.sweep_path for experiment in experiments))


class Expansion(ExperimentSequence):
    """Every expanded experiment of a config, document after document, each built on demand."""

    def __init__(self, documents: Sequence[ExpandedDocument]):
        self.documents = list(documents)
        self._ends = list(itertools.accumulate(len(d) for d in self.documents))

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def _at(self, position: int) -> ExpandedExperiment:
        number = bisect.bisect_right(self._ends, position)
        return self.documents[number][position - (self._ends[number - 1] if number else 0)]

    def __iter__(self) -> Iterator[ExpandedExperiment]:
        return itertools.chain.from_iterable(self.documents)


CustomPoints = Callable[[Mapping[str, Any], ConfigSource], DesignedPoints]


def expand_all(experiments: Sequence[Mapping[str, Any]], default_params: Mapping[str, Any] | None = None,
               source: ConfigSource | str | None = None, warn: Warn = log.warning,
               custom_points: CustomPoints | None = None) -> Expansion:
    """Expand every experiment; warn on params unknown to `default_params`, fail on folder clashes.

    `source`: the config the messages name; by default the one the loaded `config.Documents` carry.
    `custom_points(document, source)` gives a `custom:` document's points and whether they were frozen on
    disk already: the caller reads them (`cluster_work.design.points`), so that expansion reads no file.
    A `custom:` document without it is a mistake of the caller's (ValueError): calling the document's
    function instead would not give a running sweep's frozen points."""
    config = ConfigSource.of(source) if source is not None else getattr(experiments, "source", ConfigSource("config"))
    documents = []
    specs: Mapping[str, Any] = getattr(experiments, "specs", {})  # parsed once, by validation (config.Documents)
    for experiment in experiments:
        designed = None
        if experiment.get("custom"):
            if custom_points is None:
                raise ValueError(f"expand_all: experiment {experiment['name']!r} has a 'custom:' block: pass "
                                 "custom_points (cluster_work.design.points)")
            designed = custom_points(experiment, config)
        documents.append(ExpandedDocument(experiment, default_params, config, warn, designed))
        documents[-1].campaign_spec = specs.get(experiment["name"])
        if default_params:
            _warn_unknown_params(experiment, default_params, config, warn)
    _check_separate_folders(documents, config)
    return Expansion(documents)


def _warn_unknown_params(experiment: Mapping[str, Any], default_params: Mapping[str, Any],
                         source: ConfigSource, warn: Warn) -> None:
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


def _check_separate_folders(documents: Sequence[ExpandedDocument], source: ConfigSource) -> None:
    """Two experiment documents must not share a folder, nor hold one inside the other's (which could
    clash with one of its experiments): each document owns the tree below `<path>/<base name>`."""
    folders = [(os.path.normpath(os.path.abspath(d.base_folder)), d.base) for d in documents]
    for number, (folder, base) in enumerate(folders):
        for other, other_base in folders[:number]:
            if folder == other or folder.startswith(other + os.sep) or other.startswith(folder + os.sep):
                raise config_error(source, f"its folder {folder!r} overlaps experiment '{other_base}''s "
                                           f"folder {other!r}; rename one of them", experiment=base, key="name")

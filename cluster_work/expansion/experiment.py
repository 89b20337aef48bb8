"""One expanded experiment: a parameter set of one document, the unit that owns a results folder."""
from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, overload

from ..config import KeyPath
from .names import NAME_SEPARATOR

if TYPE_CHECKING:
    from .document import ExpandedDocument


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


class ExperimentSequence(Sequence[ExpandedExperiment]):
    """A sequence of experiments made when asked for (a document's, a whole config's): indexing, negative
    indices and slices as a list's; a subclass gives its length and `_at(position)`, 0 <= position < len."""

    def _at(self, position: int) -> ExpandedExperiment:
        raise NotImplementedError

    @overload
    def __getitem__(self, index: int) -> ExpandedExperiment: ...

    @overload
    def __getitem__(self, index: slice) -> list[ExpandedExperiment]: ...

    def __getitem__(self, index: int | slice) -> ExpandedExperiment | list[ExpandedExperiment]:
        if isinstance(index, slice):  # (a Sequence's: made one by one)
            return [self[position] for position in range(*index.indices(len(self)))]
        size = len(self)
        if not -size <= index < size:
            raise IndexError(index)
        return self._at(index % size)


def expand_path(path: str) -> str:
    return os.path.expanduser(os.path.expandvars(path))


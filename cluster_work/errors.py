"""Exceptions that mark a user mistake (reported in one line, no traceback) or a store failure."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .vocabulary import ConfigSource


class ClusterWorkError(Exception):
    """Base of the errors the CLI reports as one readable line instead of a traceback."""


class IncompleteConfigurationError(ClusterWorkError):
    """A config is malformed: bad YAML, a missing or mistyped key, an unknown experiment.

    Kept under the original ClusterWork's name so that clients catching it keep working.
    """


ConfigError = IncompleteConfigurationError


class InvalidParameterArgument(ClusterWorkError):
    """Raised by an experiment on a bad parameter value; reported like a config error."""


class ResultsNotFoundError(ClusterWorkError, FileNotFoundError):
    """`load_results` was given a path that is neither a config file nor a results folder (a typo)."""


class StoreError(ClusterWorkError):
    """The results folder cannot be read or written (full disk, no permission, vanished path)."""


def config_error(source: ConfigSource | str, message: str, experiment: str | None = None,
                 key: str | None = None) -> ConfigError:
    """Build a ConfigError that names the file (`str(source)`: its name as the user gave it), the experiment
    and the key, in that order."""
    where = str(source)
    if experiment is not None:  # a name with a newline must not break the one line
        where += f": experiment '{experiment if experiment.isprintable() else repr(experiment)[1:-1]}'"
    if key is not None:
        where += f": '{key}'"
    return ConfigError(f"{where}: {message}")

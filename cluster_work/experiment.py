"""The `ClusterWork` base class: the user's hooks plus the fields the runner fills in."""
from __future__ import annotations

import abc
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .original_api import OriginalApi
from .store import iteration_folder_name

if TYPE_CHECKING:
    from .expansion import ExpandedExperiment


class ClusterWork(OriginalApi, abc.ABC):
    """Subclass this, implement `reset` and `iterate`, and call `MyExperiment.run()`. The original's
    classmethods (`load_experiments`, `init_from_config`, `load_experiment_results`...) come from OriginalApi.

    During a repetition the runner sets `_name`, `_params`, `_path`, `_log_path`, `_log_path_rep`,
    `_rep`, `_it`, `_iterations`, `_seed`, `_no_gui`, `_COMM` (the MPI communicator of the
    repetition's group, or None without MPI) and `_config_file` (the config's absolute path).
    """

    _default_params: ClassVar[dict[str, Any]] = {}
    _restore_supported: ClassVar[bool] = False
    _RESTART_FULL_REPETITIONS: ClassVar[bool] = False
    _NO_GUI: ClassVar[bool] = False
    _LOG_LEVEL: ClassVar[str] = "INFO"
    _CW_LOG_LEVEL: ClassVar[str] = "INFO"
    _MP_CONTEXT: ClassVar[str] = "forkserver" if os.name == "posix" else "spawn"

    def __init__(self) -> None:
        self._name: str | None = None
        self._params: dict[str, Any] | None = None
        self._path: str | None = None
        self._log_path: str | None = None
        self._log_path_rep: str | None = None
        self._rep: int | None = None
        self._it: int | None = None
        self._iterations: int | None = None
        self._repetitions: int | None = None
        self._plotting: bool = True
        self._seed: int | None = None
        self._no_gui: bool = self._NO_GUI
        self._COMM: Any = None
        self._config_file: str | None = None

    @property
    def _log_path_rep(self) -> str | None:
        """The repetition's folder for its own files (ends in a separator, as the original's), created when
        first read: a repetition that writes nothing of its own costs no folder."""
        path = getattr(self, "_ClusterWork__log_path_rep", None)  # a subclass may skip our __init__
        if path is not None and not getattr(self, "_ClusterWork__log_path_rep_made", False):
            if not os.path.isdir(path):
                os.makedirs(path, exist_ok=True)
            self.__log_path_rep_made = True
        return path

    @_log_path_rep.setter
    def _log_path_rep(self, path: str | None) -> None:
        self.__log_path_rep, self.__log_path_rep_made = path, False

    @property
    def _log_path_it(self) -> str | None:
        """A folder for the current iteration's files, created on first use."""
        if self._log_path_rep is None or self._it is None:
            return None
        path = os.path.join(self._log_path_rep, iteration_folder_name(self._it), "")  # a separator at the end,
        os.makedirs(path, exist_ok=True)                                               # as the original's
        return path

    @abc.abstractmethod
    def reset(self, config: dict[str, Any], rep: int) -> None:
        """Set up repetition `rep` (called before its first iteration and before a restore)."""

    @abc.abstractmethod
    def iterate(self, config: dict[str, Any], rep: int, n: int) -> dict[str, Any] | None:
        """Run iteration `n` of repetition `rep`; return one row of results (nested dicts allowed)."""

    def save_state(self, config: dict[str, Any], rep: int, n: int) -> None:
        """Store what `restore_state` needs to continue after iteration `n` (restore support only)."""

    def restore_state(self, config: dict[str, Any], rep: int, n: int) -> bool | None:
        """Restore the state after iteration `n`; return False if that is not possible."""
        return False

    def finalize(self) -> None:
        """Release what the repetition holds; called once at the end of every repetition."""

    @classmethod
    def check_config(cls, expanded: Sequence[ExpandedExperiment], source: str) -> None:
        """Check the expanded config (`source` is its file) before anything runs or is written; raise a
        ConfigError (`errors.config_error`) to refuse it: one line, exit status 2. By default: nothing."""

    @classmethod
    def run(cls, argv: list[str] | None = None) -> None:
        """Parse the command line (`sys.argv` by default), run the sweep and exit with its status."""
        from .stopping import stop_signals_handled

        with stop_signals_handled():  # before the CLI's imports: a Ctrl-C from here on is one line and exit 130
            from .cli import main

            status = main(cls, argv)
        raise SystemExit(status)

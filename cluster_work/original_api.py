"""The original ClusterWork's class API for scripts and notebooks: same names, signatures and meanings.

`ClusterWork` inherits these, so `MyExperiment.load_experiments(open("config.yml"))`,
`MyExperiment.init_from_config(config, rep, it)` and `ClusterWork.load_experiment_results(config)` work as
they did. Configs are the expanded config dicts of `cluster_work.expansion` (the original's keys); results
are read from cluster_work's files or from folders the original wrote (`cluster_work.results`).
"""
from __future__ import annotations

import logging
import os
from collections import namedtuple
from collections.abc import Callable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, ClassVar

from .compact_store import compact_experiments
from .config import load_config, merge_and_validate, parse_documents
from .errors import StoreError
from .expansion import ExpandedExperiment, expand_all
from .original_format import read_yaml_file
from .paths import COMPACT_FOLDER
from .results import experiment_frame, repetition_frame, repetition_rows, stored_config
from .store import ORIGINAL_CONFIG_FILE, ExperimentStore
from .vocabulary import ConfigSource

if TYPE_CHECKING:  # the frames come from results.py, which imports pandas where it makes one
    import pandas as pd

log = logging.getLogger("cluster_work")

ConfigFile = str | os.PathLike[str] | IO[str]  # a path, or an open stream as the original took
ConfigsAndResults = Iterator[tuple[dict[str, Any], "pd.DataFrame | None"]]

ExperimentProgress = namedtuple("ExperimentProgress", ["name", "num_iterations", "num_repetitions", "exp_progress",
                                                       "rep_progress", "finished_repetitions", "finished_iterations"])
Progress = tuple[float, list[ExperimentProgress]]  # the total and each experiment's


def read_experiments(config_file: ConfigFile, default_params: dict[str, Any] | None = None,
                     experiment_selectors: Sequence[str] | None = None) -> Sequence[ExpandedExperiment]:
    """The expanded experiments of a config (an open stream, as the original took, or a path), keeping those
    named in `experiment_selectors` (base or expanded names; an unknown one is a ConfigError)."""
    if isinstance(config_file, (str, os.PathLike)):
        documents = load_config(config_file, warn=lambda message: None)
    else:
        source = ConfigSource(str(getattr(config_file, "name", "config")), config_file.read())
        documents = merge_and_validate(parse_documents(source.text, source), source, lambda message: None)
    from .design import points as design_points  # expansion imports much: import late
    from .selection import select_experiments

    expanded = expand_all(documents, default_params, warn=lambda message: None, custom_points=design_points)
    return select_experiments(expanded, list(experiment_selectors or []), str(documents.source))


def configs_and_results(configs: Sequence[dict[str, Any]], name_filter: str = "") -> ConfigsAndResults:
    """(config, results) of each config whose name contains `name_filter`, results read only when asked for:
    what the original handed to `plot_results` (its `--plot --filter`)."""
    for config in configs:
        if name_filter in config["name"]:
            yield config, OriginalApi.load_experiment_results(config)


def progress_of(experiments: Sequence[ExpandedExperiment]) -> Progress:
    """The original's progress figures: per experiment the share of iterations saved, per repetition too."""
    progress = []
    for experiment in experiments:
        done = [min(len(repetition_rows(experiment.path, rep, experiment.config.get("log_path"))),
                    experiment.iterations) for rep in range(experiment.repetitions)]
        shares = [count / experiment.iterations for count in done]
        progress.append(ExperimentProgress(experiment.name, experiment.iterations, experiment.repetitions,
                                           sum(shares) / len(shares), shares,
                                           sum(count == experiment.iterations for count in done), done))
    total = sum(p.exp_progress for p in progress) / len(progress) if progress else 0.0
    return total, progress


def _experiment_folders(path: str) -> list[str]:
    """Every experiment folder below `path` (cluster_work's or the original's), in walking order."""
    found = []
    for folder, subfolders, _ in os.walk(path):
        if ExperimentStore(folder).is_ours() or ExperimentStore(folder).has_original_results():
            found.append(folder)
        if COMPACT_FOLDER in subfolders:  # a compact store's experiments, whose folders may not exist
            subfolders.remove(COMPACT_FOLDER)
            found += [store.path for store in compact_experiments(folder) if store.path not in found]
    return found


def implements_plot_results(cls: type) -> bool:
    """Whether `cls` implements the plot_results hook (the default only raises)."""
    return any("plot_results" in vars(base) for base in cls.__mro__ if base is not OriginalApi)


def _not_initialised(*args: Any) -> None:
    raise Exception("Experiment not properly initialized. Cannot run.")


class OriginalApi:
    """The original's classmethods and staticmethods (mixed into `ClusterWork`)."""

    _default_params: ClassVar[dict[str, Any]] = {}
    ExperimentProgress = ExperimentProgress

    @classmethod
    def load_experiments(cls, config_file: ConfigFile,
                         experiment_selectors: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """The expanded config of every experiment in `config_file` (an open stream or a path), with the
        class's `_default_params` merged in; only the named ones if `experiment_selectors` is given."""
        return [e.config for e in read_experiments(config_file, cls._default_params, experiment_selectors)]

    @classmethod
    def init_from_config(cls, config: dict[str, Any], rep: int = 0, it: int = 0) -> Any:
        """An instance at the state saved after iteration `it` of repetition `rep` (reset, then restore_state),
        for analysis: `iterate` and `reset` raise. None, with a warning, where it cannot be restored."""
        from .runner import restore_experiment

        try:
            instance = restore_experiment(cls, config["path"], rep, it, config=config)  # type: ignore[arg-type]
        except (OSError, StoreError) as exc:
            log.warning("Could not restore experiment %s, rep %d at iteration %d: %s", config["name"], rep, it, exc)
            return None
        for hook in ("iterate", "reset"):
            setattr(instance, hook, _not_initialised)
        return instance

    @staticmethod
    def load_repetition_results(config: dict[str, Any], rep: int) -> pd.DataFrame | None:
        """The saved iterations of repetition `rep`, indexed by (r, i); None if it saved none."""
        return repetition_frame(config["path"], rep, config.get("log_path"))

    @staticmethod
    def load_experiment_results(config: dict[str, Any]) -> pd.DataFrame | None:
        """All saved iterations of the experiment, indexed by (r, i); None if it saved none."""
        return experiment_frame(config["path"], config["repetitions"], config.get("log_path"))

    @classmethod
    def get_progress(cls, config_file: ConfigFile, experiment_selectors: Sequence[str] | None = None) -> Progress:
        """(total progress, [ExperimentProgress per experiment]) as the original's `-p` computed it."""
        return progress_of(read_experiments(config_file, cls._default_params, experiment_selectors))

    @staticmethod
    def get_experiments(path: str = ".") -> list[str]:
        """Every experiment folder below `path` that holds no experiment folder itself."""
        found = _experiment_folders(path)
        return [folder for folder in found if not any(other.startswith(folder + os.sep) for other in found)]

    @staticmethod
    def get_experiment_config(path: str, config_filename: str = ORIGINAL_CONFIG_FILE) -> Any:
        """The config stored in the experiment folder `path` (`experiment.yml`, or cluster_work's own)."""
        if config_filename == ORIGINAL_CONFIG_FILE and not os.path.isfile(os.path.join(path, config_filename)):
            return stored_config(path)
        return read_yaml_file(os.path.join(path, config_filename))

    @staticmethod
    def get_experiment_directories(name: str, path: str = ".") -> list[str]:
        """The experiment folders below `path` whose stored config is named `name`."""
        return [folder for folder in _experiment_folders(path) if (stored_config(folder) or {}).get("name") == name]

    @classmethod
    def iterate_config_and_results(cls, config_filename: str, experiment_selectors: Sequence[str] | None = None,
                                   ) -> Callable[[], ConfigsAndResults]:
        """A function that yields (config, results) of each experiment (the original returned it uncalled)."""
        configs = cls.load_experiments(config_filename, experiment_selectors)
        return lambda: configs_and_results(configs)

    @classmethod
    def plot_results(cls, configs_results: ConfigsAndResults) -> None:
        """Called by a bare `--plot` with (config, results) pairs; implement it to draw your own figures."""
        raise NotImplementedError("plot_results needs to be implemented by subclass.")

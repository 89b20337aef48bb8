"""An experiment instance for one repetition: bound to its folders and settings as the original ClusterWork
bound it (`bind_instance`), seeded per (experiment, rep, iteration) (`seed_instance`), then reset and
restored: for a run, to the latest saved iteration it can restore (`resume`, every rank of an MPI group
agreeing); for analysis, to a given saved iteration (`restore_experiment`).
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .errors import StoreError
from .expansion import ExpandedExperiment
from .seeding import seed_for, seed_global_generators
from .store import repetition_folder_name
from .vocabulary import RunSettings

if TYPE_CHECKING:
    from .experiment import ClusterWork  # annotations only: the base class is above the runner

log = logging.getLogger("cluster_work")


def bind_instance(instance: ClusterWork, experiment: ExpandedExperiment, rep: int, settings: RunSettings,
                  comm: Any) -> None:
    """Set the fields the original ClusterWork set before `reset`, with its values (folders end in a
    separator, as the original's did, since clients append file names to them)."""
    config = experiment.config
    instance._name = experiment.name
    instance._params = config["params"]
    instance._path = config["path"]
    instance._log_path = config["log_path"]
    instance._log_path_rep = os.path.join(config["log_path"], repetition_folder_name(rep), "")
    instance._rep = rep
    instance._repetitions = config["repetitions"]
    instance._iterations = config["iterations"]
    instance._plotting = config.get("plotting", True)
    instance._no_gui = settings.no_gui or instance._NO_GUI or not config.get("gui", True)
    instance._COMM = comm
    instance._config_file = settings.config_file  # `_log_path_rep`'s folder is made when the experiment reads it


def seed_instance(instance: ClusterWork, iteration: int | None) -> None:
    """The seed of (experiment, rep, iteration); in an MPI group each rank its own, as in the original (which
    added 10^5 x rank), rank 0's being the seed a run without MPI has."""
    comm = instance._COMM
    rank = comm.Get_rank() if comm is not None and comm.Get_size() > 1 else 0
    instance._seed = seed_for(instance._name or "", instance._rep or 0, iteration, rank)
    seed_global_generators(instance._seed)


def _all_agree(comm: Any, flag: bool) -> bool:
    """Whether every rank of an MPI group says `flag` (each restored the same iteration, or none goes on)."""
    if comm is None or comm.Get_size() == 1:
        return flag
    return all(comm.allgather(flag))


def resume(instance: ClusterWork, config: dict[str, Any], rep: int, done: int, comm: Any = None,
           restart_full: bool = False) -> int:
    """Reset, then restore the latest restorable saved iteration; return the first iteration to run."""
    cls = type(instance)
    restorable = done > 0 and cls._restore_supported and not (cls._RESTART_FULL_REPETITIONS or restart_full)
    for n in range(done - 1, -1, -1) if restorable else ():
        instance._it = n
        seed_instance(instance, None)
        instance.reset(config, rep)
        try:
            restored = instance.restore_state(config, rep, n) is not False
        except Exception:
            restored = False
            log.warning("%s rep %d: restore_state(%d) raised; trying an earlier iteration",
                        instance._name, rep, n, exc_info=True)
        if _all_agree(comm, restored):
            log.info("%s rep %d: restored the state after iteration %d", instance._name, rep, n)
            return n + 1
    instance._it = None
    seed_instance(instance, None)
    instance.reset(config, rep)
    return 0


def restore_experiment(experiment_class: type[ClusterWork], experiment_path: str, rep: int,
                       iteration: int, config: Mapping[str, Any] | None = None) -> ClusterWork:
    """An instance of `experiment_class` at the state saved after `iteration` of repetition `rep`, for
    analysis (PlotWork's %restore_experiment_state, `init_from_config`): its stored config (cluster_work's or
    the original's; or `config`), `reset`, then `restore_state`."""
    from .results import repetition_rows, stored_config  # analysis only: workers need not import pandas

    config = dict(config) if config is not None else stored_config(experiment_path)
    if config is None:
        raise StoreError(f"{experiment_path}: no experiment here (no config.yml or experiment.yml)")
    saved = [row["iteration"] for row in repetition_rows(experiment_path, rep, config.get("log_path"))]
    if iteration not in saved:
        have = f"saved iterations {saved[0]} to {saved[-1]}" if saved else "no saved iterations"
        raise StoreError(f"{config['name']} rep {rep} has {have}, not {iteration}")
    experiment = ExpandedExperiment(config["name"], config.get("experiment_name", config["name"]), config, {})
    instance = experiment_class()
    bind_instance(instance, experiment, rep, RunSettings(no_gui=True), None)
    instance._it = iteration
    seed_instance(instance, None)
    instance.reset(config, rep)
    if instance.restore_state(config, rep, iteration) is False:
        raise StoreError(f"{config['name']} rep {rep}: restore_state could not restore iteration {iteration}")
    return instance

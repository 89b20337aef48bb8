"""The checks before anything is written: every folder of the plan can be created, nothing it would
delete is reached through a symbolic link, no config.yml it would overwrite is a user's. Run for the
whole plan first, so that a bad second path never follows a written first one."""
from __future__ import annotations

import errno
import os
from typing import TYPE_CHECKING

from .errors import ConfigError, StoreError
from .store import ExperimentStore

if TYPE_CHECKING:
    from .planning import ExperimentPlan


def check_writable(folder: str, base_name: str, source: str, checked: set[str]) -> None:
    """`folder` can be created: its nearest existing ancestor is a writable folder. Checked for every
    experiment before anything is written, so that a bad second path never follows a written first one."""
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if existing in checked:
        return
    checked.add(existing)
    if not os.path.isdir(existing):
        raise ConfigError(f"{source}: experiment '{base_name}': 'path': cannot write {folder}: {existing} "
                          "is not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):  # the disk's fault, not the config's: exit 3, as a failed write
        cause = errno.EROFS if os.statvfs(existing).f_flag & os.ST_RDONLY else errno.EACCES
        raise StoreError(f"cannot write {folder} (experiment '{base_name}'): {existing}: {os.strerror(cause)}")


def check_experiment(item: ExperimentPlan, source: str, checked: set[str]) -> None:
    """What a run would refuse for this experiment's folder (see make_plan)."""
    if not item.jobs and not item.rewrite:
        return
    experiment = item.experiment
    store = ExperimentStore(experiment.path)
    if item.rewrite:
        refusal = store.deletion_refusal()
        if refusal:
            raise ConfigError(f"{source}: experiment '{experiment.base_name}': -d/-o: refusing to delete, {refusal}")
    if store.exists() and not store.is_ours():
        raise ConfigError(f"{source}: experiment '{experiment.base_name}': 'path': {store.config_file} exists "
                          "and was not written by cluster_work; it is never overwritten: move it away")
    check_writable(experiment.path, experiment.base_name, source, checked)

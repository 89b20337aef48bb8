"""The checks before anything is written: every folder of the plan can be created, nothing it would
delete is reached through a symbolic link, no config.yml it would overwrite is a user's. Run for the
whole plan first, so that a bad second path never follows a written first one."""
from __future__ import annotations

import contextlib
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
    _check_one_layout(item, source)


def _check_one_layout(item: ExperimentPlan, source: str) -> None:
    """An experiment's results are in the layout its document asks for, or in none: neither layout reads the
    other's, so a run after `store:` changed would run every repetition again beside the saved ones and
    `load_results` would give each row twice (the compact store's suggestion invites the change)."""
    experiment = item.experiment
    if experiment.store == "compact":
        folders = ExperimentStore(experiment.path)
        if folders.exists() and folders.is_ours():
            raise ConfigError(f"{source}: experiment '{experiment.base_name}': 'store': {experiment.name} has results "
                              f"in the default layout ({folders.config_file}), which the compact store does not "
                              "continue: remove `store: compact` to resume them, or move the folder away")
    else:
        check_document_layout("folders", experiment.config["_experiment_path"], experiment.base_name, source)


def check_document_layout(store: str, base_folder: str, base_name: str, source: str) -> None:
    """A document whose folder holds results of the other layout (see `_check_one_layout`): a compact store
    with results under a document of the default layout, or an experiment folder of ours under a compact
    one; a listing of the document's folder at most (where it exists)."""
    from .compact_catalog import catalog
    from .paths import compact_root

    root = compact_root(base_folder)
    if store != "compact":
        if os.path.isdir(root) and catalog(root).experiments():
            raise ConfigError(f"{source}: experiment '{base_name}': 'store': its results are in the compact store "
                              f"({root}), which the default layout does not continue: put `store: compact` back "
                              "to resume them, or move that folder away")
        return
    folders = _our_experiment_folder(base_folder)
    if folders is not None:
        raise ConfigError(f"{source}: experiment '{base_name}': 'store': it has results in the default layout "
                          f"({folders.config_file}), which the compact store does not continue: remove "
                          "`store: compact` to resume them, or move the folder away")


def _our_experiment_folder(base_folder: str) -> ExperimentStore | None:
    """An experiment folder of cluster_work's in the default layout at or right below `base_folder`, if any."""
    candidates = [base_folder]
    with contextlib.suppress(OSError):
        candidates += [entry.path for entry in os.scandir(base_folder)
                       if not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False)]
    for folder in candidates:
        store = ExperimentStore(folder)
        if store.exists() and store.is_ours():
            return store
    return None

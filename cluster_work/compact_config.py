"""The stored config of a compact store's experiments: what the default layout's `config.yml` per point holds,
kept once per document (`<root>/document.json`, compact_store) instead of once per point.

An expanded experiment's config is its document's (less `grid`/`list`) with its own `name`, `params`, `path` and
`log_path` (see `ExpandedDocument.config_of`): the file holds the shared part, written by the store's first job,
whole or not at all (`atomic_write`; a writer killed meanwhile leaves a temporary named by it, removed by the next
write of the file or of the store's index), removed by `-d` (the next job writes the config then current); each claim
holds the point's parameters. So an experiment's config is the file's with the claim's parameters and the
point's own name and folders: what `restore_experiment`, the original's API and the exporters read from a
config.yml (its `iterations`, its `experiment_name`...). A store written before this file existed gives the
parameters alone (`read_config`'s answer then). Not kept per point, as a config.yml per point keeps them: the
repetitions and iterations a steered campaign gives a point it adds (such points read the first job's). A
document's counts changed between two runs without `-d` are stored by the run that continues it, before its
first job (`refresh_document_config`, see config_refresh).
"""
from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from .config_refresh import refreshed, stale_keys
from .files import atomic_write, read_json
from .paths import DOCUMENT_CONFIG_FILE, DOCUMENT_CONFIG_TEMPORARY_PREFIX, log_folder
from .rows import to_plain

POINT_KEYS = ("name", "params", "path", "log_path")  # a point's own: not in the file
LOG_ROOT = "_log_root"  # in the file: the document's own `log_path`, where it has one (a point's is `<it>/<name>`)

_written: set[str] = set()  # the stores whose document config this process wrote or found
os.register_at_fork(after_in_child=_written.clear)


def shared_part(config: Mapping[str, Any]) -> dict[str, Any]:
    """What an expanded experiment's `config` shares with its document's other points."""
    shared = {key: None if key in POINT_KEYS else value for key, value in config.items()}  # None: kept in order
    log_path = config.get("log_path")
    if isinstance(log_path, str) and log_path != log_folder(config["path"]):
        shared[LOG_ROOT] = os.path.dirname(log_path)
    return shared


def write_document_config(root: str, config: Mapping[str, Any], sync: bool = True) -> None:
    """Store the shared part of `config` in the store at `root`, unless it holds one: the first job's (one of
    the document's own points: a steered campaign's points run before any it adds, whose repetitions and
    iterations may be their own). A config per process is looked at once (a job per point need not)."""
    key = os.path.abspath(root)
    if key in _written:
        return
    path = os.path.join(root, DOCUMENT_CONFIG_FILE)
    if not os.path.exists(path):
        os.makedirs(root, exist_ok=True)
        atomic_write(path, json.dumps(to_plain(shared_part(config))).encode(), sync=sync,
                     writer_prefix=DOCUMENT_CONFIG_TEMPORARY_PREFIX)  # what a killed writer left, removed
    _written.add(key)


def refresh_document_config(root: str, config: Mapping[str, Any], sync: bool = True) -> bool:
    """Bring the result-neutral keys (`config_refresh.REFRESHED`: the counts...) of the store's document config to
    `config`'s (a config of one of the document's own points: they share these), keeping every other key as
    stored; whether it was rewritten (whole or not at all, durably). Called by a run's launcher alone, before its
    first job (`planning.apply_plan`), where the run continues the document; a store without one is left to its
    first job."""
    stored = read_shared(root)
    if stored is None or not stale_keys(stored, config):
        return False
    atomic_write(os.path.join(root, DOCUMENT_CONFIG_FILE), json.dumps(to_plain(refreshed(stored, config))).encode(),
                 sync=sync)
    return True


def forget_document_config(root: str) -> None:
    """Remove the document config of the store at `root` (`-d`), so that the next job writes the current one."""
    _written.discard(os.path.abspath(root))
    try:
        os.remove(os.path.join(root, DOCUMENT_CONFIG_FILE))
    except FileNotFoundError:
        pass


def read_shared(root: str) -> dict[str, Any] | None:
    """The document config of the store at `root` (None: it has none)."""
    return read_json(os.path.join(root, DOCUMENT_CONFIG_FILE))


def point_config(root: str, name: str, params: Any, path: str, shared: dict[str, Any] | None = None,
                 ) -> dict[str, Any]:
    """The config of experiment `name` (folder `path`, parameters `params`) of the store at `root` (whose
    document config is `shared`, read here where not given), as its config.yml would hold it; only its name
    and parameters where the store holds no document config."""
    shared = dict(shared) if shared is not None else read_shared(root)
    if shared is None:
        return {"name": name, "params": params}
    log_root = shared.pop(LOG_ROOT, None)
    own = {"name": name, "params": params, "path": path,
           "log_path": os.path.join(log_root, name) if isinstance(log_root, str) else log_folder(path)}
    config = {key: own[key] if key in POINT_KEYS else value for key, value in shared.items()}
    return {**config, **{key: value for key, value in own.items() if key not in config}}

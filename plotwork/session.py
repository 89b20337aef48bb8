"""What the PlotWork magics share in one notebook: the experiment class, the loaded sweep, restored instances.

Loading resolves the config's relative `path` from the notebook's folder (see `resolve_folder`), so the
configs in `experiments` point at folders that exist from here; otherwise they are the expanded configs
`ClusterWork.load_experiments` returns, with the original's keys.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from cluster_work import ClusterWork
from cluster_work.config import flatten_mapping
from cluster_work.expansion import ExpandedExperiment
from cluster_work.original_api import OriginalApi, read_experiments
from cluster_work.results import flat_params_match, load_configured_results, resolve_folder

ORIGINAL_DIALECT, DIALECT = "plot_work", "plotwork"  # which module's `%load_ext` loaded the magics


def _moved(config: dict[str, Any], here: str) -> dict[str, Any]:
    """`config` with its folders re-rooted from the YAML's `path` to `here`, where that path is found."""
    root = os.path.expanduser(os.path.expandvars(config["_config_path"]))
    if os.path.normpath(here) == os.path.normpath(root):
        return config
    moved = {**config, "_config_path": here}
    for key in ("_experiment_path", "path", "log_path"):
        relative = os.path.relpath(config[key], root)
        if not relative.startswith(os.pardir):  # a log_path outside the sweep folder stays where it is
            moved[key] = os.path.normpath(os.path.join(here, relative))
    return moved


@dataclass
class Session:
    dialect: str = DIALECT
    experiment_class: type[OriginalApi] = ClusterWork
    config_path: str = ""
    experiments: list[ExpandedExperiment] = field(default_factory=list)
    selectors: list[str] = field(default_factory=list)  # base names, as the original's `-e` (all if none given)
    results: pd.DataFrame | None = None
    instances: list[Any] = field(default_factory=list)  # restored, with the configs they came from
    instantiated: list[dict[str, Any]] = field(default_factory=list)

    @property
    def original(self) -> bool:
        return self.dialect == ORIGINAL_DIALECT

    @property
    def configs(self) -> list[dict[str, Any]]:
        return [e.config for e in self.experiments]

    def load(self, config_path: str, selectors: Sequence[str] | None, name_filters: Sequence[str],
             param_filters: Mapping[str, Any]) -> None:
        """Expand the config (only `selectors`, base or expanded names), keep the experiments whose name
        contains every one of `name_filters` and whose params match `param_filters`, and load their results:
        `experiments` and `results` describe the same experiments."""
        expanded = read_experiments(config_path, self.experiment_class._default_params, selectors)
        expanded = [e for e in expanded if all(text in e.name for text in name_filters)
                    and flat_params_match(flatten_mapping(e.config.get("params") or {}), param_filters)]
        self.experiments = [ExpandedExperiment(e.name, e.base_name, _moved(e.config, resolve_folder(
            config_path, e.config["_config_path"])), e.varied, e.original_name) for e in expanded]
        self.config_path = config_path
        self.selectors = list(selectors or dict.fromkeys(e.base_name for e in expanded))
        self.results = load_configured_results(config_path, [e.name for e in expanded])

    def need_results(self) -> pd.DataFrame:
        if self.results is None:
            raise RuntimeError("load a sweep first: %load_experiment config.yml")
        return self.results

    @staticmethod
    def matches(selector: str, config: Mapping[str, Any]) -> bool:
        """Whether a selector of the original's loops stands for this experiment: its base or expanded name."""
        return selector in (config["name"], config.get("experiment_name"))

    def config_results(self, columns: Sequence[str]) -> list[tuple[dict[str, Any], pd.DataFrame]]:
        """(config, its results' `columns` indexed by (r, i)) for each loaded experiment that saved any."""
        pairs = []
        for config in self.configs:
            frame = self.experiment_class.load_experiment_results(config)
            if frame is not None:
                missing = [c for c in columns if c not in frame]
                if missing:
                    raise KeyError(f"{config['name']}: no result column {', '.join(missing)}; "
                                   f"columns: {', '.join(map(str, frame.columns))}")
                pairs.append((config, frame[list(columns)]))
        return pairs

    def restore(self, targets: Sequence[tuple[dict[str, Any], int, int]]) -> list[Any]:
        """`init_from_config` for each (config, rep, iteration); keeps the instances that could be restored."""
        self.instances, self.instantiated = [], []
        for config, rep, iteration in targets:
            instance = self.experiment_class.init_from_config(config, rep, iteration)
            if instance is not None:
                self.instances.append(instance)
                self.instantiated.append(config)
        return self.instances

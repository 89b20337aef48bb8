"""The IPython magics of PlotWork: `%load_ext plotwork`, then load, print, plot and restore."""
from __future__ import annotations

import dataclasses
import importlib
import io
import os
from typing import Any

import yaml
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import Image, display

import cluster_work
from cluster_work.config import load_config
from cluster_work.expansion import ExpandedExperiment, expand_all
from cluster_work.planning import select_experiments
from cluster_work.reporting import print_progress
from cluster_work.results import resolve_folder

from .api import best_iterations, plot_each_experiment, plot_results, save_figures


def _parse_filters(filters: list[str]) -> dict[str, Any]:
    """`lr=0.1 model.width=8` -> {'lr': 0.1, 'model.width': 8} (values read as YAML)."""
    parsed = {}
    for item in filters:
        key, separator, value = item.partition("=")
        if not separator:
            raise ValueError(f"filter {item!r} must look like name=value")
        parsed[key] = yaml.safe_load(value)
    return parsed


def _png(figure: Any) -> Image:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return Image(data=buffer.getvalue(), format="png")


@magics_class
class PlotWorkMagics(Magics):
    """State shared by the magics: the experiment class, the loaded sweep and its results."""

    def __init__(self, shell: Any):
        super().__init__(shell)
        self.experiment_class: type | None = None
        self.experiments: list[ExpandedExperiment] = []
        self.config_path = ""
        self.results: Any = None

    @property
    def namespace(self) -> dict[str, Any]:
        """The notebook's variables."""
        assert self.shell is not None
        return self.shell.user_ns

    def _need_results(self) -> Any:
        if self.results is None:
            raise RuntimeError("load a sweep first: %load_experiment config.yml")
        return self.results

    @line_magic
    def set_experiment_class(self, line: str) -> None:
        """%set_experiment_class module.Class: the class whose _default_params and restore_state to use."""
        module_name, _, class_name = line.strip().rpartition(".")
        if not module_name:
            raise ValueError("give the class as module.Class")
        self.experiment_class = getattr(importlib.import_module(module_name), class_name)

    @magic_arguments()
    @argument("config", help="the sweep's YAML config")
    @argument("-e", "--experiments", nargs="+", default=[], help="only these (base or expanded) experiments")
    @argument("-f", "--filters", nargs="+", default=[], help="only experiments whose params match: name=value")
    @line_magic
    def load_experiment(self, line: str) -> None:
        """%load_experiment config.yml [-e NAMES] [-f FILTERS]: load the results into `results`."""
        args = parse_argstring(self.load_experiment, line)
        defaults = getattr(self.experiment_class, "_default_params", None)
        expanded = expand_all(load_config(args.config, warn=lambda m: None), defaults, args.config)
        self.experiments = select_experiments(expanded, args.experiments, args.config)
        self.config_path = args.config
        names = [e.name for e in self.experiments]
        self.results = cluster_work.load_results(args.config, experiments=names,
                                                 params=_parse_filters(args.filters) or None)
        self.namespace["results"] = self.results
        loaded = self.results.experiment.nunique() if len(self.results) else 0
        print(f"loaded {len(self.results)} rows of {loaded} experiments into `results`")

    @magic_arguments()
    @argument("columns", nargs="+")
    @argument("--mode", choices=["max", "min"], default="max", help="which end of a column is best")
    @line_magic
    def print_results(self, line: str) -> None:
        """%print_results COLUMN...: per experiment the mean, std and best of each column at the end."""
        args = parse_argstring(self.print_results, line)
        for column in args.columns:
            print(f"{column}:")
            display(cluster_work.summary(self._need_results(), column, args.mode))

    @magic_arguments()
    @argument("plotter", help="mean_2std, best_n, param_sweep or one you registered")
    @argument("columns", nargs="+")
    @argument("-i", "--individual", action="store_true", help="one figure per expanded experiment")
    @argument("--save_figures", action="store_true", help="also write the figures to files")
    @argument("--prefix", default="", help="file name prefix of saved figures")
    @argument("--folder", default="plots", help="where saved figures go (default: plots)")
    @argument("--format", choices=["png", "pdf"], default="png")
    @argument("-o", "--option", nargs="+", default=[], help="plotter options, e.g. n=5 param=lr")
    @line_magic
    def plot_results(self, line: str) -> None:
        """%plot_results PLOTTER COLUMN... [-i] [--save_figures --prefix P --format png|pdf]"""
        args = parse_argstring(self.plot_results, line)
        frame, options = self._need_results(), _parse_filters(args.option)
        figures = []
        for column in args.columns:
            if args.individual:
                figures += plot_each_experiment(frame, args.plotter, column, **options)
            else:
                figures.append(plot_results(frame, args.plotter, column, **options))
        for figure in figures:
            display(_png(figure))
        if args.save_figures:
            for path in save_figures(figures, args.folder, args.prefix, args.format):
                print(f"saved {path}")

    @magic_arguments()
    @argument("column")
    @argument("--mode", choices=["max", "min"], default="max")
    @line_magic
    def print_best_iterations(self, line: str) -> None:
        """%print_best_iterations COLUMN: per experiment and repetition the best iteration."""
        args = parse_argstring(self.print_best_iterations, line)
        display(best_iterations(self._need_results(), args.column, args.mode))

    def _restore(self, name: str | None, rep: int, iteration: int, variable: str) -> Any:
        if self.experiment_class is None:
            raise RuntimeError("set the experiment class first: %set_experiment_class module.Class")
        candidates = [e for e in self.experiments if name in (None, e.name, e.base_name)]
        if len(candidates) != 1:
            raise ValueError("name one experiment with -e; loaded: " + ", ".join(e.name for e in self.experiments))
        folder = resolve_folder(self.config_path, candidates[0].path)
        instance = cluster_work.restore_experiment(self.experiment_class, folder, rep, iteration)
        self.namespace[variable] = instance
        print(f"`{variable}`: {candidates[0].name} rep {rep} after iteration {iteration}")
        return instance

    @magic_arguments()
    @argument("-e", "--experiment", default=None, help="the expanded experiment (if several are loaded)")
    @argument("-r", "--rep", type=int, required=True)
    @argument("-i", "--iteration", type=int, required=True)
    @argument("-o", "--output", default="experiment", help="variable to store the instance in")
    @line_magic
    def restore_experiment_state(self, line: str) -> None:
        """%restore_experiment_state [-e NAME] -r REP -i IT: the experiment at that saved state."""
        args = parse_argstring(self.restore_experiment_state, line)
        self._restore(args.experiment, args.rep, args.iteration, args.output)

    @magic_arguments()
    @argument("column")
    @argument("--mode", choices=["max", "min"], default="max")
    @argument("-o", "--output", default="experiment", help="variable to store the instance in")
    @line_magic
    def restore_best_experiment_state(self, line: str) -> None:
        """%restore_best_experiment_state COLUMN: the experiment at its best saved iteration."""
        args = parse_argstring(self.restore_best_experiment_state, line)
        best = best_iterations(self._need_results(), args.column, args.mode).iloc[0]
        self._restore(best.experiment, int(best.rep), int(best.iteration), args.output)

    @magic_arguments()
    @argument("-P", "--full", action="store_true", help="a line per repetition too")
    @line_magic
    def print_progress(self, line: str) -> None:
        """%print_progress [-P]: the loaded sweep's progress (the figures of -p)."""
        args = parse_argstring(self.print_progress, line)
        buffer = io.StringIO()
        here = [dataclasses.replace(e, config={**e.config, "path": resolve_folder(self.config_path, e.path)})
                for e in self.experiments]
        print_progress(here, args.full, stream=buffer)
        print(buffer.getvalue())


def load_ipython_extension(ipython: Any) -> None:
    ipython.register_magics(PlotWorkMagics)
    os.environ.setdefault("MPLBACKEND", "Agg")

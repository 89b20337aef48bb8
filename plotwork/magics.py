"""The IPython magics of PlotWork: `%load_ext plotwork` (or the original's `%load_ext plot_work`), then load,
print, plot and restore.

One set of magics speaks both dialects: today's options (-o, --mode, --folder...) and the original's
(`-f` name filters, `-r/-i` defaulting to 0, the notebook variables `experiments`, `experiment_instances`,
`best_results_idx`). Where the two differ in what they show, the extension's name decides: under
`plot_work`, %print_results returns the original's tables of mean and std per selector,
%print_best_iterations prints its lines, and the plotter `mean_2std` is the original's.
"""
from __future__ import annotations

import importlib
import io
import os
from typing import Any

from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

import cluster_work
from cluster_work.reporting import print_progress

from .api import best_iterations, plot_each_experiment, plot_results, save_figures
from .command_line import parse_assignments
from .notebook import show_figure
from .original_magics import OriginalMagics, best_by_experiment, plot_by_selector, print_by_selector
from .original_plots import results_plot_function
from .session import DIALECT, Session


@magics_class
class PlotWorkMagics(Magics):
    """The magics of both dialects; their state is the notebook's Session."""

    def __init__(self, shell: Any, session: Session):
        super().__init__(shell)
        self.session = session

    @property
    def namespace(self) -> dict[str, Any]:
        """The notebook's variables."""
        assert self.shell is not None
        return self.shell.user_ns

    @line_magic
    def set_experiment_class(self, line: str) -> None:
        """%set_experiment_class MyExperiment: a class of the notebook (as the original), or module.Class."""
        expression = line.strip()
        assert self.shell is not None
        try:
            value = self.shell.ev(expression)
        except (NameError, AttributeError, SyntaxError):
            value = None
        if not isinstance(value, type):
            module_name, _, class_name = expression.rpartition(".")
            if not module_name:
                raise ValueError(f"{expression!r} is no class of the notebook: define or import it, or give "
                                 "module.Class")
            value = getattr(importlib.import_module(module_name), class_name)
        self.session.experiment_class = value

    @magic_arguments()
    @argument("config", help="the sweep's YAML config")
    @argument("-e", "--experiments", nargs="*", default=None, help="only these (base or expanded) experiments")
    @argument("-f", "--filter", "--filters", dest="filters", nargs="*", default=[],
              help="name=value: experiments whose params match; other text: whose name contains it")
    @line_magic
    def load_experiment(self, line: str) -> None:
        """%load_experiment config.yml [-e NAMES] [-f FILTERS]: the results into `results`, the expanded
        configs into `experiments`."""
        args = parse_argstring(self.load_experiment, line)
        if not os.path.exists(args.config):
            raise FileNotFoundError(f"path does not exist: {args.config}")
        params = parse_assignments([f for f in args.filters if "=" in f])
        self.session.load(args.config, args.experiments, [f for f in args.filters if "=" not in f], params)
        results = self.session.need_results()
        self.namespace["results"] = results
        self.namespace["experiments"] = self.session.configs
        loaded = results.experiment.nunique() if len(results) else 0
        print(f"loaded {len(results)} rows of {loaded} experiments into `results`; "
              f"{len(self.session.configs)} configs into `experiments`")

    @magic_arguments()
    @argument("columns", nargs="+")
    @argument("--mode", choices=["max", "min"], default="max", help="which end of a column is best")
    @line_magic
    def print_results(self, line: str) -> Any:
        """%print_results COLUMN...: per experiment the mean, std and best of each column at the end
        (under plot_work: the original's tables of mean and std over all iterations, per selector)."""
        args = parse_argstring(self.print_results, line)
        if self.session.original:
            return print_by_selector(self.session, args.columns)
        for column in args.columns:
            print(f"{column}:")
            display(cluster_work.summary(self.session.need_results(), column, args.mode))
        return None

    @magic_arguments()
    @argument("plotter", help="mean_2std, best_n, param_sweep, one of the original's, or one you registered")
    @argument("columns", nargs="+")
    @argument("-i", "--individual", action="store_true", help="one figure (or axes) per expanded experiment")
    @argument("--save_figures", action="store_true", help="also write the figures to files")
    @argument("--prefix", default="", help="file name prefix of saved figures")
    @argument("--folder", default="plots", help="where saved figures go (default: plots)")
    @argument("--format", default=None, help="png (default), pdf...")
    @argument("-o", "--option", nargs="+", default=[], help="options of today's plotters, e.g. n=5 param=lr")
    @line_magic
    def plot_results(self, line: str) -> None:
        """%plot_results PLOTTER COLUMN... [-i] [--save_figures --prefix P --format png|pdf]"""
        args = parse_argstring(self.plot_results, line)
        function = results_plot_function(args.plotter, self.session.original)
        if function is not None:
            if args.option:
                raise ValueError(f"-o is for today's plotters; {args.plotter!r} is a function of the original's kind")
            folder = args.folder if args.save_figures else None
            for path in plot_by_selector(self.session, function, args.columns, args.individual, folder,
                                         args.prefix, args.format):
                print(f"saved {path}")
            return
        frame, options = self.session.need_results(), parse_assignments(args.option)
        figures = []
        for column in args.columns:
            if args.individual:
                figures += plot_each_experiment(frame, args.plotter, column, **options)
            else:
                figures.append(plot_results(frame, args.plotter, column, **options))
        saved = save_figures(figures, args.folder, args.prefix, args.format or "png") if args.save_figures else []
        for figure in figures:
            show_figure(figure)
        for path in saved:
            print(f"saved {path}")

    @magic_arguments()
    @argument("column")
    @argument("--mode", choices=["max", "min"], default="max")
    @line_magic
    def print_best_iterations(self, line: str) -> None:
        """%print_best_iterations COLUMN: per experiment and repetition the best iteration (under plot_work: per
        experiment, as the original, also into `best_results_idx`)."""
        args = parse_argstring(self.print_best_iterations, line)
        if not self.session.original:
            display(best_iterations(self.session.need_results(), args.column, args.mode))
            return
        best = best_by_experiment(self.session, args.column, args.mode)
        self.namespace["best_results_idx"] = {config["name"]: (r, i, value) for config, r, i, value in best}
        for config, r, i, value in best:
            print(f"- {config['name']}: Rep {r} It {i} --> {value}")

    def _restore(self, targets: list[tuple[dict[str, Any], int, int]], output: str, main: int = 0) -> None:
        """Restore each (config, rep, iteration) into `experiment_instances`; `targets[main]` also into `output`."""
        instances = self.session.restore(targets)
        self.namespace["experiment_instances"] = instances
        print(f"`experiment_instances`: {len(instances)} of {len(targets)} experiments restored")
        config, rep, iteration = targets[main] if targets else ({}, 0, 0)
        for instance, restored in zip(instances, self.session.instantiated):
            if restored is config:
                self.namespace[output] = instance
                print(f"`{output}`: {config['name']} rep {rep} after iteration {iteration}")

    @magic_arguments()
    @argument("-e", "--experiment", default=None, help="only this experiment (base or expanded name)")
    @argument("-r", "--repetition", "--rep", dest="rep", type=int, default=0)
    @argument("-i", "--iteration", type=int, default=0)
    @argument("-o", "--output", default="experiment", help="variable for the (first) instance")
    @line_magic
    def restore_experiment_state(self, line: str) -> None:
        """%restore_experiment_state [-e NAME] [-r REP] [-i IT]: every loaded experiment (of `experiments`) at
        that saved state, via init_from_config, into `experiment_instances` (the first also into `experiment`)."""
        args = parse_argstring(self.restore_experiment_state, line)
        configs = self.namespace.get("experiments", self.session.configs)
        if args.experiment is not None:
            configs = [c for c in configs if self.session.matches(args.experiment, c)]
            if not configs:
                raise ValueError(f"no loaded experiment {args.experiment!r}; loaded: "
                                 + ", ".join(c["name"] for c in self.session.configs))
        self._restore([(config, args.rep, args.iteration) for config in configs], args.output)

    @magic_arguments()
    @argument("column")
    @argument("--mode", choices=["max", "min"], default="max")
    @argument("-o", "--output", default="experiment", help="variable for the best of all")
    @line_magic
    def restore_best_experiment_state(self, line: str) -> None:
        """%restore_best_experiment_state COLUMN: each experiment at its best saved iteration, into
        `experiment_instances` and `best_results_idx`; the best of all into `experiment`."""
        args = parse_argstring(self.restore_best_experiment_state, line)
        best = best_by_experiment(self.session, args.column, args.mode)
        self.namespace["best_results_idx"] = [(r, i) for _, r, i, _ in best]
        values = [value for *_, value in best]
        main = values.index(max(values) if args.mode == "max" else min(values)) if values else 0
        self._restore([(config, r, i) for config, r, i, _ in best], args.output, main)

    @magic_arguments()
    @argument("-P", "--full", action="store_true", help="a line per repetition too")
    @line_magic
    def print_progress(self, line: str) -> None:
        """%print_progress [-P]: the loaded sweep's progress (the figures of -p)."""
        args = parse_argstring(self.print_progress, line)
        buffer = io.StringIO()
        print_progress(self.session.experiments, args.full, stream=buffer)
        print(buffer.getvalue())


def load_ipython_extension(ipython: Any, dialect: str = DIALECT) -> None:
    """Register both sets of magics, sharing one Session; `dialect` is the name the extension was loaded by."""
    session = Session(dialect=dialect)
    ipython.register_magics(PlotWorkMagics(ipython, session))
    ipython.register_magics(OriginalMagics(ipython, session))
    os.environ.setdefault("MPLBACKEND", "Agg")

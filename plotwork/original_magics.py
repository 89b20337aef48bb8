"""The original PlotWork's dialect: its magics without a counterpart of today's (%plot_iteration,
%provide_files, %show_progress), and its way of drawing and printing, which the shared magics
(%plot_results, %print_results, %print_best_iterations) use where it applies (see magics.py).

The original loops over its experiment selectors (the `-e` names; all base names when none were given)
and put each experiment of %plot_iteration and %provide_files into an ipywidgets tab. Here each one gets
a heading line with its outputs below it: no widget library needed, and the outputs stay in the notebook.
"""
from __future__ import annotations

import functools
import html
import os
import warnings
from collections.abc import Sequence
from typing import Any

import pandas as pd
from IPython.core.magic import Magics, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import FileLink, display

from cluster_work.original_api import ExperimentProgress, progress_of

from .notebook import save_figure, show_figure
from .original_plots import FILE_PROVIDERS, ITERATION_PLOT_FUNCTIONS, DownloadFile, ResultsPlotFunction
from .session import Session

Best = tuple[dict[str, Any], int, int, Any]  # config, repetition, iteration, value


def tab_title(config: dict[str, Any], title: str | None) -> str:
    """The original's tab title: the values of the (dotted, space-separated) params named by `title`."""
    if not title:
        return config["name"]
    if title[0] == title[-1] and title.startswith(("'", '"')):
        title = title[1:-1]
    values = [functools.reduce(lambda value, key: value[key], [config["params"], *name.split(".")])
              for name in title.split(" ")]
    return " ".join(map(str, values))


def plot_by_selector(session: Session, plot_function: ResultsPlotFunction, columns: Sequence[str],
                     individual: bool, folder: str | None, prefix: str, fmt: str | None) -> list[str]:
    """The original's %plot_results: per selector one figure, each of its experiments drawn by `plot_function`
    on one axes (or, `individual`, on axes of its own); saved as `<folder>/<prefix><selector>_figure.<fmt>`."""
    import matplotlib.pyplot as plt

    pairs = session.config_results(columns)
    saved = []
    for selector in session.selectors:
        selected = [(config, results) for config, results in pairs if session.matches(selector, config)]
        if not selected:
            print(f"{selector}: no results saved")
            continue
        figure = plt.figure()
        axes = (list(figure.subplots(len(selected), 1, squeeze=False)[:, 0]) if individual
                else [figure.subplots(1, 1)] * len(selected))
        for (config, results), ax in zip(selected, axes):
            ax.set_title("Results")
            ax.set_xlabel("iterations")
            ax.set_ylabel(", ".join(columns))
            plot_function(config["name"], results, ax)
        if folder is not None:
            saved.append(save_figure(figure, os.path.join(folder, f"{prefix}{selector}_figure"), fmt))
        show_figure(figure)
    return saved


def print_by_selector(session: Session, columns: Sequence[str]) -> tuple[pd.DataFrame, ...]:
    """The original's %print_results: per selector a table of each experiment's mean `m` and std `s` of the
    first column over all its saved iterations and repetitions."""
    pairs = session.config_results(columns)
    tables = []
    for selector in session.selectors:
        table = pd.DataFrame(columns=["m", "s"], dtype=float)
        for config, results in pairs:
            if session.matches(selector, config):
                table.loc[config["name"]] = [results.mean().iloc[0], results.std().iloc[0]]
        tables.append(table)
    return tuple(tables)


def best_by_experiment(session: Session, column: str, mode: str = "max") -> list[Best]:
    """Per loaded experiment the (repetition, iteration) where `column` is highest (`mode` "min": lowest)."""
    best = []
    for config, results in session.config_results([column]):
        values = results[column].dropna()
        if len(values):
            r, i = values.idxmax() if mode == "max" else values.idxmin()
            best.append((config, int(r), int(i), values.loc[(r, i)]))
    return best


class DownloadFileLink(FileLink):
    """A link that downloads the file under `file_name` (the original's %provide_files links)."""

    def __init__(self, path: str, file_name: str | None = None, link_text: str | None = None, **kwargs: Any):
        super().__init__(path, **kwargs)
        self.file_name = file_name or os.path.basename(path)
        self.link_text = link_text or self.file_name

    def _format_path(self) -> str:
        link = html.escape(self.url_prefix + self.path)
        return (f"{self.result_html_prefix}<a href='{link}' download='{html.escape(self.file_name)}'>"
                f"{html.escape(self.link_text)}</a>{self.result_html_suffix}")


class ProgressBars:
    """%show_progress's output: a bar per experiment (and repetition, with `full`), then the total."""

    def __init__(self, total: float, experiments: Sequence[ExperimentProgress], full: bool):
        self.total, self.experiments, self.full = total, experiments, full

    def _rows(self) -> list[tuple[str, float, str]]:
        rows = []
        for p in self.experiments:
            rows.append((p.name, p.exp_progress, f"{p.finished_repetitions}/{p.num_repetitions}"))
            if self.full:
                rows += [(f"    {rep}", share, f"{done}/{p.num_iterations}")
                         for rep, (share, done) in enumerate(zip(p.rep_progress, p.finished_iterations))]
        return rows + [("Total", self.total, "")]

    def __repr__(self) -> str:
        return "\n".join(f"{100 * share:5.1f}% [{'#' * round(25 * share):<25}] {count:>7}  {label}"
                         for label, share, count in self._rows())

    def _repr_html_(self) -> str:
        return "<br>".join(f"<progress value='{share:.4f}' max='1' style='width:40%'></progress> "
                           f"{100 * share:5.1f}% {html.escape(count)} {html.escape(label)}"
                           for label, share, count in self._rows())


def _figures(returned: Any, opened: Sequence[Any]) -> list[Any]:
    """What an iteration plot function drew: the figures it returned, and those it opened in pyplot."""
    if returned is None:
        returned = []
    elif hasattr(returned, "savefig"):
        returned = [returned]
    figures = list(returned)
    return figures + [f for f in opened if all(f is not g for g in figures)]


@magics_class
class OriginalMagics(Magics):
    """Magics of the original without a counterpart in today's PlotWork; they share the notebook's Session."""

    def __init__(self, shell: Any, session: Session):
        super().__init__(shell)
        self.session = session
        self.starting_dir = os.getcwd()

    def _instances(self) -> list[tuple[Any, dict[str, Any]]]:
        return list(zip(self.session.instances, self.session.instantiated))

    @magic_arguments()
    @argument("plotter_name", help="a function registered with @register_iteration_plot_function")
    @argument("--save_figures", action="store_true", help="also write plots/<name>/<prefix>figure_<n>.<format>")
    @argument("--prefix", default="")
    @argument("--format", default=None, help="png, pdf, tikz... (default: matplotlib's savefig.format)")
    @argument("--tab_title", default=None, help="params whose values title each experiment, e.g. 'lr model.w'")
    @argument("args", nargs="*", help="passed to the plot function")
    @line_magic
    def plot_iteration(self, line: str) -> None:
        """%plot_iteration PLOTTER [ARGS...]: the registered function's figures of each restored instance."""
        import matplotlib.pyplot as plt

        args = parse_argstring(self.plot_iteration, line)
        if args.plotter_name not in ITERATION_PLOT_FUNCTIONS:
            raise KeyError(f"no iteration plot function {args.plotter_name!r}; registered: "
                           f"{', '.join(ITERATION_PLOT_FUNCTIONS) or 'none'}")
        if not self.session.instances:
            warnings.warn(f"No plots available for {args.plotter_name} with args {args.args}: restore experiments "
                          "first (%restore_experiment_state)", stacklevel=2)
        for instance, config in self._instances():
            print(tab_title(config, args.tab_title))
            before = set(plt.get_fignums())
            returned = ITERATION_PLOT_FUNCTIONS[args.plotter_name](instance, args.args)
            opened = [plt.figure(number) for number in plt.get_fignums() if number not in before]
            for number, figure in enumerate(_figures(returned, opened)):
                if args.save_figures:
                    save_figure(figure, os.path.join("plots", config["name"], f"{args.prefix}figure_{number}"),
                                args.format)
                show_figure(figure)

    @magic_arguments()
    @argument("file_provider", help="a function registered with @register_file_provider")
    @argument("--tab_title", default=None, help="params whose values title each experiment")
    @argument("args", nargs="*", help="passed to the file provider")
    @line_magic
    def provide_files(self, line: str) -> None:
        """%provide_files PROVIDER [ARGS...]: download links to the files the provider names per instance."""
        args = parse_argstring(self.provide_files, line)
        if args.file_provider not in FILE_PROVIDERS:
            raise KeyError(f"no file provider {args.file_provider!r}; registered: "
                           f"{', '.join(FILE_PROVIDERS) or 'none'}")
        url_prefix = os.path.relpath(os.getcwd(), self.starting_dir) + os.sep
        if not self.session.instances:
            warnings.warn("No files loaded: restore experiments first (%restore_experiment_state)", stacklevel=2)
        for instance, config in self._instances():
            files = FILE_PROVIDERS[args.file_provider](instance, config, args.args)
            print(tab_title(config, args.tab_title))
            for file in [files] if isinstance(files, DownloadFile) else files:
                display(DownloadFileLink(file.path, file.file_name, file.link_text, url_prefix=url_prefix))

    @line_magic
    def show_progress(self, line: str) -> ProgressBars:
        """%show_progress [full]: the loaded experiments' progress bars (`full`: per repetition too)."""
        total, experiments = progress_of(self.session.experiments)
        return ProgressBars(total, experiments, line.strip() == "full")

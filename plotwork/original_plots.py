"""The original PlotWork's registries and plot functions: what notebooks written for it import and register.

    @register_results_plot_function("name")     (name, results, axes) -> None; `results` is the experiment's
                                                 frame of the asked columns, indexed by (r, i)
    @register_iteration_plot_function("name")   (experiment instance, extra args) -> figures
    @register_file_provider("name")             (instance, config, extra args) -> DownloadFile or a list

Built in, as in the original: mean_2std, mean_2std_reps (each repetition in grey too), mean_2std_best (the 7
repetitions with the highest maximum) and mean_2std_best_out (the others in grey). No IPython needed here.
"""
from __future__ import annotations

import itertools
import weakref
from collections import namedtuple
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd

from .plotters import PLOTTERS

ResultsPlotFunction = Callable[[str, Any, Any], None]
ITERATION_PLOT_FUNCTIONS: dict[str, Callable[..., Any]] = {}
RESULTS_PLOT_FUNCTIONS: dict[str, ResultsPlotFunction] = {}  # the user's
FILE_PROVIDERS: dict[str, Callable[..., Any]] = {}

DownloadFile = namedtuple("DownloadFile", ["path", "file_name", "link_text"])


def register_iteration_plot_function(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(plot_function: Callable[..., Any]) -> Callable[..., Any]:
        ITERATION_PLOT_FUNCTIONS[name] = plot_function
        return plot_function
    return register


def register_results_plot_function(name: str) -> Callable[[ResultsPlotFunction], ResultsPlotFunction]:
    def register(plot_function: ResultsPlotFunction) -> ResultsPlotFunction:
        RESULTS_PLOT_FUNCTIONS[name] = plot_function
        return plot_function
    return register


def register_file_provider(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(provider: Callable[..., Any]) -> Callable[..., Any]:
        FILE_PROVIDERS[name] = provider
        return provider
    return register


LINE_STYLES = {
    "solid": (0, ()), "densely dotted": (0, (1, 1)), "densely dashed": (0, (5, 1)),
    "densely dashdotted": (0, (3, 1, 1, 1)), "densely dashdotdotted": (0, (3, 1, 1, 1, 1, 1)),
    "dashed": (0, (5, 5)), "dotted": (0, (1, 5)), "dashdotted": (0, (3, 5, 1, 5)),
    "dashdotdotted": (0, (3, 5, 1, 5, 1, 5)), "loosely dotted": (0, (1, 10)), "loosely dashed": (0, (5, 10)),
    "loosely dashdotted": (0, (3, 10, 1, 10)), "loosely dashdotdotted": (0, (3, 10, 1, 10, 1, 10)),
}
_line_style_cycles: weakref.WeakKeyDictionary[Any, Iterator[str]] = weakref.WeakKeyDictionary()


def line_style_cycle(axes: Any) -> Iterator[str]:
    """Each axes walks through the line styles on its own, so the experiments drawn on it stay apart."""
    if axes not in _line_style_cycles:
        _line_style_cycles[axes] = itertools.cycle(LINE_STYLES)
    return _line_style_cycles[axes]


def _next_style(axes: Any) -> Any:
    return LINE_STYLES[next(line_style_cycle(axes))]


def _plot_one_column(axes: Any, column: pd.Series, name: str, plot_each_rep: bool = False,
                     ls_def: Any = None) -> None:
    """Mean over repetitions against iteration with a band of 2 std (each repetition in grey, if asked)."""
    mean = column.groupby(level=1).mean()
    std = column.groupby(level=1).std()
    ls_def = _next_style(axes) if ls_def is None else ls_def
    if plot_each_rep:
        axes.plot(mean.index, column.unstack(level=0).reindex(mean.index), c="grey", ls=ls_def, alpha=.5)
    axes.fill_between(mean.index, mean - 2 * std, mean + 2 * std, alpha=.35)
    axes.plot(mean.index, mean, label=name, ls=ls_def)
    axes.legend()


def _columns(name: str, results: pd.Series | pd.DataFrame) -> list[tuple[str, pd.Series]]:
    """(label, column) to draw: a frame gives one per column, labelled 'name, column', a series itself."""
    if isinstance(results, pd.DataFrame):
        return [(f"{name}, {column}", results[column]) for column in results]
    return [(name, results)]


def plot_mean_2std(name: str, results_df: pd.Series | pd.DataFrame, axes: Any, plot_each_rep: bool = False) -> None:
    for label, column in _columns(name, results_df):
        _plot_one_column(axes, column, label, plot_each_rep)


def plot_mean_2std_best(name: str, results_df: pd.Series | pd.DataFrame, axes: Any,
                        plot_outliers: bool = False) -> None:
    """mean_2std over the 7 repetitions whose maximum is highest; the others in grey with `plot_outliers`."""
    n_best = 7
    for label, column in _columns(name, results_df):
        ranked = column.groupby(level=0).max().sort_values(ascending=False)
        best, worst = ranked.head(n_best), ranked.iloc[n_best:]
        ls_def = _next_style(axes)
        if plot_outliers and len(worst):
            outliers = column.loc[worst.index.tolist()].unstack(level=0)
            axes.plot(outliers.index, outliers, c="grey", ls=ls_def, alpha=.5)
        _plot_one_column(axes, column.loc[best.index.tolist()], label, ls_def=ls_def)


ORIGINAL_RESULTS_PLOT_FUNCTIONS: dict[str, ResultsPlotFunction] = {
    "mean_2std": plot_mean_2std,
    "mean_2std_reps": lambda n, df, a: plot_mean_2std(n, df, a, True),
    "mean_2std_best": plot_mean_2std_best,
    "mean_2std_best_out": lambda n, df, a: plot_mean_2std_best(n, df, a, True),
}


def results_plot_function(name: str, original_first: bool) -> ResultsPlotFunction | None:
    """The plot function of the original's kind registered as `name`, or None where `name` is one of
    today's plotters (`plotters.PLOTTERS`). Yours always win; of the built-ins only `mean_2std` has both
    kinds, and `original_first` (the notebook loaded `plot_work`) picks the original's."""
    if name in RESULTS_PLOT_FUNCTIONS:
        return RESULTS_PLOT_FUNCTIONS[name]
    if name in ORIGINAL_RESULTS_PLOT_FUNCTIONS and (original_first or name not in PLOTTERS):
        return ORIGINAL_RESULTS_PLOT_FUNCTIONS[name]
    return None

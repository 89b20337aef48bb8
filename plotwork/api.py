"""PlotWork without IPython: figures, best iterations and saved plots from a results DataFrame.

Figures are of print size (`print_style`): 7 x 4.5 inches at 200 dpi, so a saved PNG is 1400 x 900 pixels.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from .plotters import check_options, get_plotter
from .print_style import figure as new_figure
from .print_style import rc_context


def plot_results(frame: pd.DataFrame, plotter: str, column: str, title: str | None = None,
                 **options: Any) -> Any:
    """One matplotlib Figure of `column` drawn by the named plotter (mean_2std, best_n, param_sweep...) with
    its `options` (ValueError for one it does not take)."""
    if column not in frame:
        raise KeyError(f"no result column {column!r}; columns: {', '.join(map(str, frame.columns))}")
    draw = get_plotter(plotter)
    check_options(plotter, options)
    with rc_context():
        figure = new_figure()
        ax = figure.add_subplot()
        draw(frame, column, ax, **options)
        ax.set_title(title or f"{column} ({plotter})")
    return figure


def plot_each_experiment(frame: pd.DataFrame, plotter: str, column: str, **options: Any) -> list[Any]:
    """One figure per expanded experiment (-i in %plot_results)."""
    return [plot_results(group, plotter, column, title=f"{name}: {column}", **options)
            for name, group in frame.groupby("experiment", sort=False)]


def save_figures(figures: Sequence[Any], folder: str, prefix: str, fmt: str = "png") -> list[str]:
    """Write each figure as `<folder>/<prefix><title>.<fmt>` (at the figure's dpi); returns the paths."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for number, figure in enumerate(figures):
        title = figure.axes[0].get_title() if figure.axes else str(number)
        name = re.sub(r"[^A-Za-z0-9._=-]+", "_", title).strip("_") or str(number)
        path = os.path.join(folder, f"{prefix}{name}.{fmt}")
        figure.savefig(path, format=fmt, dpi="figure")
        paths.append(path)
    return paths


def best_iterations(frame: pd.DataFrame, column: str, mode: str = "max") -> pd.DataFrame:
    """Per expanded experiment and repetition: the iteration with the best value of `column`."""
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    values = frame.dropna(subset=[column])
    index = (values.groupby(["experiment", "rep"])[column].idxmax() if mode == "max"
             else values.groupby(["experiment", "rep"])[column].idxmin())
    best = values.loc[index, ["experiment", "rep", "iteration", column]]
    return best.sort_values(column, ascending=mode == "min").reset_index(drop=True)


def sweep_figures(frame: pd.DataFrame, columns: Sequence[str], plotter: str, bases: Mapping[str, str],
                  options: Callable[[str, str], Mapping[str, Any]] = lambda base, column: {}) -> list[Any]:
    """One figure per base experiment and column (the experiment script's --plot); `bases` maps each expanded
    name to its base name, `options(base, column)` gives the plotter's options."""
    figures = []
    base_of = frame.experiment.map(bases)
    for base in dict.fromkeys(base_of.dropna()):
        for column in columns:
            figures.append(plot_results(frame[base_of == base], plotter, column, title=f"{base} {column} {plotter}",
                                        **options(base, column)))
    return figures

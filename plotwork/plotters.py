"""Plotters: functions that draw one result column of a results DataFrame onto a matplotlib Axes.

A plotter takes (frame, column, ax, **options); `frame` is what `cluster_work.load_results` returns,
already narrowed to the experiments to draw. Register your own with `@register_plotter("name")`.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from cluster_work.expansion import NAME_SEPARATOR

Plotter = Callable[..., None]
PLOTTERS: dict[str, Plotter] = {}


def legend_labels(names: Any) -> dict[str, str]:
    """The legend's label of each expanded experiment: without the base name and separator that all of them
    share ('lr0.1' for 'fit__lr0.1' beside 'fit__lr0.2'), the full names where they differ in base."""
    names = [str(name) for name in dict.fromkeys(names)]
    shared = os.path.commonprefix(names)
    cut = shared.rfind(NAME_SEPARATOR) + len(NAME_SEPARATOR) if NAME_SEPARATOR in shared else 0
    return {name: name[cut:] or name for name in names}


def register_plotter(name: str) -> Callable[[Plotter], Plotter]:
    """Decorator: make `plotter` available by `name` to plot_results and %plot_results."""
    def register(plotter: Plotter) -> Plotter:
        PLOTTERS[name] = plotter
        return plotter
    return register


def get_plotter(name: str) -> Plotter:
    try:
        return PLOTTERS[name]
    except KeyError:
        raise KeyError(f"unknown plotter {name!r}; known: {', '.join(sorted(PLOTTERS))}") from None


@register_plotter("mean_2std")
def mean_2std(frame: pd.DataFrame, column: str, ax: Any, **options: Any) -> None:
    """Per expanded experiment: the mean over repetitions against iteration, and a band of 2 std."""
    labels = legend_labels(frame.experiment)
    for name, group in frame.groupby("experiment", sort=False):
        stats = group.groupby("iteration")[column].agg(["mean", "std"]).fillna({"std": 0.0})
        line, = ax.plot(stats.index, stats["mean"], label=labels[str(name)])
        ax.fill_between(stats.index, stats["mean"] - 2 * stats["std"], stats["mean"] + 2 * stats["std"],
                        color=line.get_color(), alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel(column)
    ax.legend(fontsize="small")


@register_plotter("best_n")
def best_n(frame: pd.DataFrame, column: str, ax: Any, n: int = 3, mode: str = "max", **options: Any) -> None:
    """Per expanded experiment: the n repetitions with the best final value, one line each."""
    labels = legend_labels(frame.experiment)
    for name, group in frame.groupby("experiment", sort=False):
        final = group.sort_values("iteration").groupby("rep")[column].last()
        best = final.nlargest(n) if mode == "max" else final.nsmallest(n)
        for rep in best.index:
            curve = group[group.rep == rep].sort_values("iteration")
            ax.plot(curve.iteration, curve[column], label=f"{labels[str(name)]} rep {rep}")
    ax.set_xlabel("iteration")
    ax.set_ylabel(column)
    ax.legend(fontsize="small")


@register_plotter("param_sweep")
def param_sweep(frame: pd.DataFrame, column: str, ax: Any, param: str | None = None, **options: Any) -> None:
    """The final value of `column` (mean and 2 std over repetitions) against a swept parameter, one line
    per value of the other swept parameters. `param` defaults to the first parameter that varies."""
    params = [c for c in frame.columns if c.startswith("params.") and frame[c].astype(str).nunique() > 1]
    if not params:
        raise ValueError("param_sweep needs experiments that differ in a parameter")
    x = f"params.{param}" if param and not param.startswith("params.") else (param or params[0])
    if x not in frame:
        raise ValueError(f"no parameter {x!r}; swept: {', '.join(p[7:] for p in params)}")
    others = [p for p in params if p != x]
    final = frame.sort_values("iteration").groupby(["experiment", "rep"], sort=False).tail(1)
    for key, group in (final.groupby(others, sort=True) if others else [((), final)]):
        stats = group.groupby(x)[column].agg(["mean", "std"]).fillna({"std": 0.0}).sort_index()
        key = key if isinstance(key, tuple) else (key,)
        label = ", ".join(f"{o[7:]}={v}" for o, v in zip(others, key)) or column
        ax.errorbar(stats.index, stats["mean"], yerr=2 * stats["std"], marker="o", capsize=3, label=label)
    ax.set_xlabel(x[7:])
    ax.set_ylabel(f"{column} (final)")
    ax.legend(fontsize="small")

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


def _ensemble_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of weighted ensembles (those with a walker) of a load_results frame."""
    if "walker" not in frame or "recycled" not in frame:
        raise ValueError("no weighted ensemble in this frame (no `walker` and `recycled` columns)")
    return frame[frame["walker"].notna()]


@register_plotter("ensemble_flux")
def ensemble_flux(frame: pd.DataFrame, column: str, ax: Any, skip: int = 0, **options: Any) -> None:
    """Weighted ensembles: per experiment the flux per iteration (the `column`, `weight`, of the walkers
    recycled in it) and its running mean from iteration `skip` on (the estimate, once past a burn-in)."""
    from cluster_work.ensemble.analysis import ensemble_flux as flux_of

    rows = _ensemble_rows(frame)
    labels = legend_labels(rows.experiment)
    for name, group in rows.groupby("experiment", sort=False):
        flux = flux_of(group.assign(weight=group[column])).droplevel("experiment")
        line, = ax.plot(flux.index, flux.values, alpha=0.4, label=f"{labels[str(name)]} per iteration")
        later = flux[flux.index >= skip]
        ax.plot(later.index, later.expanding().mean().values, color=line.get_color(),
                label=f"{labels[str(name)]} running mean")
    if (rows[column][rows["recycled"].eq(True)] > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"flux ({column} recycled)")
    ax.legend(fontsize="small")


@register_plotter("ensemble_bins")
def ensemble_bins(frame: pd.DataFrame, column: str, ax: Any, skip: int = 0, **options: Any) -> None:
    """Weighted ensembles: per experiment the `column` (`weight`) in each bin, summed per iteration and
    averaged over the iterations from `skip` on: the probability along the progress coordinate."""
    rows = _ensemble_rows(frame)
    labels = legend_labels(rows.experiment)
    for name, group in rows[rows["iteration"] >= skip].groupby("experiment", sort=False):
        per_bin = group.groupby(group["bin"].astype("int64"))[column].sum() / group["iteration"].nunique()
        ax.step(per_bin.index, per_bin.values, where="mid", marker="o", label=labels[str(name)])
    ax.set_yscale("log")
    ax.set_xlabel("bin")
    ax.set_ylabel(f"{column} per bin (mean over iterations)")
    ax.legend(fontsize="small")


@register_plotter("steered")
def steered(frame: pd.DataFrame, column: str, ax: Any, **options: Any) -> None:
    """Steered campaigns: every repetition's curve of `column`, coloured by where it stopped (its last saved
    iteration), one legend entry per stopping point with how many ended there: the points a policy let
    go on stand out from those it stopped at each rung."""
    import matplotlib

    ends = frame.groupby(["experiment", "rep"], sort=False)["iteration"].max() + 1
    counts = ends.value_counts()
    stops = sorted(counts.index)
    colours = matplotlib.colormaps["viridis"]
    colour = {end: colours(number / max(len(stops) - 1, 1)) for number, end in enumerate(stops)}
    first_line: dict[int, Any] = {}
    for (name, rep), group in frame.groupby(["experiment", "rep"], sort=False):
        end = ends[(name, rep)]
        line, = ax.plot(group["iteration"], group[column], color=colour[end], alpha=0.8, linewidth=1,
                        marker="." if len(group) == 1 else None)  # a point stopped after one iteration
        first_line.setdefault(end, line)
    ax.set_xlabel("iteration")
    ax.set_ylabel(column)
    labels = [f"{counts[end]} ended after {end} iteration{'s' if end != 1 else ''}" for end in stops]
    ax.legend([first_line[end] for end in stops], labels, fontsize="small")

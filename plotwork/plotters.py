"""Plotters: functions that draw one result column of a results DataFrame onto a matplotlib Axes.

A plotter takes (frame, column, ax, **options); `frame` is what `cluster_work.load_results` returns,
already narrowed to the experiments to draw; its options are keyword parameters with defaults, which
`check_options` holds what a user passes against. Register your own with `@register_plotter("name")`.
Series are labelled by the parameters that vary and coloured by `series.styles`; the legend stays off the
data (`print_style.place_legend`).
"""
from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from .print_style import iteration_axis, place_legend
from .series import PALETTE, Styles, experiment_styles, format_value, short_names, styles, varied_params

Plotter = Callable[..., None]
PLOTTERS: dict[str, Plotter] = {}
MODES = ("max", "min")


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


def plotter_options(plotter: Plotter) -> list[str] | None:
    """The options `plotter` takes (its keyword parameters after frame, column, ax); None: any (**options)."""
    parameters = list(inspect.signature(plotter).parameters.values())[3:]
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ValueError naming the options of plotter `name` that it does not take."""
    known = plotter_options(get_plotter(name))
    unknown = [key for key in options if known is not None and key not in known]
    if unknown:
        raise ValueError(f"plotter {name} takes no option {', '.join(map(repr, unknown))}; "
                         f"its options: {', '.join(known or []) or 'none'}")


def _by_experiment(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    return {str(name): group for name, group in frame.groupby(frame.experiment.astype(str), sort=False)}


def _mean_and_band(ax: Any, group: pd.DataFrame, column: str, look: Mapping[str, Any]) -> None:
    """The mean of `column` over repetitions against iteration, and a band of two standard deviations."""
    stats = group.groupby("iteration")[column].agg(["mean", "std"]).fillna({"std": 0.0})
    ax.plot(stats.index, stats["mean"], **{**look, "marker": look["marker"] or ("o" if len(stats) == 1 else None)})
    ax.fill_between(stats.index, stats["mean"] - 2 * stats["std"], stats["mean"] + 2 * stats["std"],
                    color=look["color"], alpha=0.15, linewidth=0)


@register_plotter("mean_2std")
def mean_2std(frame: pd.DataFrame, column: str, ax: Any) -> None:
    """Per expanded experiment: the mean over repetitions against iteration, and a band of 2 std."""
    groups, looks = _by_experiment(frame), experiment_styles(frame)
    for name, look in looks:
        _mean_and_band(ax, groups[name], column, look)
    iteration_axis(ax)
    ax.set_ylabel(column)
    place_legend(ax, scale=looks.scale)


def final_values(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Each repetition's last row that has a value of `column`."""
    rows = frame.dropna(subset=[column])
    return rows.sort_values("iteration", kind="stable").groupby(["experiment", "rep"], sort=False).tail(1)


@register_plotter("best_n")
def best_n(frame: pd.DataFrame, column: str, ax: Any, n: int = 3, mode: str = "max") -> None:
    """The n expanded experiments whose final `column` (the mean over repetitions of each one's last value) is
    best, highest for mode max, lowest for min: each one's mean against iteration with a band of 2 std,
    best first. The command line asks for the mode (or takes a steer block's); here it defaults to max, as
    the original PlotWork's."""
    if mode not in MODES:
        raise ValueError(f"best_n: mode must be max or min, got {mode!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"best_n: n must be a whole number of at least 1, got {n!r}")
    final = final_values(frame, column)
    final = final.groupby(final.experiment.astype(str), sort=False)[column].mean()
    ranked = final.sort_values(ascending=mode == "min", kind="stable")
    groups = _by_experiment(frame)
    for name, look in experiment_styles(frame, list(ranked.index[:n]), by_value=False):
        _mean_and_band(ax, groups[name], column, look)
    iteration_axis(ax)
    ax.set_ylabel(column)
    end = "lowest" if mode == "min" else "highest"
    place_legend(ax, title=f"{min(n, len(ranked))} of {len(ranked)} with the {end} final {column}")


def sweep_axis(frame: pd.DataFrame, param: str | None) -> str:
    """The `params.` column param_sweep puts on x: the one named (its dotted name, or the last keys of it),
    else the varied one with the most distinct values (the first of those)."""
    varied = varied_params(frame)
    if not varied:
        raise ValueError("param_sweep needs experiments that differ in a parameter")
    distinct = {c: frame.groupby("experiment")[c].first().astype(str).nunique() for c in varied}
    if param is None:
        return max(varied, key=lambda c: distinct[c])
    name = param.removeprefix("params.")
    columns = [c for c in frame.columns if str(c).startswith("params.")]
    matches = [c for c in columns if c == f"params.{name}"] or [c for c in columns if c.endswith(f".{name}")]
    if len(matches) != 1:
        raise ValueError(f"param_sweep: {'no' if not matches else 'more than one'} parameter {param!r}"
                         f"{': ' + ', '.join(m[7:] for m in matches) if matches else ''}; "
                         f"varied: {', '.join(c[7:] for c in varied)}")
    if matches[0] not in varied:
        raise ValueError(f"param_sweep: {matches[0][7:]} has one value in these experiments; "
                         f"varied: {', '.join(c[7:] for c in varied)}")
    return matches[0]


def log_spaced(values: pd.Series) -> bool:
    """Whether numbers are better shown on a log axis: all positive, and their steps even in log rather
    than in value (0.001, 0.003, 0.01; 1, 10, 100); two values that span a factor of 100 or more."""
    if not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values):
        return False
    points = np.unique(values.dropna().to_numpy(dtype=float))
    if len(points) < 2 or points[0] <= 0:
        return False
    if len(points) == 2:
        return bool(points[1] / points[0] >= 100)
    steps, log_steps = np.diff(points), np.diff(np.log(points))
    return bool(log_steps.max() / log_steps.min() < steps.max() / steps.min())


@register_plotter("param_sweep")
def param_sweep(frame: pd.DataFrame, column: str, ax: Any, param: str | None = None) -> None:
    """The final value of `column` (mean and 2 std over repetitions) against a swept parameter, one line per
    value of the other swept parameters. `param` names it; by default the varied one with the most values.
    Parameters that vary together with it (a zipped `list:`) go with it on x, not into more lines; values
    spaced evenly in log go on a log axis."""
    x = sweep_axis(frame, param)
    per_experiment = frame.groupby("experiment", sort=False)[varied_params(frame)].first().astype(str)
    together = [c for c in per_experiment if c != x and per_experiment.groupby(x)[c].nunique().max() == 1
                and per_experiment.groupby(c)[x].nunique().max() == 1]
    others = [c for c in per_experiment if c not in (x, *together)]
    final = final_values(frame, column)
    groups = [group for _, group in final.groupby([final[c].astype(str) for c in others], sort=False)] if others else []
    lines: dict[Hashable, pd.DataFrame] = dict(enumerate(groups if others else [final]))
    table = pd.DataFrame([group[others].iloc[0] for group in groups], index=range(len(groups)), columns=others)
    looks = styles(table) if others else Styles([(0, {"label": None, "color": PALETTE[0], "linestyle": "-"})])
    for number, look in looks:
        stats = lines[number].groupby(x)[column].agg(["mean", "std"]).fillna({"std": 0.0}).sort_index()
        ax.errorbar(stats.index, stats["mean"], yerr=2 * stats["std"], capsize=3,
                    **{**look, "marker": look.get("marker") or "o"})
    if log_spaced(final[x]):
        ax.set_xscale("log")
        values = sorted(final[x].dropna().unique())
        if len(values) <= 12:  # the swept values themselves as ticks: 0.003 0.01 0.03, not 3x10^-3
            ax.set_xticks(values, [format_value(v) for v in values])
            ax.xaxis.set_minor_formatter("")
    names = short_names([x, *together, *others])
    ax.set_xlabel(names[x] + (f" (with {', '.join(names[c] for c in together)})" if together else ""))
    ax.set_ylabel(f"{column} (final)")
    place_legend(ax, scale=looks.scale)

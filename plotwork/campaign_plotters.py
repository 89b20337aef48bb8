"""The plotters of campaigns: weighted ensembles (`ensemble_flux`, `ensemble_bins`) and steered searches
(`steered`). Registered when the `plotwork` package is imported (its `__init__` imports this module)."""
from __future__ import annotations

from typing import Any

import pandas as pd

from .plotters import register_plotter
from .print_style import iteration_axis, place_legend
from .series import SEQUENTIAL, SEQUENTIAL_END, experiment_styles


def _ensemble_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows of weighted ensembles (those with a walker) of a load_results frame."""
    if "walker" not in frame or "recycled" not in frame:
        raise ValueError("no weighted ensemble in this frame (no `walker` and `recycled` columns)")
    return frame[frame["walker"].notna()]


@register_plotter("ensemble_flux")
def ensemble_flux(frame: pd.DataFrame, column: str, ax: Any, skip: int = 0) -> None:
    """Weighted ensembles: per experiment the flux per iteration (the `column`, `weight`, of the walkers
    recycled in it) and its running mean from iteration `skip` on (the estimate, once past a burn-in)."""
    from cluster_work.ensemble.analysis import ensemble_flux as flux_of

    rows = _ensemble_rows(frame)
    groups = {str(name): group for name, group in rows.groupby(rows.experiment.astype(str), sort=False)}
    looks = experiment_styles(rows)
    for name, look in looks:
        group = groups[name]
        flux = flux_of(group.assign(weight=group[column])).droplevel("experiment")
        ax.plot(flux.index, flux.values, **{**look, "alpha": 0.35, "linewidth": 1.0,
                                            "label": f"{look['label']}, per iteration"})
        later = flux[flux.index >= skip]
        ax.plot(later.index, later.expanding().mean().values, **{**look, "label": f"{look['label']}, running mean"})
    if (rows[column][rows["recycled"].eq(True)] > 0).any():
        ax.set_yscale("log")
    iteration_axis(ax)
    ax.set_ylabel(f"flux ({column} recycled)")
    place_legend(ax, scale=looks.scale)


@register_plotter("ensemble_bins")
def ensemble_bins(frame: pd.DataFrame, column: str, ax: Any, skip: int = 0) -> None:
    """Weighted ensembles: per experiment the `column` (`weight`) in each bin, summed per iteration and
    averaged over the iterations from `skip` on: the probability along the progress coordinate."""
    rows = _ensemble_rows(frame)
    kept = rows[rows["iteration"] >= skip]
    groups = {str(name): group for name, group in kept.groupby(kept.experiment.astype(str), sort=False)}
    looks = experiment_styles(rows)
    for name, look in looks:
        if name in groups:
            group = groups[name]
            per_bin = group.groupby(group["bin"].astype("int64"))[column].sum() / group["iteration"].nunique()
            ax.step(per_bin.index, per_bin.values, where="mid", **{**look, "marker": look["marker"] or "o"})
    ax.set_yscale("log")
    ax.set_xlabel("bin")
    ax.set_ylabel(f"{column} per bin (mean over iterations)")
    place_legend(ax, scale=looks.scale)


@register_plotter("steered")
def steered(frame: pd.DataFrame, column: str, ax: Any) -> None:
    """Steered campaigns: every repetition's curve of `column`, coloured by where it stopped (its last saved
    iteration) on a sequential scale that stays dark enough on white, the longer runs drawn thicker and on
    top; one legend entry per stopping point with how many ended there: the points a policy let go on stand
    out from those it stopped at each rung."""
    import matplotlib

    ends = frame.groupby(["experiment", "rep"], sort=False)["iteration"].max() + 1
    counts = ends.value_counts()
    stops = sorted(counts.index)
    scale = matplotlib.colormaps[SEQUENTIAL]
    colour = {end: scale(SEQUENTIAL_END * number / max(len(stops) - 1, 1)) for number, end in enumerate(stops)}
    width = {end: 0.8 + 1.6 * number / max(len(stops) - 1, 1) for number, end in enumerate(stops)}
    first_line: dict[int, Any] = {}
    for (name, rep), group in frame.groupby(["experiment", "rep"], sort=False):
        end = ends[(name, rep)]
        line, = ax.plot(group["iteration"], group[column], color=colour[end], alpha=0.85, linewidth=width[end],
                        zorder=2 + stops.index(end) / len(stops),
                        marker="." if len(group) == 1 else None)  # a point stopped after one iteration
        first_line.setdefault(end, line)
    iteration_axis(ax)
    ax.set_ylabel(column)
    labels = [f"{counts[end]} ended after {end} iteration{'s' if end != 1 else ''}" for end in stops]
    place_legend(ax, handles=[first_line[end] for end in stops], labels=labels)

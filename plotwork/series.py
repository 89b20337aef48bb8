"""The series of a plot: what tells them apart (the parameters that vary), their labels, colours and line styles.

A series is an expanded experiment (mean_2std, best_n) or a set of them (a line of param_sweep). It is
labelled by the parameters that vary across the series drawn, `learning_rate=0.003, ridge=0.1` (the last
key of each dotted name, more keys only where two would read alike), never by the expanded name.

Colours follow what varies: where one parameter tells the series apart (or several that vary together, as a
zipped `list:`), a sequential colour scale in the order of its values, so the eye reads the sweep as an
order; otherwise distinct colours of a palette that colour-blind readers tell apart (Okabe and Ito's),
cycling through line styles, then markers, once the palette is used up, so no two series look the same.
"""
from __future__ import annotations

import itertools
import numbers
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from cluster_work.expansion import NAME_SEPARATOR

# Okabe & Ito's colour-blind-safe palette, without its yellow (too pale on white)
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
LINE_STYLES = ("-", "--", ":", "-.")
MARKERS = (None, "o", "s", "^", "v", "D")
SEQUENTIAL = "viridis"
SEQUENTIAL_END = 0.75  # of the colour map: its last quarter is too pale for a line on white
PARAM_PREFIX = "params."


def varied_params(frame: pd.DataFrame) -> list[str]:
    """The `params.*` columns whose value is not the same for every experiment of `frame`, the outer loops of
    the sweep first (those that change least often from one experiment to the next, in the frame's order of
    experiments: `grid:` order, then `list:`), else in column order."""
    if "experiment" not in frame or frame.empty:
        return []
    params = [c for c in frame.columns if str(c).startswith(PARAM_PREFIX)]
    first = frame.groupby("experiment", sort=False)[params].first().astype(str) if params else pd.DataFrame()
    changes = {c: int((first[c] != first[c].shift()).sum()) for c in params}
    return sorted((c for c in params if first[c].nunique(dropna=False) > 1), key=lambda c: changes[c])


def short_names(columns: Sequence[str]) -> dict[str, str]:
    """`params.optimizer.learning_rate` -> `learning_rate`: each column's last key, or as many last keys as
    it takes to tell it from the others (`a.lr` and `b.lr`)."""
    keys = {c: c[len(PARAM_PREFIX):].split(".") if c.startswith(PARAM_PREFIX) else [c] for c in columns}
    depth = dict.fromkeys(columns, 1)
    while True:
        names = {c: ".".join(keys[c][-depth[c]:]) for c in columns}
        clashes = [c for c in columns if list(names.values()).count(names[c]) > 1 and depth[c] < len(keys[c])]
        if not clashes:
            return names
        for c in clashes:
            depth[c] += 1


def format_value(value: Any) -> str:
    """A parameter's value as a legend shows it: floats with up to 12 significant digits (0.003, 0.1, 200)."""
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, numbers.Integral)):
        return format(float(value), ".12g")
    return str(value)


def describe(values: pd.Series, names: dict[str, str]) -> str:
    """One series' label: `name=value` for each of its parameters that is set."""
    return ", ".join(f"{names[c]}={format_value(v)}" for c, v in values.items() if not _missing(v))


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # a list or mapping
        return False


def name_labels(names: Sequence[str]) -> dict[str, str]:
    """Labels from expanded names, where no parameter tells experiments apart: without the base name and
    separator that all of them share ('lr0.1' for 'fit__lr0.1' beside 'fit__lr0.2')."""
    names = [str(name) for name in dict.fromkeys(names)]
    shared = os.path.commonprefix(names)
    cut = shared.rfind(NAME_SEPARATOR) + len(NAME_SEPARATOR) if NAME_SEPARATOR in shared else 0
    return {name: name[cut:] or name for name in names}


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, numbers.Real) and not _missing(value):
        return (0, float(value))
    return (1, str(value))


def one_dimension(table: pd.DataFrame) -> bool:
    """Whether the rows of `table` (one per series) differ along one dimension only: a single column, or
    columns that vary together (each value of one goes with one value of every other)."""
    rows = len(table.astype(str).drop_duplicates())
    return rows > 1 and all(table[c].astype(str).nunique(dropna=False) == rows for c in table.columns)


@dataclass(frozen=True)
class Scale:
    """A sequential colour scale: the swept parameter's name and its values, in order, with their colours."""

    name: str
    values: list[Any]
    colours: list[Any]


@dataclass(frozen=True)
class Styles:
    """The series in the order to draw them, each (key, matplotlib keywords: label, color, linestyle,
    marker); the colour scale where they are coloured along one (a legend may then be a colour bar)."""

    looks: list[tuple[Any, dict[str, Any]]]
    scale: Scale | None = None

    def __iter__(self) -> Iterator[tuple[Any, dict[str, Any]]]:
        return iter(self.looks)


def styles(table: pd.DataFrame, by_value: bool = True) -> Styles:
    """How to draw each series. `table` has a row per series (its index: the series' key) and a column per
    parameter that tells them apart. Along one dimension and with `by_value`: sorted by value, on a
    sequential colour scale; else in the table's order, in distinct colours (and line styles, markers). A
    row whose label would be empty or another row's gets its key as label."""
    names = short_names(list(table.columns))
    labels = {key: describe(row, names) for key, row in table.iterrows()}
    counts = pd.Series(list(labels.values())).value_counts()
    labels = {key: label if label and counts[label] == 1 else str(key) for key, label in labels.items()}
    keys = list(table.index)
    if by_value and len(table.columns) and one_dimension(table):
        import matplotlib

        first, *along = table.columns
        keys.sort(key=lambda key: _sort_key(table.at[key, first]))
        values = list(dict.fromkeys(table.loc[keys, first]))
        colour_map = matplotlib.colormaps[SEQUENTIAL]
        colours = [colour_map(SEQUENTIAL_END * i / max(len(values) - 1, 1)) for i in range(len(values))]
        colour = dict(zip(map(str, values), colours))
        name = names[first] + (f" (with {', '.join(names[c] for c in along)})" if along else "")
        return Styles([(key, {"label": labels[key], "color": colour[str(table.at[key, first])], "linestyle": "-",
                              "marker": None}) for key in keys], Scale(name, values, colours))
    looks = itertools.cycle(itertools.product(MARKERS, LINE_STYLES, PALETTE))
    return Styles([(key, {"label": labels[key], "color": colour, "linestyle": style, "marker": marker})
                   for key, (marker, style, colour) in zip(keys, looks)])


def experiment_styles(frame: pd.DataFrame, names: Sequence[str] | None = None, by_value: bool = True) -> Styles:
    """`styles` of the expanded experiments of `frame` (or of `names` among them, in that order), keyed by
    name, labelled by the parameters that vary across all of `frame`; by their names where none does."""
    params = varied_params(frame)
    experiments = list(dict.fromkeys(frame.experiment.astype(str)))
    chosen = list(names or experiments)
    if not params:
        labels = name_labels(experiments)
        styled = styles(pd.DataFrame(index=[labels[e] for e in chosen]), by_value)
        return Styles([(e, look) for e, (_, look) in zip(chosen, styled)])
    table = frame.assign(experiment=frame.experiment.astype(str)).groupby("experiment", sort=False)[params].first()
    styled = styles(table.loc[chosen], by_value)
    return Styles([(str(key), look) for key, look in styled], styled.scale)

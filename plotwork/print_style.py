"""How PlotWork's figures look on paper: 7 x 4.5 inches at 200 dpi (1400 x 900 pixels), font sizes for print,
the legend beside or below the axes, never over the data.

The sizes are in points at the figure's size in inches, so a figure printed at 7 inches wide (a page's text
width) shows 10 pt labels and 8.5 pt legends. Only the figures PlotWork makes get them (`rc_context`):
a user's own matplotlib settings elsewhere stay as they are.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .series import Scale, format_value

FIGURE_SIZE = (7.0, 4.5)  # inches
DPI = 200
FONT_SIZE, TICK_SIZE, LEGEND_SIZE, TITLE_SIZE = 10.0, 9.0, 8.5, 11.0
RC: dict[str, Any] = {"font.size": FONT_SIZE, "axes.labelsize": FONT_SIZE, "axes.titlesize": TITLE_SIZE,
      "xtick.labelsize": TICK_SIZE, "ytick.labelsize": TICK_SIZE, "legend.fontsize": LEGEND_SIZE,
      "legend.title_fontsize": LEGEND_SIZE, "lines.linewidth": 1.6, "axes.grid": True, "grid.alpha": 0.3,
      "grid.linewidth": 0.6}
CHARACTER_WIDTH = 0.6 * LEGEND_SIZE / 72  # inches: about how wide a legend's character is
LINE_HEIGHT, ENTRY_SPACING = 1.2 * LEGEND_SIZE / 72, 0.5 * LEGEND_SIZE / 72  # inches, as matplotlib sets them
WRAP_AT = 0.4  # of the figure's width: where the labels of a legend beside the axes are broken
MARGINS = (0.8, 0.9)  # inches the tick labels, axis labels and title take beside and above/below the axes
LEGEND_AT_MOST = 8  # values of a colour scale a legend lists; more make a colour bar
BELOW_GAP = 40  # points between the axes' bottom and a legend below: the tick labels and the axis label


def figure() -> Any:
    """An empty Figure of the print size, laid out so that labels and a legend outside the axes fit."""
    from matplotlib.figure import Figure  # no pyplot: works without a display and in threads

    return Figure(figsize=FIGURE_SIZE, dpi=DPI, layout="constrained")


def iteration_axis(ax: Any) -> None:
    """The x axis is iterations: labelled so, with whole numbers as ticks."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("iteration")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def rc_context() -> Any:
    """matplotlib's settings for the print size, for the figures made within (`with rc_context(): ...`)."""
    import matplotlib

    settings: Any = RC  # (matplotlib's stubs want literal key names)
    return matplotlib.rc_context(settings)


def wrap_label(label: str, characters: int) -> str:
    """`label` broken after its commas into lines of at most about `characters` (a part is never split)."""
    lines: list[str] = []
    for part in label.split(", "):
        if lines and len(lines[-1]) + 2 + len(part) <= characters:
            lines[-1] += ", " + part
        else:
            lines.append(part)
    return ",\n".join(lines)


def _width(texts: Sequence[str]) -> float:
    """Inches a legend column of these texts takes, with the line sample and padding."""
    return CHARACTER_WIDTH * max(len(line) for text in texts for line in text.split("\n")) + 0.45


def colour_bar(ax: Any, scale: Scale) -> Any:
    """A colour bar beside the axes for the series coloured along `scale`: a block per value, some labelled."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import BoundaryNorm, ListedColormap

    count = len(scale.values)
    blocks = ScalarMappable(BoundaryNorm(np.arange(count + 1) - 0.5, count), ListedColormap(scale.colours))
    bar = ax.figure.colorbar(blocks, ax=ax, label=scale.name)
    ticks = list(range(0, count, math.ceil(count / 12)))
    bar.set_ticks(ticks, labels=[format_value(scale.values[i]) for i in ticks])
    bar.minorticks_off()
    return bar


def place_legend(ax: Any, title: str | None = None, handles: Sequence[Any] | None = None,
                 labels: Sequence[str] | None = None, scale: Scale | None = None) -> Any:
    """The axes' legend (of `handles` and `labels`, else of the artists with a label) outside the data, where
    it leaves the larger axes: beside them (right; long labels broken after commas into lines of at most
    WRAP_AT of the figure's width), or below them in as many columns as fit. None where nothing has a label.
    Series along a colour `scale` of more than LEGEND_AT_MOST values get a colour bar instead."""
    if scale is not None and len(scale.values) > LEGEND_AT_MOST:
        return colour_bar(ax, scale)
    if handles is None or labels is None:
        handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    figure_width, figure_height = ax.figure.get_size_inches()
    heading = [title] if title else []
    wrapped = [wrap_label(label, int((WRAP_AT * figure_width - 0.45) / CHARACTER_WIDTH)) for label in labels]
    lines = sum(label.count("\n") + 1 for label in [*wrapped, *heading])
    height = lines * LINE_HEIGHT + (len(wrapped) + len(heading) + 2) * ENTRY_SPACING
    beside_columns = math.ceil(height / (figure_height - 0.2))
    beside = (figure_width - MARGINS[0] - beside_columns * _width([*wrapped, *heading])) * (figure_height - MARGINS[1])
    below_columns = max(1, min(len(handles), int(0.95 * figure_width // _width(labels))))
    below_rows = math.ceil(len(handles) / below_columns) + len(heading)
    below = ((figure_width - MARGINS[0])
             * (figure_height - 1.5 * MARGINS[1] - below_rows * (LINE_HEIGHT + ENTRY_SPACING)))
    if beside >= below:
        return ax.legend(handles, wrapped, title=title, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                         borderaxespad=0.0, ncol=beside_columns)
    from matplotlib.transforms import offset_copy

    under_the_labels = offset_copy(ax.transAxes, fig=ax.figure, y=-BELOW_GAP, units="points")
    return ax.legend(handles, labels, title=title, loc="upper center", bbox_to_anchor=(0.5, 0.0),
                     bbox_transform=under_the_labels, borderaxespad=0.0, ncol=below_columns)

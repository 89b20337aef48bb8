"""Showing and saving what the magics draw: figures as PNG outputs (whatever the matplotlib backend), files."""
from __future__ import annotations

import io
import os
import warnings
from typing import Any

from IPython.display import Image, display


def show_figure(figure: Any) -> None:
    """Display `figure` as a PNG output and close it in pyplot (so an inline backend does not show it twice)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    display(Image(data=buffer.getvalue(), format="png"))
    import matplotlib.pyplot as plt

    plt.close(figure)


def save_figure(figure: Any, stem: str, fmt: str | None) -> str:
    """Write `figure` to `<stem>.<fmt>` (folders made; matplotlib's default format if `fmt` is None; 'tikz'
    needs matplotlib2tikz, as in the original); returns the file name."""
    import matplotlib

    fmt = fmt or matplotlib.rcParams["savefig.format"]
    filename = f"{stem}.{fmt}"
    os.makedirs(os.path.dirname(filename) or ".", exist_ok=True)
    if fmt == "tikz":
        try:
            from matplotlib2tikz import save as tikz_save
        except ModuleNotFoundError:
            warnings.warn("Saving figure as tikz requires the module matplotlib2tikz.", stacklevel=2)
            return filename
        tikz_save(filename, figure=figure, figureheight="\\figureheight", figurewidth="\\figurewidth")
    else:
        figure.savefig(filename, format=fmt)
    return filename

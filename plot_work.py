"""The original PlotWork's module name: notebooks written for it run with `%load_ext plot_work` and
`from plot_work import register_results_plot_function, ...` unchanged. Everything lives in `plotwork`;
loaded under this name, the magics whose output differs between the two show the original's (see
plotwork.magics).
"""
from typing import Any

from plotwork.original_plots import (
    DownloadFile,
    line_style_cycle,
    plot_mean_2std,
    plot_mean_2std_best,
    register_file_provider,
    register_iteration_plot_function,
    register_results_plot_function,
)

__all__ = ["DownloadFile", "line_style_cycle", "plot_mean_2std", "plot_mean_2std_best", "register_file_provider",
           "register_iteration_plot_function", "register_results_plot_function", "load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext plot_work`: PlotWork's magics in the original's dialect."""
    from plotwork.magics import load_ipython_extension as load
    from plotwork.session import ORIGINAL_DIALECT

    load(ipython, ORIGINAL_DIALECT)

"""PlotWork: look at cluster_work results in IPython/Jupyter, or from scripts.

In a notebook: `%load_ext plotwork`, then `%load_experiment config.yml`, `%plot_results mean_2std loss`...
Without IPython: `plotwork.plot_results(cluster_work.load_results("config.yml"), "mean_2std", "loss")`
returns a matplotlib Figure. Notebooks written for the original PlotWork load `plot_work` (the module of
that name re-exports the original's decorators from here). PlotWork depends on cluster_work, never the
other way round.
"""
from typing import Any

from cluster_work import load_results, summary

# the ensembles' and campaigns' plotters register themselves into PLOTTERS: here, where any import of a plotwork
# module passes first, so the table is whole wherever it is read (and plotters needs not import them back)
from . import campaign_plotters  # noqa: F401
from .api import best_iterations, plot_each_experiment, plot_results, save_figures
from .original_plots import (
    DownloadFile,
    plot_mean_2std,
    plot_mean_2std_best,
    register_file_provider,
    register_iteration_plot_function,
    register_results_plot_function,
)
from .plotters import PLOTTERS, register_plotter

__all__ = ["PLOTTERS", "DownloadFile", "best_iterations", "load_results", "plot_each_experiment", "plot_mean_2std",
           "plot_mean_2std_best", "plot_results", "register_file_provider", "register_iteration_plot_function",
           "register_plotter", "register_results_plot_function", "save_figures", "summary",
           "load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext plotwork` registers the magics (IPython is imported only here)."""
    from .magics import load_ipython_extension as load

    load(ipython)

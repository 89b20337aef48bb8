"""PlotWork: look at cluster_work results in IPython/Jupyter, or from scripts.

In a notebook: `%load_ext plotwork`, then `%load_experiment config.yml`, `%plot_results mean_2std loss`...
Without IPython: `plotwork.plot_results(cluster_work.load_results("config.yml"), "mean_2std", "loss")`
returns a matplotlib Figure. PlotWork depends on cluster_work, never the other way round.
"""
from typing import Any

from cluster_work import load_results, summary

from .api import best_iterations, plot_each_experiment, plot_results, save_figures
from .plotters import PLOTTERS, register_plotter

__all__ = ["PLOTTERS", "best_iterations", "load_results", "plot_each_experiment", "plot_results",
           "register_plotter", "save_figures", "summary", "load_ipython_extension"]


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext plotwork` registers the magics (IPython is imported only here)."""
    from .magics import load_ipython_extension as load

    load(ipython)

"""PlotWork: look at cluster_work results in IPython/Jupyter.

Results load through `cluster_work.load_results`, which PlotWork builds on; it never imports the
other way round.
"""
from cluster_work import load_results

__all__ = ["load_results"]

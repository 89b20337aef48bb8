"""The experiment classes that several benchmarks run (a module beside the scripts: running a script puts
its folder first on sys.path, under `mpiexec ... python -m mpi4py` too, and worker processes inherit it)."""
from __future__ import annotations

from cluster_work import ClusterWork


class NoOp(ClusterWork):
    """One-number rows and no work: what a benchmark measures is the framework's cost per job alone."""

    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        return {"x": n}

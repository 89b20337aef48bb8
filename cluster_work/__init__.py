"""cluster_work: run parameter sweeps of iterative experiments, from a laptop to an MPI cluster."""
from typing import Any

from .errors import ClusterWorkError, IncompleteConfigurationError, InvalidParameterArgument, StoreError
from .experiment import ClusterWork
from .results import load_results, summary
from .runner import restore_experiment
from .version import __version__

__all__ = ["ClusterWork", "ClusterWorkError", "IncompleteConfigurationError", "InvalidParameterArgument",
           "StoreError", "Policy", "Sweep", "ensemble_flux", "load_results", "restore_experiment", "stop_reasons",
           "summary", "__version__"]


def __getattr__(name: str) -> Any:
    """`ensemble_flux` on first use: the ensemble package brings numpy, which `import cluster_work` must not;
    `Policy` and `stop_reasons` (steered campaigns) too, as only a campaign's rank 0 and analysis need them."""
    if name == "ensemble_flux":
        from .ensemble.analysis import ensemble_flux

        return ensemble_flux
    if name == "Sweep":  # lazily, so that `python -m cluster_work.api` (its process) runs it only once
        from .api import Sweep

        return Sweep
    if name == "Policy":
        from .steering.policy import Policy

        return Policy
    if name == "stop_reasons":
        from .steering.progress import stop_reasons

        return stop_reasons
    raise AttributeError(f"module 'cluster_work' has no attribute {name!r}")

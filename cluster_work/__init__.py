"""cluster_work: run parameter sweeps of iterative experiments, from a laptop to an MPI cluster."""
from .errors import ClusterWorkError, IncompleteConfigurationError, InvalidParameterArgument, StoreError
from .experiment import ClusterWork
from .results import load_results, summary
from .runner import restore_experiment

__version__ = "0.1.0"
__all__ = ["ClusterWork", "ClusterWorkError", "IncompleteConfigurationError", "InvalidParameterArgument",
           "StoreError", "load_results", "restore_experiment", "summary", "__version__"]

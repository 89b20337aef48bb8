"""The environment of a process that cluster_work starts beside its own ranks (an executable experiment, an
exporter), without what an MPI launcher set for cluster_work's rank. Apart from both users so that neither
imports the other (an exporter must not import the experiment classes)."""
from __future__ import annotations

from collections.abc import Mapping

# Variables an MPI launcher sets for each process it starts (Open MPI/PRRTE, PMIx, MPICH's Hydra, PMI-2)
LAUNCH_PREFIXES = ("OMPI_", "PMIX_", "PRTE_", "PMI_", "MPI_LOCALRANKID", "MPI_LOCALNRANKS")
LAUNCHER_MCA_VARIABLES = frozenset({"OMPI_MCA_initial_wdir", "OMPI_MCA_num_procs", "OMPI_MCA_cpu_type",
                                    "OMPI_MCA_PREFIXES"})


def launch_free(environment: Mapping[str, str]) -> dict[str, str]:
    """The environment without what an MPI launcher (Open MPI, MPICH, srun's PMI) set for cluster_work's own
    rank: a command inheriting `OMPI_COMM_WORLD_RANK=2` or a PMIx server's address would take itself for that
    rank of cluster_work's job (and its own `mpiexec` would misbehave). Settings stay: `*_MCA_*`, the rest."""
    def launch_variable(name: str) -> bool:
        if name.startswith(("OMPI_MCA_", "PRTE_MCA_", "PMIX_MCA_", "OMPI_ALLOW_RUN_AS_ROOT")):
            return name in LAUNCHER_MCA_VARIABLES
        return name.startswith(LAUNCH_PREFIXES)

    return {name: value for name, value in environment.items() if not launch_variable(name)}

#!/usr/bin/env bash
# Inside a Slurm allocation: write a hostfile for this job (Open MPI format; pass --flavor mpich for MPICH)
# and print its path. Usage: hostfile=$(bash hostfiles/from_slurm.sh) && mpiexec -hostfile "$hostfile" ...
set -euo pipefail
out="hostfile.${SLURM_JOB_ID:-local}"
python -m cluster_work.hostfile -o "$out" "$@"
echo "$out"

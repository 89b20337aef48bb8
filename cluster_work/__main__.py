"""`python -m cluster_work config.yml [options]`: a sweep whose experiments are commands (no Python class);
`python -m cluster_work export TRACKER config.yml`: a sweep's results into MLflow, TensorBoard or W&B.

Every option of an experiment script applies (`-n`, `-c` under mpiexec, `--slurm`, `-p`...); see
`cluster_work.command` for what a command experiment is. A batch script (`--slurm`) runs this file by its
path, as it runs an experiment script: then its folder must not shadow modules (it holds `logs.py`,
`config/`...), so it leaves `sys.path` first.
"""
import os
import sys

if not __package__:  # run as a file, not with -m
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _here]

from cluster_work.command import CommandWork  # noqa: E402  (after the sys.path fix above)

if __name__ == "__main__":
    if sys.argv[1:2] == ["export"]:  # `python -m cluster_work export TRACKER CONFIG`: see cluster_work.export.cli
        from cluster_work.export.cli import main

        sys.exit(main(sys.argv[2:]))
    CommandWork.run()

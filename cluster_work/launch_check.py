"""Did the runs of one launch end? `python -m cluster_work.launch_check SWEEP_PATH`, after the launcher.

Open MPI's launcher can exit 0 although the run died: with a whole host killed, rank 0 dies of
MPI_ERRORS_ARE_FATAL and `mpiexec` (`prterun`) still reports success. A batch script would then take the
sweep for done. The truth is in `runs.jsonl`: rank 0 records every run's start and, as its last act, its
end (`provenance`). A run that started but has no end died as a whole.

To tell this launch's runs from the others of the same folder (older runs killed long ago, a run of
another job still on), the launching script exports a token in `CLUSTER_WORK_LAUNCH`; rank 0 inherits it
and records it in its run's 'started' record, and this check reads it from the same variable (or
`--launch`). The generated Slurm scripts do both: their rank 0 is started by `mpiexec` on the batch
host, or by `srun`, and inherits the script's environment either way (where a launcher starts rank 0
elsewhere without it, Open MPI's `-x CLUSTER_WORK_LAUNCH` passes it on).

Exit status: 0 when every run of the launch recorded its end with status 0, or no run carries the token
(none started: say, rank 0 stopped at a config error, whose status the launcher reports itself);
EXIT_RUN_DIED when one started and recorded no end; otherwise the status a run recorded; EXIT_USAGE
without a token. Invariant: a clean run (it recorded its end, status 0) is never judged dead, and only
records carrying the token are read, so any number of runs before, after or beside it in the folder
change nothing. A rank 0 that did not get the token records none: then nothing is judged (exit 0, as
without this check), never a false alarm. A sweep folder that does not exist is a usage error (exit 2).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from .exit_codes import EXIT_OK, EXIT_RUN_DIED, EXIT_USAGE
from .provenance import LAUNCH_VARIABLE, read_runs


def launch_status(runs: Sequence[dict[str, Any]], launch: str) -> tuple[int, list[str]]:
    """The exit status the launch of token `launch` deserves, from the merged runs of `read_runs`, and one
    line per run that explains a non-zero status."""
    status, lines = EXIT_OK, []
    for run in runs:
        if run.get("launch") != launch:
            continue
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(run.get("time", 0)))
        if run.get("ended") is None:
            status = EXIT_RUN_DIED
            lines.append(f"run {run.get('run')} (started {started} on {run.get('host')}) recorded no end: "
                         "it died as a whole (its rank 0, a lost host?), although the launcher said it succeeded")
        elif run.get("exit_status") and status == EXIT_OK:
            status = int(run["exit_status"])
            lines.append(f"run {run.get('run')} (started {started}) recorded exit status {status}")
    return status, lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster_work.launch_check",
                                     description="Exit non-zero when a run of this launch died without recording "
                                                 "its end (see the module's docstring).")
    parser.add_argument("sweep_path", help="the sweep's folder (the config's `path:`), which holds runs.jsonl")
    parser.add_argument("--launch", default=os.environ.get(LAUNCH_VARIABLE),
                        help=f"the launch's token (default: ${LAUNCH_VARIABLE}, as the launch had it)")
    args = parser.parse_args(argv)
    if not args.launch:
        print(f"error: no launch token: set {LAUNCH_VARIABLE} for the launch and this check, or give --launch",
              file=sys.stderr)
        return EXIT_USAGE
    if not os.path.isdir(args.sweep_path):  # a slip in a script, not a launch that recorded nothing
        print(f"error: {args.sweep_path}: no such folder (give the sweep's folder, the config's `path:`)",
              file=sys.stderr)
        return EXIT_USAGE
    status, lines = launch_status(read_runs(args.sweep_path, last=None), args.launch)
    for line in lines:
        print(f"cluster_work: {line}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())

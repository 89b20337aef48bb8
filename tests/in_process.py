"""The command line of `tests/experiments.py`, run in the test's own process (the `cli` fixture in conftest).

`python tests/experiments.py NAME ARGS` in a subprocess costs an interpreter start and cluster_work's
imports per call; here the same `cli.main` runs in this process, sequentially (a `-n`/`-c` run starts
processes and is refused by the fast tier's guard). What a run changes in the process is put back after
it: the working folder and sys.argv (monkeypatch), the signal handlers and the stop flag (cli.main's
`stop_signals_handled`), the console logging handler and the loggers' levels, and an attempts journal
a failed test left open. What it prints, and the exit status, come back as a CompletedProcess, as from
`run_cli`: what `sys.argv[0]` and `sys.orig_argv` say is what a subprocess sees, so the printed command
to resume a run is the same line too.
"""
from __future__ import annotations

import contextlib
import io
import logging
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import experiments

from cluster_work.attempts import journal
from cluster_work.cli import main
from cluster_work.logs import QUIET_LIBRARIES

SCRIPT = str(Path(experiments.__file__).resolve())


def run_main(experiment: str, args: list[str], cwd: Path, monkeypatch,
             module: ModuleType = experiments) -> subprocess.CompletedProcess:
    """Run `experiments.py experiment *args` (or the script `module`'s) in `cwd`, in this process; the exit
    status, stdout and stderr."""
    script = str(Path(module.__file__ or SCRIPT).resolve())
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, "argv", [script, *args])  # as the script leaves it, having taken the name
    monkeypatch.setattr(sys, "orig_argv", [sys.executable, script, experiment, *args])
    loggers = [logging.getLogger(), logging.getLogger("cluster_work"), *map(logging.getLogger, QUIET_LIBRARIES)]
    levels = [logger.level for logger in loggers]
    handlers = list(logging.getLogger().handlers)
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                status = main(getattr(module, experiment), args)
            except SystemExit as exit:  # argparse: --help, --version and its usage errors
                status = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
                if isinstance(exit.code, str):
                    print(exit.code, file=sys.stderr)
    finally:
        logging.getLogger().handlers[:] = handlers
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)
        for run_id in {run_id for _, run_id in journal._files}:  # left open only by a run that raised
            journal.release(run_id)
    return subprocess.CompletedProcess([sys.executable, script, experiment, *args], status, stdout.getvalue(),
                                       stderr.getvalue())

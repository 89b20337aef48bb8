"""The command lines that run this sweep again: the resume hint at the end of a run (and after a second
Ctrl-C), the launch line of `--list -v`, the arguments a Slurm batch script repeats.

One builder, from the parsed options rather than from the words typed, so that a repeat never carries what
deletes or restarts (`-d`, `-o`, `-r`, `-i`), in any spelling: `--delete`, an abbreviation (`--del`), a
bundle (`-dv`), an attached value (`-r1`, `--repetition=1`). Following the hint of an interrupted
`-d` run must resume it, not delete it again.

A hint is a command that runs as printed: the interpreter as this process was started (`python slow.py`,
`python -m cluster_work`, from `sys.orig_argv`), and for an MPI run `mpiexec -n N python -m mpi4py ...`.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import sys
from collections.abc import Sequence

DEFAULT_REPORT_EVERY = 60.0


def run_arguments(args: argparse.Namespace, jobs: bool = True) -> list[str]:
    """The options a repeat of this run takes, whatever runs it (the resume hint, a batch script): the config,
    what is selected and how it is logged; never -d, -o, -r, -i, nor what only looks (--list, -p, --plot)
    or says how the processes are laid out (-n, -c: each caller's own). -v with --list asks for the launch
    line: it is no part of it. Without `jobs`, no -j (a Slurm array task gets its own)."""
    arguments = [args.config, *getattr(args, "overrides", [])]
    for flag, values in (("-e", args.experiments), ("-j", args.job if jobs else [])):
        if values:
            arguments += [flag, *map(str, values)]
    for flag, value in (("-g", args.mpi_groups), ("--group_size", args.group_size), ("-l", args.log_level),
                        ("-L", args.cw_log_level), ("--max-failures", args.max_failures),
                        ("--stall-timeout", getattr(args, "stall_timeout", None))):
        if value is not None:
            arguments += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    for flag, given in (("-v", args.verbose and not args.list), ("-I", args.ignore_config),
                        ("--no_gui", args.no_gui), ("--no-sync", not args.sync),
                        ("--restart_full_repetitions", args.restart_full_repetitions)):
        if given:
            arguments.append(flag)
    return arguments


def program(argv: Sequence[str] | None = None, orig_argv: Sequence[str] | None = None) -> list[str]:
    """How this process was started, up to the arguments it parses, as typed: `[python, slow.py]`,
    `[python, -m, cluster_work]`, `[python, -m, mpi4py, slow.py]` (interpreter options kept). From
    `sys.orig_argv` less the tail that `sys.argv[1:]` repeats; where they do not match (a script that
    rewrote sys.argv), this interpreter and the script."""
    argv = list(sys.argv if argv is None else argv)
    orig = list(getattr(sys, "orig_argv", []) if orig_argv is None else orig_argv)
    if os.path.abspath(argv[0]) == os.path.join(os.path.dirname(os.path.abspath(__file__)), "api.py"):
        return [as_typed(sys.executable), "-m", "cluster_work.api", *argv[1:2]]  # a Sweep of module:Class
    own = len(argv) - 1
    if len(orig) > own and orig[len(orig) - own:] == argv[1:]:
        return orig[:len(orig) - own]
    return [as_typed(sys.executable), argv[0]]


def program_name(prefix: Sequence[str] | None = None) -> str | None:
    """The program in --help's usage line: `python -m cluster_work` where this runs as a module (argparse
    would say `__main__.py`); None (argparse's default, the script's name) otherwise."""
    words = program() if prefix is None else prefix
    if len(words) >= 3 and words[-2] == "-m":
        return f"{os.path.basename(words[0])} -m {words[-1]}"
    return None


def as_typed(path: str) -> str:
    """`path`'s bare name where PATH finds this very file under it (`python`, `mpiexec`), else the path."""
    name = os.path.basename(path)
    found = shutil.which(name)
    return name if found and os.path.abspath(found) == os.path.abspath(path) else path


def mpiexec() -> str:
    """The mpiexec beside this Python (the PyPI Open MPI of a venv), else whatever the job's PATH has."""
    beside = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return beside if os.access(beside, os.X_OK) else "mpiexec"


def under_mpi4py(words: Sequence[str], script: str) -> list[str]:
    """`words` run through `-m mpi4py` (an exception on one rank then aborts them all): as they are if they
    do already, else with `-m mpi4py` before the script (or before `-m module`)."""
    words = list(words)
    for at, word in enumerate(words):
        if word == "-m":
            return words if words[at + 1:at + 2] == ["mpi4py"] else [*words[:at], "-m", "mpi4py", *words[at:]]
    if script in words:
        at = len(words) - 1 - words[::-1].index(script)
        return [*words[:at], "-m", "mpi4py", *words[at:]]
    return words


def resume_command(args: argparse.Namespace, world_size: int | None, prefix: Sequence[str] | None = None,
                   script: str | None = None) -> str:
    """The shell line that runs this sweep again as it was run (-n, -c under `mpiexec -n world_size`), to
    resume or retry it: nothing deleted, nothing restarted. `prefix` defaults to `program()`."""
    words = [*(program() if prefix is None else prefix), *run_arguments(args)]
    if args.workers > 1:
        words += ["-n", str(args.workers)]
    if args.report_every != DEFAULT_REPORT_EVERY:
        words += ["--report_every", f"{args.report_every:g}"]
    if args.cluster:
        words = [as_typed(mpiexec()), "-n", str(world_size or 1),
                 *under_mpi4py(words, sys.argv[0] if script is None else script), "-c"]
    return shlex.join(words)

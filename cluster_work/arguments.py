"""The options of an experiment script's command line (`python my_exp.py config.yml [options]`): the
parser, and the split of the words into options and config overrides (`KEY.PATH=VALUE`). Apart from the
run itself (`cli`), so that what reads a command line (the resume hint, the API's sweeps) needs no engine."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from .launch import DEFAULT_REPORT_EVERY, program_name
from .overrides import split_arguments


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


class _PlotterNames:
    """The registered plotters, as --help shows them: looked up only when help is printed (plotwork brings
    pandas, which starting a run does not need)."""

    def __str__(self) -> str:
        try:
            from plotwork.plotters import PLOTTERS
        except ImportError:
            return "(pip install 'cluster_work[plot]' to see them)"
        return ", ".join(sorted(PLOTTERS))


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    from .version import __version__

    parser = argparse.ArgumentParser(prog=prog or program_name(),
                                     description="Run a parameter sweep of a ClusterWork experiment.",
                                     epilog="exit status: 0 all done; 1 a repetition failed; 2 a usage or config "
                                            "error (nothing written); 3 the results could not be written; 5 an MPI "
                                            "worker stalled past --stall-timeout; 130 interrupted (the same "
                                            "command resumes)")
    parser.add_argument("config", help="the experiments' YAML file")
    parser.add_argument("--version", action="version", version=f"cluster_work {__version__}")
    parser.add_argument("overrides", nargs="*", default=[], metavar="KEY.PATH=VALUE",
                        help="change the config, as Hydra: params.lr=0.1 grid.lr=[0.1,0.01] +params.new=1 ~grid "
                             "(values are YAML; with -e, only in those experiments)")
    run = parser.add_argument_group("how to run")
    run.add_argument("-c", "--cluster", "-m", "--mpi", dest="cluster", action="store_true",
                     help="run over MPI (start under mpiexec); rank 0 schedules, the others work")
    run.add_argument("-n", "--workers", type=int, default=1, metavar="N",
                     help="run repetitions in N local worker processes, no MPI (default: 1, in this process)")
    run.add_argument("-g", "--mpi_groups", type=int, default=None, metavar="G",
                     help="with -c: split the workers into G groups that each run a repetition together "
                          "(self._COMM is the group's communicator); -g 1: all ranks, rank 0 included")
    run.add_argument("--group_size", type=int, default=None, metavar="S",
                     help="with -c: groups of S ranks instead of a number of groups (not with -g)")
    run.add_argument("--max-failures", type=_positive, default=None, metavar="N",
                     help="stop the sweep cleanly once N repetitions failed (default: max_failures: in the config, "
                          "else never); the repetitions in flight end after their iteration, all is resumable")
    run.add_argument("--stall-timeout", dest="stall_timeout", type=float, default=None, metavar="S",
                     help="with -c: end the run (its launcher too; exit status 5 in the run's record) once an MPI "
                          "worker has said nothing for S seconds and for 10 of its iterations, so that a "
                          "scheduler can requeue it (default: the config's stall_timeout; without: a worker "
                          "silent for 60 s is only reported)")
    run.add_argument("--no_gui", action="store_true", help="tell the experiment not to open windows")
    run.add_argument("--no-sync", dest="sync", action="store_false",
                     help="no group commits: leave syncing results to the operating system (faster on slow "
                          "network file systems; a power loss may cost more of the last rows)")
    pick = parser.add_argument_group("what to run")
    pick.add_argument("-e", "--experiments", nargs="+", default=[], metavar="NAME",
                      help="only these experiments (base or expanded names)")
    pick.add_argument("-j", "--job", nargs="+", type=int, default=[], metavar="IDX",
                      help="only job IDX, or jobs START to STOP-1 with -j START STOP [STEP] (as --list numbers "
                           "the (experiment, repetition) jobs)")
    pick.add_argument("-r", "--repetition", type=int, metavar="REP",
                      help="restart only this repetition (from scratch, or from -i)")
    pick.add_argument("-i", "--iteration", type=int, metavar="IT",
                      help="with -r: restart from this iteration, keeping the rows before it")
    old = parser.add_argument_group("earlier results")
    old.add_argument("-d", "--delete", action="store_true", help="delete the selected experiments' results first")
    old.add_argument("-o", "--overwrite", action="store_true",
                     help="delete and rerun experiments whose parameters changed")
    old.add_argument("-I", "--ignore_config", action="store_true",
                     help="continue experiments whose parameters changed")
    old.add_argument("--restart_full_repetitions", action="store_true",
                     help="start unfinished repetitions over instead of restoring their saved state")
    old.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                     help="also run quarantined repetitions again: those that two runs in a row died while "
                          "running (a native crash, a lost MPI rank), which reruns leave out (-P names them); "
                          "plain failed repetitions are retried by every rerun anyway")
    show = parser.add_argument_group("look, do not run")
    show.add_argument("--list", action="store_true", help="show the expanded experiments and job indices")
    show.add_argument("-p", "--progress", action="store_true", help="show the progress of each experiment")
    show.add_argument("-P", "--full_progress", action="store_true", help="show the progress of each repetition")
    show.add_argument("--json", action="store_true",
                      help="with -p/-P: print the figures as JSON; with --list: one JSON line per job a run executes")
    show.add_argument("--plot", nargs="*", metavar="COLUMN",
                      help="write PNG plots of these result columns to <path>/plots/ (needs matplotlib); "
                           "without columns, call the class's plot_results hook (as the original)")
    show.add_argument("--filter", default="", metavar="TEXT",
                      help="with --plot: only the experiments whose name contains TEXT")
    plotter = show.add_argument("--plotter", default="mean_2std",
                                help="with --plot: one of %(plotter_names)s (default: %(default)s)")
    vars(plotter)["plotter_names"] = _PlotterNames()  # argparse fills %(name)s from the action's attributes
    show.add_argument("--plot-option", dest="plot_options", nargs="+", action="extend", default=[],
                      metavar="NAME=VALUE", help="with --plot: the plotter's options, e.g. n=5 (best_n), "
                                                 "param=learning_rate (param_sweep), skip=10 (ensemble_*)")
    show.add_argument("--mode", choices=["min", "max"], default=None,
                      help="with --plot: which end of COLUMN is best, for a plotter that ranks (best_n); "
                           "default: the mode of a steer block that steers by COLUMN")
    slurm = parser.add_argument_group("Slurm (defaults from a 'slurm:' block in the config)")
    slurm.add_argument("--slurm", action="store_true",
                       help="write a batch script that runs the sweep over MPI in one allocation")
    slurm.add_argument("--array", action="store_true",
                       help="with --slurm: a job array instead, one task per unfinished job, without MPI")
    slurm.add_argument("--submit", action="store_true", help="with --slurm: submit the script with sbatch")
    slurm.add_argument("--dry-run", action="store_true", help="with --slurm: print the script, write nothing")
    slurm.add_argument("--requeue", action="store_true",
                       help="stop cleanly before the time limit or on preemption, and requeue the job")
    for option, kind in (("--nodes", int), ("--ntasks-per-node", int), ("--ntasks", int), ("--cpus-per-task", int),
                         ("--time", str), ("--partition", str), ("--account", str), ("--mem-per-cpu", str),
                         ("--mem", str), ("--gpus", str), ("--gpus-per-node", str), ("--gpus-per-task", str),
                         ("--gres", str), ("--constraint", str), ("--qos", str), ("--job-name", str),
                         ("--template", str)):
        slurm.add_argument(option, type=kind, default=None)
    slurm.add_argument("--launcher", choices=["mpiexec", "srun"], default=None,
                       help="how the MPI script starts its ranks: the bundled mpiexec (default) or srun --mpi=pmix")
    slurm.add_argument("--sbatch", nargs="+", default=[], metavar="OPTION",
                       help="more #SBATCH options, e.g. --sbatch=--exclusive")
    output = parser.add_argument_group("output")
    output.add_argument("-l", "--log_level", default=None, type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"],
                        help="the experiment's log level (default: the class's _LOG_LEVEL)")
    output.add_argument("-L", "--cw_log_level", default=None, type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"],
                        help="cluster_work's own log level (default: the class's _CW_LOG_LEVEL)")
    output.add_argument("-v", "--verbose", action="store_true", help="cluster_work's own messages at DEBUG")
    output.add_argument("--report_every", type=float, default=DEFAULT_REPORT_EVERY, metavar="SECONDS",
                        help="when the output is no terminal: a progress line this often (default 60, 0: never)")
    return parser


def parse_arguments(arguments: Sequence[str]) -> argparse.Namespace:
    """The options, with the overrides (`KEY.PATH=VALUE` anywhere after the config) in `overrides`."""
    parser = build_parser()
    rest, overrides = split_arguments(arguments, value_options(parser), ASSIGNMENT_OPTIONS)
    args = parser.parse_args(rest)
    args.overrides = [*overrides, *args.overrides]  # what argparse left there is no override: parse() says so
    alone = _companion_missing(args)
    if alone:
        parser.error(alone)
    return args


def _companion_missing(args: argparse.Namespace) -> str | None:
    """An option that only qualifies another one, given without it: without its companion the command would
    silently run the sweep (`--dry-run` alone ran it), so it is a usage error."""
    companions = (("--json", args.json, "-p, -P or --list", args.progress or args.full_progress or args.list),
                  ("--array", args.array, "--slurm", args.slurm), ("--submit", args.submit, "--slurm", args.slurm),
                  ("--dry-run", args.dry_run, "--slurm", args.slurm),
                  ("--filter", bool(args.filter), "--plot", args.plot is not None),
                  ("--plotter", args.plotter != "mean_2std", "--plot", args.plot is not None),
                  ("--plot-option", bool(args.plot_options), "--plot", args.plot is not None),
                  ("--mode", args.mode is not None, "--plot", args.plot is not None))
    for flag, given, needs, present in companions:
        if given and not present:
            return f"{flag} goes with {needs}; without it this command would run the sweep"
    return None


def value_options(parser: argparse.ArgumentParser) -> set[str]:
    """The options that take exactly one value (`--filter TEXT`): the word after them is never an override."""
    return {flag for action in parser._actions if action.nargs is None for flag in action.option_strings}


ASSIGNMENT_OPTIONS = ("--plot-option",)  # their values are NAME=VALUE words of their own, never overrides

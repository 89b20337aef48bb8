"""The command line of an experiment script: `python my_exp.py config.yml [options]`."""
from __future__ import annotations

import argparse
import inspect
import logging
import os
import shlex
import sys
from collections.abc import Sequence

from . import slurm
from .attempts import journal as attempts_journal
from .backends import Executor, make_executor
from .config import load_config
from .display import LiveBarDisplay, make_display
from .durability import committer
from .errors import ClusterWorkError, StoreError
from .expansion import ExpandedExperiment, expand_all, sweep_paths
from .experiment import ClusterWork
from .liveness import Stalled
from .logs import configure_console
from .original_api import configs_and_results, implements_plot_results
from .paths import SweepPaths
from .planning import Plan, apply_plan, make_plan, warn_changed, warn_quarantined
from .provenance import describe_runs, read_runs, run_ended, run_stalled, run_started, stall_lines
from .reporting import print_plan, print_progress, print_summary, progress_json
from .results import load_results
from .runner import ExperimentTask
from .selection import Policy, Selection, select_experiments
from .stopping import handle_stop_signals, stop_signals_handled
from .store import atomic_write
from .sweep import EXIT_INTERRUPTED, EXIT_STALLED, EXIT_STORE, EXIT_USAGE, campaign_drivers, describe, run_segments
from .vocabulary import Outcome, OutcomeKind, RunSettings

log = logging.getLogger("cluster_work")


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run a parameter sweep of a ClusterWork experiment.")
    parser.add_argument("config", help="the experiments' YAML file")
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
    show.add_argument("--plotter", default="mean_2std",
                      help="with --plot: mean_2std (default), best_n or param_sweep")
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
                         ("--job-name", str), ("--template", str)):
        slurm.add_argument(option, type=kind, default=None)
    slurm.add_argument("--sbatch", nargs="+", default=[], metavar="OPTION",
                       help="more #SBATCH options, e.g. --sbatch=--qos=long")
    output = parser.add_argument_group("output")
    output.add_argument("-l", "--log_level", default=None, type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"],
                        help="the experiment's log level (default: the class's _LOG_LEVEL)")
    output.add_argument("-L", "--cw_log_level", default=None, type=str.upper,
                        choices=["DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL"],
                        help="cluster_work's own log level (default: the class's _CW_LOG_LEVEL)")
    output.add_argument("-v", "--verbose", action="store_true", help="cluster_work's own messages at DEBUG")
    output.add_argument("--report_every", type=float, default=60.0, metavar="SECONDS",
                        help="when the output is no terminal: a progress line this often (default 60, 0: never)")
    return parser


def main(experiment_class: type[ClusterWork], argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) for `experiment_class`; return the exit status."""
    with stop_signals_handled():  # first of all: a stop signal at any moment is one line and exit status 130
        return _main(experiment_class, argv)


def _main(experiment_class: type[ClusterWork], argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(arguments)
    log_level = args.log_level or experiment_class._LOG_LEVEL
    configure_console(log_level, "DEBUG" if args.verbose else (args.cw_log_level or experiment_class._CW_LOG_LEVEL))
    settings = RunSettings(log_level=log_level, no_gui=args.no_gui or args.cluster, sync=args.sync,
                           restart_full_repetitions=args.restart_full_repetitions,
                           config_file=os.path.abspath(args.config))
    try:
        if args.workers < 1:
            raise ClusterWorkError(f"-n/--workers must be at least 1, got {args.workers}")
        executor = make_executor(ExperimentTask(experiment_class, settings), args.workers, args.cluster,
                                 experiment_class._MP_CONTEXT, args.mpi_groups, args.group_size)
        # entered first, so that under MPI every early exit below still releases the worker ranks
        with executor as running:
            if running is None:  # an MPI worker rank: it served until rank 0 released it
                return getattr(executor, "worker_status", 0) or 0
            status = _run(experiment_class, args, arguments, running, settings)
            running.ending(status)
            return status
    except ClusterWorkError as exc:
        print(f"error: {exc}", file=sys.stderr)  # under MPI rank 0 alone: the other ranks return quietly
        return EXIT_USAGE


def _run(experiment_class: type[ClusterWork], args: argparse.Namespace, arguments: list[str],
         executor: Executor, settings: RunSettings) -> int:
    """Load and check everything; answer the look-only options (-p, --list, --plot, --slurm) or run."""
    try:
        if inspect.isabstract(experiment_class):
            missing = ", ".join(sorted(experiment_class.__abstractmethods__))
            raise ClusterWorkError(f"{experiment_class.__name__} does not implement {missing}")
        experiments = load_config(args.config)
        expanded = expand_all(experiments, experiment_class._default_params, args.config)
        experiment_class.check_config(expanded, args.config)
        if any("ensemble" in document for document in experiments):  # numpy only where a config has an ensemble
            from .ensemble.campaign import check_experiment_class

            check_experiment_class(experiment_class, experiments, args.config)
        if args.progress or args.full_progress:
            selected = select_experiments(expanded, args.experiments, args.config)
            runs = [run for path in sweep_paths(selected) for run in read_runs(path)]
            if args.json:
                print(progress_json(selected, args.full_progress, runs))
            else:
                print_progress(selected, args.full_progress, runs=describe_runs(runs))
                print("\n".join(stall_lines(runs)), end="\n" if stall_lines(runs) else "")
            return 0
        if args.plot is not None:
            return _plot(experiment_class, expanded, args)
        policy = Policy(args.delete, args.overwrite, args.ignore_config, args.retry_failed)
        plan = make_plan(expanded, Selection(args.experiments, args.job, args.repetition, args.iteration),
                         policy, args.config)
        if args.list:
            print_plan(plan, as_json=args.json)
            if args.verbose and not args.json:
                print("\n".join(["launch:", *_launch_lines(args, plan)]))
            return 0
        if args.slurm:
            return _slurm(args, experiments, plan)
        executor.watch_stalls(_stall_limit(args, experiments))
        warn_changed(plan, policy)
        warn_quarantined(plan, policy)
        # from the first write on a stop is graceful: what was written stays consistent, the rerun resumes
        handle_stop_signals(hard_second=False, on_first=lambda: _on_stop(executor))
        apply_plan(plan)
    except ClusterWorkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE if isinstance(exc, StoreError) else EXIT_USAGE
    return _execute(experiment_class, plan, args, arguments, executor, settings)


def _execute(experiment_class: type[ClusterWork], plan: Plan, args: argparse.Namespace, arguments: list[str],
             executor: Executor, settings: RunSettings) -> int:
    """Run the planned jobs with a live display and a provenance record; print the summary."""
    jobs = plan.jobs
    campaigns = campaign_drivers(plan, settings, executor.workers)
    log.info("%d jobs to run (%d experiments)%s on %s", len(jobs), plan.totals.experiments,
             f" and {len(campaigns)} campaign(s)" if campaigns else "", executor.describe())
    handle_stop_signals(hard_second=True, on_first=lambda: _on_stop(executor))
    plain_total = plan.iterations_left()

    def total() -> int:  # a campaign's iterations are known as it decides: done so far, and planned
        return max(plain_total, executor.iterations_done() + sum(c.iterations_left() for c in campaigns))

    display = make_display(total, executor.workers, executor.iterations_done, executor.busy, args.report_every,
                           executor.stalled)
    # with a live bar, a line per finished job would only scroll it away: failures still show
    finished_level = logging.DEBUG if isinstance(display, LiveBarDisplay) else logging.INFO

    def on_outcome(outcome: Outcome) -> None:
        display.job_ended(outcome)
        failed = outcome.kind in (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER, OutcomeKind.STORE_FAILURE)
        log.log(logging.ERROR if failed else finished_level, describe(outcome))

    command = [*_program(), *arguments]
    paths = plan.totals.sweep_paths
    run_id = run_started(paths, command, executor.describe(), executor.hosts(), executor.world_size())
    attempts_journal.hold(paths, run_id)  # the run is alive while this process is (see attempts)
    executor.watch_stalls(None, lambda silences: run_stalled(paths, run_id, silences))
    try:
        with display:
            summary = run_segments(jobs, executor, on_outcome, campaigns, run_id)
    except KeyboardInterrupt:  # the second Ctrl-C
        run_ended(paths, run_id, EXIT_INTERRUPTED, {})
        attempts_journal.release(run_id)
        executor.terminate()
        print(f"stopped at once; saved rows are kept. To resume: {' '.join(command)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Stalled as exc:  # recorded and durable first: the launcher dies with the run
        print(f"error: {exc}", file=sys.stderr)
        run_ended(paths, run_id, EXIT_STALLED, {})
        attempts_journal.release(run_id)
        committer.commit()
        executor.abandon(EXIT_STALLED)
    summary.quarantined = [] if args.retry_failed else plan.totals.quarantined
    committer.commit()  # this process's writes durable before the run is recorded as ended
    run_ended(paths, run_id, summary.exit_status(), {kind.value: count for kind, count in summary.counts.items()})
    attempts_journal.release(run_id)
    print_summary(summary, plan, paths, command)
    return summary.exit_status()


def _slurm(args: argparse.Namespace, experiments: list, plan: Plan) -> int:
    """--slurm: write (and print, or submit) a batch script that runs this sweep."""
    for flag, given in (("-d/--delete", args.delete), ("-r/--repetition", args.repetition is not None),
                        ("-i/--iteration", args.iteration is not None), ("-j/--job", args.job and args.array)):
        if given:
            raise ClusterWorkError(f"--slurm does not take {flag}: a requeued job would repeat it; "
                                   "run that step without --slurm first")
    if args.array and plan.campaigns:
        names = ", ".join(sorted({campaign.base for campaign in plan.campaigns}))
        raise ClusterWorkError(f"--slurm --array runs every job as a task of its own, but {names} is a campaign "
                               "(steer or ensemble), which one rank 0 decides: use --slurm without --array")
    overrides = {"nodes": args.nodes, "ntasks_per_node": args.ntasks_per_node, "ntasks": args.ntasks,
                 "cpus_per_task": args.cpus_per_task, "time": args.time, "partition": args.partition,
                 "account": args.account, "mem_per_cpu": args.mem_per_cpu, "job_name": args.job_name,
                 "template": args.template, "requeue": args.requeue, "extra": args.sbatch}
    settings = slurm.settings_from(experiments[0].get("slurm"), overrides, args.config)
    sweep_path = os.path.abspath(plan.totals.sweep_paths[0])
    pending = sorted(job.index for job in plan.jobs)
    if args.array and not pending:
        print("nothing left to run: every selected job is finished")
        return 0
    kind = "array" if args.array else "mpi"
    text = slurm.build_script(kind, settings, slurm.python_command(), os.path.abspath(sys.argv[0]),
                              _run_arguments(args), sweep_path, os.getcwd(), len(pending))
    if args.array:
        text = text.replace(f"--array=0-{len(pending) - 1}", f"--array={slurm.compress_indices(pending)}")
    if args.dry_run:
        print(text, end="")
        return 0
    path = SweepPaths(sweep_path).batch_script(kind)
    plan.freeze_designs()  # every task of the job must see the same custom points
    os.makedirs(sweep_path, exist_ok=True)
    atomic_write(path, text.encode())
    print(f"wrote {path}")
    if args.submit:
        print(f"submitted job {slurm.submit(path)}")
    return 0


def _program() -> list[str]:
    """How this run was started, for the line that resumes it: the script, or `python -m cluster_work`."""
    if os.path.abspath(sys.argv[0]) == os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py"):
        return ["python", "-m", "cluster_work"]
    return [sys.argv[0]]


def _launch_lines(args: argparse.Namespace, plan: Plan) -> list[str]:
    """--list -v: the commands that run this sweep as asked (for --slurm, the sbatch line; --dry-run prints
    the script it submits)."""
    run = " ".join(shlex.quote(a) for a in [os.path.abspath(sys.argv[0]), *_run_arguments(args)])
    if args.slurm:
        script = SweepPaths(os.path.abspath(plan.totals.sweep_paths[0])).batch_script("array" if args.array else "mpi")
        return [f"sbatch {shlex.quote(script)}"]
    if args.cluster:
        from mpi4py import MPI

        return [f"{slurm.mpiexec_command()} -n {MPI.COMM_WORLD.Get_size()} {slurm.python_command()} -m mpi4py "
                f"{run} -c"]
    return [f"{slurm.python_command()} {run}" + (f" -n {args.workers}" if args.workers > 1 else "")]


def _run_arguments(args: argparse.Namespace) -> list[str]:
    """The options of this command line that the batch job repeats (nothing that deletes or restarts)."""
    arguments = [args.config]
    for flag, values in (("-e", args.experiments), ("-j", [] if args.array else args.job)):
        if values:
            arguments += [flag, *map(str, values)]
    for flag, value in (("-g", args.mpi_groups), ("--group_size", args.group_size)):
        if value is not None:
            arguments += [flag, str(value)]
    if args.log_level:
        arguments += ["-l", args.log_level]
    if args.cw_log_level:
        arguments += ["-L", args.cw_log_level]
    for flag, given in (("-v", args.verbose), ("-I", args.ignore_config), ("-o", args.overwrite),
                        ("--no_gui", args.no_gui), ("--no-sync", not args.sync),
                        ("--restart_full_repetitions", args.restart_full_repetitions)):
        if given:
            arguments.append(flag)
    return arguments


def _plot(experiment_class: type[ClusterWork], expanded: Sequence[ExpandedExperiment], args: argparse.Namespace,
          ) -> int:
    """--plot COLUMN...: PNG files per base experiment and column; a bare --plot: the class's hook."""
    selected = [e for e in select_experiments(expanded, args.experiments, args.config) if args.filter in e.name]
    if not args.plot:
        if not implements_plot_results(experiment_class):
            raise ClusterWorkError(f"a bare --plot calls {experiment_class.__name__}.plot_results(configs_results), "
                                   "which it does not implement; name result columns instead: --plot COLUMN...")
        experiment_class.plot_results(configs_and_results([e.config for e in selected]))
        return 0
    try:
        from plotwork.api import plot_sweep
        from plotwork.plotters import get_plotter
    except ImportError as exc:
        raise ClusterWorkError(f"--plot needs matplotlib: pip install 'cluster_work[plot]' ({exc})") from None
    try:
        get_plotter(args.plotter)
    except KeyError as exc:
        raise ClusterWorkError(f"--plotter: {exc.args[0]}") from None
    for sweep_path in sweep_paths(selected):
        bases = {e.name: e.base_name for e in selected if e.sweep_path == sweep_path}
        frame = load_results(sweep_path, experiments=list(bases))
        missing = [c for c in args.plot if c not in frame]
        if missing:
            raise ClusterWorkError(f"--plot: no result column {', '.join(missing)} in {sweep_path}; "
                                   f"columns: {', '.join(c for c in frame.columns if not c.startswith('params.'))}")
        for path in plot_sweep(frame, args.plot, args.plotter, SweepPaths(sweep_path).plots_folder, bases):
            print(path)
    return 0


def _on_stop(executor: Executor) -> None:
    log.warning("stopping after the iterations in flight (press Ctrl-C again to stop at once)")
    hint = executor.stop_hint()
    if hint:
        log.warning("%s", hint)
    executor.forward_stop()


def _stall_limit(args: argparse.Namespace, experiments: list) -> float | None:
    """--stall-timeout, else the smallest `stall_timeout` of the config's experiments (None: no limit)."""
    if args.stall_timeout is not None:
        if not args.stall_timeout > 0:
            raise ClusterWorkError(f"--stall-timeout must be a positive number of seconds, got {args.stall_timeout}")
        return float(args.stall_timeout)
    limits = [e["stall_timeout"] for e in experiments if e.get("stall_timeout") is not None]
    return float(min(limits)) if limits else None

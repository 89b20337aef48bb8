"""The command line of an experiment script: `python my_exp.py config.yml [options]`."""
from __future__ import annotations

import argparse
import contextlib
import inspect
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from . import collector, compact_frame, compact_index, design, folder_index, slurm
from .arguments import ASSIGNMENT_OPTIONS, build_parser, parse_arguments, value_options
from .attempts import journal as attempts_journal
from .attempts import remove_dead_empty_fault_logs
from .backends import Executor, make_executor
from .compact_store import suggest_compact
from .config import Documents, Warn, load_config
from .display import LiveBarDisplay, counted, make_display
from .durability import committer
from .errors import ClusterWorkError, StoreError
from .exit_codes import EXIT_INTERRUPTED, EXIT_STALLED, EXIT_STORE, EXIT_USAGE
from .expansion import ExpandedExperiment, expand_all, sweep_paths
from .export.beside import exporters_beside
from .failures import failure_limit
from .files import atomic_write
from .kinds import kinds_in
from .launch import program, resume_command, run_arguments
from .logs import configure_console
from .original_api import configs_and_results, implements_plot_results
from .overrides import Overrides, split_arguments
from .overrides import parse as parse_overrides
from .paths import SweepPaths
from .planning import Plan, apply_plan, make_plan, refuse_changed_only, warn_changed, warn_quarantined
from .provenance import describe_runs, read_runs, run_ended, run_stalled, run_started, stall_lines
from .reporting import print_plan, print_progress, print_summary, write_progress_json
from .results import load_configured_results
from .runner import ExperimentTask
from .selection import Policy, Selection, select_experiments
from .stopping import handle_stop_signals, stop_signals_handled
from .sweep import campaign_drivers, describe, run_segments
from .vocabulary import Outcome, OutcomeKind, RunSettings

if TYPE_CHECKING:
    from .experiment import ClusterWork

log = logging.getLogger("cluster_work")




def _overrides_hint(plan: Plan, args: argparse.Namespace) -> str:
    """For a rerun refused because parameters changed: the overrides of the last run, where they differ
    from this one's (its results were saved with them; repeating them resumes it)."""
    commands = [run["command"] for path in plan.totals.sweep_paths for run in read_runs(path) if run.get("command")]
    if not commands:
        return ""
    _, last = split_arguments(commands[-1][1:], value_options(build_parser()), ASSIGNMENT_OPTIONS)
    if last == args.overrides:
        return ""
    if not last:
        return f"; the last run changed nothing on the command line (this one: {' '.join(args.overrides)})"
    return f"; the last run changed the config on the command line: {' '.join(last)}"


def load_sweep(experiment_class: type[ClusterWork], args: argparse.Namespace, warn: Warn = log.warning,
               ) -> tuple[Documents, Sequence[ExpandedExperiment]]:
    """The config's experiment documents (the overrides applied; they carry its source) and their expansion
    (a custom strategy's points as frozen on disk, see `design`), checked."""
    adjust = Overrides(parse_overrides(args.overrides, args.config), args.config, args.experiments,
                       experiment_class._default_params).apply
    experiments = load_config(args.config, warn, adjust=adjust)
    expanded = expand_all(experiments, experiment_class._default_params, warn=warn, custom_points=design.points)
    experiment_class.check_config(expanded, args.config)
    for campaign in kinds_in(experiments):  # each kind's module only where a config has one
        campaign.check_experiment_class(experiment_class, experiments, experiments.source)
    return experiments, expanded


def main(experiment_class: type[ClusterWork], argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) for `experiment_class`; return the exit status."""
    with stop_signals_handled():  # first of all: a stop signal at any moment is one line and exit status 130
        collector.allow_freezing()  # this process ends with its command: a 10^6-point index may leave the GC
        return _main(experiment_class, argv)


def _main(experiment_class: type[ClusterWork], argv: Sequence[str] | None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse_arguments(arguments)
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
        experiments, expanded = load_sweep(experiment_class, args)
        max_failures = failure_limit(args.max_failures, experiments, experiments.source)
        if args.progress or args.full_progress:
            selected = select_experiments(expanded, args.experiments, args.config)
            runs = [run for path in sweep_paths(selected) for run in read_runs(path)]
            if args.json:
                write_progress_json(selected, args.full_progress, sys.stdout, runs)
                print()
            else:
                print_progress(selected, args.full_progress, runs=describe_runs(runs))
                for line in stall_lines(runs):  # what the last run's rank 0 recorded, if it is still on
                    print(line)
            return 0
        if args.plot is not None:
            return _plot(experiment_class, expanded, args)
        policy = Policy(args.delete, args.overwrite, args.ignore_config, args.retry_failed)
        plan = make_plan(expanded, Selection(args.experiments, args.job, args.repetition, args.iteration),
                         policy, args.config)
        if args.list:
            print_plan(plan, as_json=args.json)
            if args.verbose and not args.json:
                print("\n".join(["launch:", *_launch_lines(args, plan, executor.world_size())]))
            return 0
        if args.slurm:
            return _slurm(args, experiments, plan)
        try:
            refuse_changed_only(plan, policy, args.config)
        except ClusterWorkError as exc:
            raise ClusterWorkError(f"{exc}{_overrides_hint(plan, args)}") from None
        executor.watch_stalls(_stall_limit(args, experiments))
        warn_changed(plan, policy)
        warn_quarantined(plan, policy)
        suggest_compact(expanded, log.info)
        # from the first write on a stop is graceful: what was written stays consistent, the rerun resumes
        handle_stop_signals(hard_second=False, on_first=lambda: _on_stop(executor))
        apply_plan(plan, sync=settings.sync)
        for root in plan.compact_roots():  # what processes killed in earlier runs left, as apply_plan's
            remove_dead_empty_fault_logs(root)  # attempts.compact does in the default layout's attempts folder
    except ClusterWorkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_STORE if isinstance(exc, StoreError) else EXIT_USAGE
    except BrokenPipeError:  # the reader of what we print went away (`--list --json | head -1`): that is fine
        return _reader_gone()
    with exporters_beside(args.config, experiments, plan.totals.sweep_paths):  # the config's `export:` trackers
        return _execute(experiment_class, plan, args, arguments, executor, settings, max_failures)


def _execute(experiment_class: type[ClusterWork], plan: Plan, args: argparse.Namespace, arguments: list[str],
             executor: Executor, settings: RunSettings, max_failures: int | None) -> int:
    """Run the planned jobs with a live display and a provenance record; print the summary."""
    jobs = plan.jobs
    campaigns = campaign_drivers(plan, settings, executor.workers)
    log.info("%s to run (%s)%s on %s", counted(len(jobs), "job"), counted(plan.totals.experiments_to_run, "experiment"),
             f" and {counted(len(campaigns), 'campaign')}" if campaigns else "", executor.figures.describe())
    handle_stop_signals(hard_second=True, on_first=lambda: _on_stop(executor))
    plain_total = plan.iterations_left()

    def total() -> int:  # fixed for plain jobs and ensembles; a steered campaign's as it decides
        return plain_total + sum(c.iterations_planned() for c in campaigns)

    def done() -> int:
        return executor.figures.iterations_done() + sum(c.iterations_apart() for c in campaigns)

    display = make_display(total, executor.workers, done, executor.figures.busy_seconds, args.report_every,
                           executor.figures.stalled)
    # with a live bar, a line per finished job would only scroll it away: failures still show
    finished_level = logging.DEBUG if isinstance(display, LiveBarDisplay) else logging.INFO

    keep_indexes = compact_index.IndexKeeper(plan.compact_roots())  # so that a kill -9 costs the next look the tails

    def on_outcome(outcome: Outcome) -> None:
        display.job_ended(outcome)
        failed = outcome.kind in (OutcomeKind.FAILED, OutcomeKind.BAD_PARAMETER, OutcomeKind.STORE_FAILURE)
        log.log(logging.ERROR if failed else finished_level, describe(outcome))
        keep_indexes()

    command = [*program(), *arguments]  # as run, for the record; the hint to resume is another line
    resume = resume_command(args, executor.world_size())
    paths = plan.totals.sweep_paths
    run_id = run_started(paths, command, executor.figures.describe(), executor.figures.hosts(), executor.world_size())
    attempts_journal.hold(paths, run_id)  # the run is alive while this process is (see attempts)
    executor.watch_stalls(None, lambda silences: run_stalled(paths, run_id, silences))
    def stopped_at_once() -> int:  # the second Ctrl-C: what is saved stays, as after a kill
        run_ended(paths, run_id, EXIT_INTERRUPTED, {})
        attempts_journal.release(run_id)
        executor.terminate()
        print(f"stopped at once; saved rows are kept. To resume: {resume}", file=sys.stderr)
        return EXIT_INTERRUPTED

    try:
        with display:
            summary = run_segments(jobs, executor, on_outcome, campaigns, max_failures, run_id)
    except KeyboardInterrupt:
        return stopped_at_once()
    if summary.stalled is not None:  # recorded and durable first: the launcher dies with the run
        print(f"error: {summary.stalled}", file=sys.stderr)
        run_ended(paths, run_id, EXIT_STALLED, summary.job_figures())
        attempts_journal.release(run_id)
        committer.commit()
        executor.abandon(EXIT_STALLED)
    summary.quarantined = [] if args.retry_failed else plan.totals.quarantined
    try:  # a second Ctrl-C may still come while the run's end is made durable and recorded
        committer.commit()  # this process's writes durable before the run is recorded as ended
        for root in plan.compact_roots():  # so that the next run plans from the index alone
            compact_index.refresh(root)
        for document in plan.indexed_documents():  # the same for the default layout's folders
            folder_index.refresh(document)
    except KeyboardInterrupt:
        return stopped_at_once()
    run_ended(paths, run_id, summary.exit_status(), summary.job_figures())
    attempts_journal.release(run_id)
    with contextlib.suppress(KeyboardInterrupt):  # (a cache: a Ctrl-C leaves it to the next run's end)
        for root in plan.compact_roots():  # so that load_results reads a large store's columns, not its JSON
            compact_frame.seal(root)
    with contextlib.suppress(KeyboardInterrupt):  # the run is recorded: only the summary's lines are lost
        print_summary(summary, plan, paths, resume)
    return summary.exit_status()


def _slurm(args: argparse.Namespace, experiments: Documents, plan: Plan) -> int:
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
                 "template": args.template, "requeue": args.requeue, "extra": args.sbatch, "launcher": args.launcher,
                 **{name: getattr(args, name) for name in ("mem", "gpus", "gpus_per_node", "gpus_per_task", "gres",
                                                           "constraint", "qos")}}
    settings = slurm.settings_from(experiments[0].get("slurm"), overrides, experiments.source)
    sweep_path = os.path.abspath(plan.totals.sweep_paths[0])
    pending = sorted(job.index for job in plan.jobs)
    if args.array and not pending:
        print("nothing left to run: every selected job is finished")
        return 0
    kind = "array" if args.array else "mpi"
    text = slurm.build_script(kind, settings, slurm.python_command(), os.path.abspath(sys.argv[0]),
                              [*run_arguments(args, jobs=not args.array), *(["-o"] if args.overwrite else [])],
                              sweep_path, os.getcwd(), len(pending), slurm.mpiexec_command())
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


def _launch_lines(args: argparse.Namespace, plan: Plan, world_size: int | None) -> list[str]:
    """--list -v: the command that runs this sweep as asked (for --slurm, the sbatch line; --dry-run prints
    the script it submits)."""
    if args.slurm:
        script = SweepPaths(os.path.abspath(plan.totals.sweep_paths[0])).batch_script("array" if args.array else "mpi")
        return [f"sbatch {shlex.quote(script)}"]
    return [resume_command(args, world_size)]


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
        from plotwork.api import save_figures, sweep_figures
        from plotwork.command_line import PlotOptions
    except ImportError as exc:
        raise ClusterWorkError(f"--plot needs matplotlib: pip install 'cluster_work[plot]' ({exc})") from None
    try:
        given = PlotOptions.parse(args.plotter, args.plot_options, args.mode)
        steer = {e.base_name: e.config.get("steer") for e in selected}
        options = {(base, column): given.of(column, steer[base]) for base in steer for column in args.plot}
    except KeyError as exc:
        raise ClusterWorkError(f"--plotter: {exc.args[0]}") from None
    except ValueError as exc:
        raise ClusterWorkError(f"--plot: {exc}") from None
    drawn = []  # every figure first, so that a plot refused writes no file
    for sweep_path in sweep_paths(selected):
        bases = {e.name: e.base_name for e in selected if e.sweep_path == sweep_path}
        frame = load_configured_results(sweep_path, list(bases))
        missing = [c for c in args.plot if c not in frame]
        if missing:
            raise ClusterWorkError(f"--plot: no result column {', '.join(missing)} in {sweep_path}; "
                                   f"columns: {', '.join(c for c in frame.columns if not c.startswith('params.'))}")
        try:
            figures = sweep_figures(frame, args.plot, args.plotter, bases, lambda base, column: options[base, column])
        except ValueError as exc:
            raise ClusterWorkError(f"--plot: {exc}") from None
        drawn.append((SweepPaths(sweep_path).plots_folder, figures))
    for folder, figures in drawn:
        for path in save_figures(figures, folder, ""):
            print(path)
    return 0


def _reader_gone() -> int:
    """After the reader of stdout closed it: exit quietly with status 0, as `git log | head` does. What is
    still buffered goes to /dev/null, so that Python's flush at exit has nothing to complain about (the
    recipe of Python's documentation, "Note on SIGPIPE")."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
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

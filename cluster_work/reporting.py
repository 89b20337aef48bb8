"""What the tool prints for people: the job list (--list), progress tables (-p/-P), the end summary."""
from __future__ import annotations

import os
import shlex
import sys
from dataclasses import dataclass
from typing import Any, Iterable, Sequence, TextIO

from rich.console import Console
from rich.table import Table

from .expansion import ExpandedExperiment
from .planning import Plan
from .runner import ALREADY_DONE, BUSY, DONE, STOPPED, STORE_FAILURE
from .store import ExperimentStore
from .sweep import Summary


def _console(stream: TextIO | None = None) -> Console:
    """Tables fit a terminal; into a file or pipe, lines are never wrapped (logs stay greppable)."""
    stream = stream or sys.stdout
    return Console(file=stream, width=None if stream.isatty() else 200, soft_wrap=not stream.isatty())


def format_params(varied: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in varied.items()) or "-"


def print_plan(plan: Plan, stream: TextIO | None = None) -> None:
    """--list: each expanded experiment, its state, parameters and job indices; runs nothing."""
    table = Table(title="Experiments (jobs are the indices for -j)", title_justify="left")
    for column in ("experiment", "state", "reps", "jobs", "to run", "parameters"):
        table.add_column(column, overflow="fold")
    for item in plan.experiments:
        experiment = item.experiment
        first, last = item.first_job_index, item.first_job_index + experiment.repetitions - 1
        state = item.state + (f" ({', '.join(item.changed_keys)})" if item.changed_keys else "")
        table.add_row(experiment.name, state, str(experiment.repetitions),
                      f"{first}-{last}" if last > first else str(first),
                      str(len(item.jobs)), format_params(experiment.varied))
    _console(stream).print(table)


@dataclass
class RepetitionProgress:
    state: str
    iterations_done: int
    mean_iteration_time: float | None


def read_progress(experiment: ExpandedExperiment) -> list[RepetitionProgress]:
    """The state of each repetition, from what is on disk (safe while a run writes)."""
    store = ExperimentStore(experiment.path)
    progress = []
    for rep in range(experiment.repetitions):
        repetition = store.repetition(rep)
        status = repetition.read_status()
        if status.get("state") == "finished" and status.get("iterations_done", 0) >= experiment.iterations:
            # the common case, answered from the small status file alone
            progress.append(RepetitionProgress("finished", status["iterations_done"],
                                               status.get("mean_iteration_time")))
            continue
        rows = repetition.read_results().rows
        times = [r["iteration_time"] for r in rows if isinstance(r.get("iteration_time"), (int, float))]
        state = status.get("state", "partial" if rows else "pending")
        if state == "finished":
            state = "partial"
        if repetition.is_running():
            state = "running"
        progress.append(RepetitionProgress(state, len(rows), sum(times) / len(times) if times else None))
    return progress


def print_progress(experiments: Sequence[ExpandedExperiment], full: bool, stream: TextIO | None = None) -> None:
    """-p / -P: per experiment the share of finished iterations and the repetitions by state."""
    table = Table(title="Progress", title_justify="left")
    for column in ("experiment", "done", "finished", "running", "failed", "pending", "mean it. time"):
        table.add_column(column, overflow="fold")
    for experiment in experiments:
        reps = read_progress(experiment)
        total = experiment.repetitions * experiment.iterations
        done = sum(min(r.iterations_done, experiment.iterations) for r in reps)
        counts = {state: sum(r.state == state for r in reps) for state in ("finished", "running", "failed")}
        pending = len(reps) - sum(counts.values())
        times = [r.mean_iteration_time for r in reps if r.mean_iteration_time is not None]
        mean = f"{sum(times) / len(times):.3g}s" if times else "-"
        table.add_row(experiment.name, f"{100 * done / total:.0f}%", str(counts["finished"]),
                      str(counts["running"]), str(counts["failed"]), str(pending), mean)
        if full:
            for rep, r in enumerate(reps):
                table.add_row(f"  rep {rep}", f"{r.iterations_done}/{experiment.iterations}", r.state,
                              "", "", "", f"{r.mean_iteration_time:.3g}s" if r.mean_iteration_time else "-")
    _console(stream).print(table)


def print_summary(summary: Summary, plan: Plan, sweep_paths: Iterable[str], argv: Sequence[str],
                  stream: TextIO | None = None) -> None:
    """The end of a run: what finished, failed or was skipped, where results are, how to resume."""
    console = _console(stream or sys.stderr)
    counts = summary.counts
    skipped_changed = sum(1 for item in plan.experiments if item.skipped)
    parts = [f"{counts[DONE]} finished", f"{counts[ALREADY_DONE]} already finished" if counts[ALREADY_DONE] else "",
             f"{len(summary.failures())} failed", f"{counts[BUSY]} held by another run" if counts[BUSY] else "",
             f"{counts[STOPPED] + summary.not_started} not finished (interrupted)"
             if counts[STOPPED] + summary.not_started else "",
             f"{skipped_changed} experiment(s) skipped: config changed" if skipped_changed else ""]
    console.print(f"[bold]Summary[/bold]: {summary.jobs} jobs in {summary.seconds:.1f}s: "
                  + ", ".join(p for p in parts if p))
    for outcome in summary.failures():
        console.print(f"  [red]failed[/red] {outcome.label}: {outcome.error}", highlight=False)
    store_failures = [o for o in summary.outcomes if o.kind == STORE_FAILURE]
    if store_failures:
        console.print(f"[red]error[/red]: results could not be written: {store_failures[0].error}. "
                      "The run stopped; every file is readable. Free space (or fix the folder), then run "
                      "the same command to complete the sweep.", highlight=False)
    if summary.outcomes:
        seconds = [o.seconds for o in summary.outcomes if o.kind == DONE]
        if seconds:
            console.print(f"  time per job: mean {sum(seconds) / len(seconds):.2f}s, max {max(seconds):.2f}s")
    console.print(f"  results: {', '.join(sorted(set(sweep_paths)))}", highlight=False)
    if summary.exit_status() != 0:
        console.print(f"  to resume or retry: {' '.join(shlex.quote(a) for a in argv)}", highlight=False)


def sweep_paths(plan: Plan) -> list[str]:
    return [os.path.dirname(item.experiment.path) for item in plan.experiments]


"""What the tool prints for people: the job list (--list), progress tables (-p/-P), the end summary."""
from __future__ import annotations

import collections
import io
import itertools
import json
import operator
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from json.encoder import encode_basestring_ascii  # (json.dumps of a str, without its overhead)
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from .bulk_runs import flipped
from .config import KeyPath, dotted
from .display import counted, format_duration, format_seconds
from .expansion import ExpandedExperiment
from .indented_json import ITEMS, JOINED, Rendered, indented, spliced, write_indented
from .kinds import kind
from .planning import Bulk, ExperimentPlan, FreshRun, NewOrDoneRun, Plan
from .progress_figures import (
    STATES,
    ExperimentProgress,
    Part,
    PendingOrFinishedRun,
    PendingRun,
    each_experiment,
    experiments_in,
)
from .progress_sums import campaign_units, progress_report
from .store import to_plain
from .sweep import Summary
from .vocabulary import ExperimentState, OutcomeKind, RepetitionState, Segment

EXPERIMENT_STATE_TEXT = {ExperimentState.NEW: "new", ExperimentState.PARTIAL: "partial",
                         ExperimentState.DONE: "done", ExperimentState.CHANGED: "config changed"}


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """A reader that went away (`-P | head -1`) is the caller's to handle, as a print's is: rich's own
        handler would exit with status 1."""
        self.quiet = True
        raise BrokenPipeError


def _console(stream: TextIO | None = None) -> Console:
    """Tables fit a terminal; into a file or pipe, lines are never wrapped (logs stay greppable)."""
    stream = stream or sys.stdout
    return _Console(file=stream, width=None if stream.isatty() else 200, soft_wrap=not stream.isatty())


def format_params(varied: Mapping[KeyPath, Any]) -> str:
    return ", ".join(f"{dotted(k)}={v!r}" for k, v in varied.items()) or "-"


SCREENFUL = 50  # --list shows every experiment up to this many; beyond, a summary (and --json for all)
SHOWN_AT_EACH_END = 5  # experiments the summary shows at its start and end


def _plan_row(item: ExperimentPlan) -> list[str]:
    experiment = item.experiment
    first, last = item.first_job_index, item.first_job_index + experiment.repetitions - 1
    state = EXPERIMENT_STATE_TEXT[item.state] + (f" ({', '.join(item.changed_keys)})" if item.changed_keys else "")
    return [experiment.name, state, str(experiment.repetitions), f"{first}-{last}" if last > first else str(first),
            str(len(item.jobs)), format_params(experiment.varied)]


def _plan_table(title: str, rows: Iterable[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in ("experiment", "state", "reps", "jobs", "to run", "parameters"):
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*row)
    return table


def print_plan(plan: Plan, stream: TextIO | None = None, as_json: bool = False) -> None:
    """--list: each expanded experiment, its state, parameters and job indices; runs nothing.

    Up to a screenful of experiments as one table; beyond, a summary (per base experiment and state,
    then the first and last few experiments), since a table of 10^6 rows helps nobody and would be
    built in memory. `as_json` (--list --json) streams every experiment as one JSON line instead.
    Memory stays bounded either way: the plan's experiments are read once, in order."""
    stream = stream or sys.stdout
    if as_json:
        for chunk in plan.chunks():
            if isinstance(chunk, Bulk):  # (a done experiment has no job)
                lines = _fresh_job_lines(plan, chunk)
                while batch := "".join(itertools.islice(lines, 1000)):  # a write costs more than a line
                    stream.write(batch)
                continue
            for job in chunk.jobs:
                stream.write(json.dumps(_job_record(chunk, job), default=repr) + "\n")
        for campaign in plan.campaigns:
            stream.write(json.dumps(_campaign_record(campaign)) + "\n")
        return
    for campaign in plan.campaigns:
        record = _campaign_record(campaign)
        stream.write(f"{record['campaign']}: a {record['kind']} campaign of {record['experiments']} configured "
                     "experiment(s), run as a whole (what runs is decided as it goes; -p shows it)\n")
    for base, samples, seed in plan.random_expansions():
        stream.write(f"{base}: {samples} random samples, seed {seed}\n")
    first: list[ExperimentPlan] = []
    last: collections.deque[ExperimentPlan] = collections.deque(maxlen=SHOWN_AT_EACH_END)
    counts: dict[str, collections.Counter[str]] = {}  # base experiment -> experiments per state
    to_run: collections.Counter[str] = collections.Counter()  # base experiment -> jobs to run
    experiments = jobs = 0
    for chunk in plan.chunks():
        if isinstance(chunk, Bulk):  # new or done experiments: counted, and only those shown made
            base, new = chunk.document.base, chunk.new
            experiments += len(chunk)
            jobs += len(chunk) * chunk.repetitions
            per_state = counts.setdefault(base, collections.Counter())
            kinds = ((ExperimentState.NEW, new), (ExperimentState.DONE, len(chunk) - new))
            for state, count in kinds[::-1] if chunk.done_at(chunk.start) else kinds:
                if count:  # (in the order they come first: the table's columns are the states as first seen)
                    per_state[EXPERIMENT_STATE_TEXT[state]] += count
            to_run[base] += new * chunk.repetitions
            first += plan.fresh_plans(chunk, stop=min(chunk.stop, chunk.start + SCREENFUL - len(first)))
            last.extend(plan.fresh_plans(chunk, start=max(chunk.start, chunk.stop - SHOWN_AT_EACH_END)))
            continue
        experiments += 1
        jobs += chunk.experiment.repetitions
        base = chunk.experiment.base_name
        counts.setdefault(base, collections.Counter())[EXPERIMENT_STATE_TEXT[chunk.state]] += 1
        to_run[base] += len(chunk.jobs)
        if len(first) < SCREENFUL:
            first.append(chunk)
        last.append(chunk)
    console = _console(stream)
    if not experiments and plan.campaigns:
        return
    if experiments <= SCREENFUL:
        console.print(_plan_table("Experiments (jobs are the indices for -j)", map(_plan_row, first)))
        return
    states = list(dict.fromkeys(state for per_state in counts.values() for state in per_state))
    table = Table(title=f"{experiments} experiments, {jobs} jobs (--list --json lists every one)",
                  title_justify="left")
    for column in ("base experiment", "experiments", *states, "jobs to run"):
        table.add_column(column, overflow="fold")
    for base, per_state in counts.items():
        table.add_row(base, str(sum(per_state.values())), *(str(per_state[s]) for s in states), str(to_run[base]))
    console.print(table)
    skipped = experiments - SHOWN_AT_EACH_END - len(last)  # more than a screenful: the two ends never overlap
    rows = [*map(_plan_row, first[:SHOWN_AT_EACH_END]), ["...", f"{skipped} more", "", "", "", ""],
            *map(_plan_row, last)]
    console.print(_plan_table("First and last experiments (jobs are the indices for -j)", rows))


def _job_record(item: ExperimentPlan, job: Segment) -> dict[str, Any]:
    """--list --json: one job that a run would execute, and the state of its repetition now."""
    experiment = item.experiment
    return {"job": job.index, "experiment": experiment.name, "base": experiment.base_name, "rep": job.rep,
            "state": item.repetition_states.get(job.rep, RepetitionState.PENDING).value,
            "restart_from": job.restart_from,
            "params": {dotted(k): to_plain(v) for k, v in experiment.varied.items()}}


def _fresh_job_lines(plan: Plan, run: FreshRun | NewOrDoneRun) -> Iterator[str]:
    """--list --json's lines of a run's new experiments, as `_job_record` gives them, made from the names
    and values of the document's axes (each encoded once) instead of from each experiment: 2 us a job, not 25."""
    document = run.document
    if document.custom_points or len({dotted(path) for path in document[run.start].varied}) < len(
            document[run.start].varied):  # points of their own, or two values of one name: each its record
        yield from (json.dumps(_job_record(item, job), default=repr) + "\n"
                    for item in plan.fresh_plans(run, new=True) for job in item.jobs)
        return

    base, repetitions = encode_basestring_ascii(document.base), run.repetitions
    firsts = range(run.first_index, run.first_index + len(run) * repetitions, repetitions)  # each one's first job
    each: Iterator[tuple[int, str, str]] = zip(firsts, document.names(run.start),
                                               document.joined_points(_encode_param, ", ", run.start))
    if isinstance(run, NewOrDoneRun):
        each = itertools.compress(each, run.new_ones)
    for first, name, params in itertools.islice(each, run.new):
        experiment = encode_basestring_ascii(name)
        for rep in range(repetitions):
            yield (f'{{"job": {first + rep}, "experiment": {experiment}, "base": {base}, "rep": {rep}, '
                   f'"state": "pending", "restart_from": null, "params": {{{params}}}}}\n')


def _encode_param(path: KeyPath, value: Any) -> str:
    """A parameter as `_job_record`'s params have it."""
    return f"{json.dumps(dotted(path))}: {json.dumps(to_plain(value), default=repr)}"


def _campaign_record(campaign: Any) -> dict[str, Any]:
    """--list: a campaign (steered or weighted ensemble), which has no fixed jobs to list."""
    return {"campaign": campaign.base, "kind": kind(campaign.kind).label, "experiments": len(campaign.experiments)}


def _row(item: ExperimentProgress, name: str) -> list[str]:
    share = 100 * item.iterations_done / item.iterations if item.iterations else 100
    mean = item.mean_iteration_time
    return [name, f"{share:.0f}%", *(str(item.states.get(s, 0)) for s in STATES), format_duration(mean),
            "unknown" if item.work_left is None else format_seconds(item.work_left)]


PIECE_ROWS = 1000  # a longer table (-P of a huge sweep) is printed in pieces of this many rows, as they are made


def _print_table(console: Console, title: str, columns: Sequence[str], rows: Iterable[list[str]]) -> None:
    """One table of `rows`; beyond PIECE_ROWS of them, one table per PIECE_ROWS rows, printed as they come
    (a table is built in memory and rendered at ~0.3 ms a row: -P of 10^6 experiments streams its minutes)."""
    rows = iter(rows)
    piece = list(itertools.islice(rows, PIECE_ROWS))
    continued = False
    while True:
        table = Table(title=f"{title} (continued)" if continued else title, title_justify="left")
        for column in columns:
            table.add_column(column, overflow="fold")
        for row in piece:
            table.add_row(*row)
        console.print(table)
        piece, continued = list(itertools.islice(rows, PIECE_ROWS)), True
        if not piece:
            return


def print_progress(experiments: Sequence[ExpandedExperiment], full: bool, stream: TextIO | None = None,
                   runs: Sequence[str] = ()) -> None:
    """-p: one line per base experiment; -P: each expanded experiment, each repetition, the last runs.
    Weighted ensembles (no repetitions) have a table of their own, after the others, and so have steered
    campaigns (stops per rung, planned iterations)."""
    experiments, campaigns = campaign_units(experiments)
    groups, bases, total = progress_report(experiments, campaigns)

    def rows() -> Iterator[list[str]]:
        for base, parts in groups.items():
            count = experiments_in(parts)
            yield _row(bases[base], f"{base} ({count} expanded)" if count > 1 else base)
            yield from (_row(part, f"  {part.name}") for part in (each_experiment(parts) if full and count > 1 else ()))
        if len(groups) > 1:
            yield _row(total, "[bold]total[/bold]")

    console = _console(stream)
    if groups or not any(campaign.own_progress_rows for campaign, _ in campaigns):
        _print_table(console, "Progress (from the results on disk)",
                     ("experiment", "done", *STATES, "mean it. time", "work left"), rows())
    means = {base: row.mean_iteration_time for base, row in bases.items()}
    for campaign, units in campaigns:
        console.print(campaign.progress_table(units, means))
    if full:
        _print_table(console, "Repetitions", ("experiment", "rep", "done", "state", "mean it. time", "error"),
                     ([part.name, str(rep.rep), f"{rep.iterations_done}/{part.iterations // part.repetitions}",
                       rep.state, format_duration(rep.mean_iteration_time), rep.error or ""]
                      for parts in groups.values() for part in each_experiment(parts) for rep in part.reps))
    running = total.states.get("running", 0)
    if total.work_left and running:
        console.print(f"time left at the current {running} running repetitions: "
                      f"~{format_seconds(total.work_left / running)}")
    if full and runs:
        console.print("last runs:", highlight=False)
        for line in runs:
            console.print(f"  {line}", highlight=False, markup=False)


def progress_json(experiments: Sequence[ExpandedExperiment], full: bool, runs: Sequence[dict[str, Any]] = ()) -> str:
    """-p --json: the same figures for scripts, and each campaign kind's under its `progress_json_key`
    (`ensembles`: those of the weighted ensembles, `campaigns`: of the steered campaigns, if any); the text
    `json.dumps(..., indent=1)` gives them."""
    text = io.StringIO()
    write_progress_json(experiments, full, text, runs)
    return text.getvalue()


def write_progress_json(experiments: Sequence[ExpandedExperiment], full: bool, stream: TextIO,
                        runs: Sequence[dict[str, Any]] = ()) -> None:
    """`progress_json`'s text, written as it is made: each experiment's figures once the totals are known."""
    experiments, campaigns = campaign_units(experiments)
    groups, bases, total = progress_report(experiments, campaigns)
    experiment_items = itertools.chain.from_iterable(_json_items(part, full) for parts in groups.values()
                                                     for part in parts)
    write_indented(stream, {"total": total.as_dict(False), "base_experiments": [row.as_dict(False) for row in
                                                                                bases.values()],
                            "experiments": experiment_items, "runs": list(runs),
                            **{campaign.progress_json_key: campaign.progress_figures(units)
                               for campaign, units in campaigns}})


def _json_items(part: Part, full: bool) -> Iterator[dict[str, Any] | Rendered]:
    """The --json items of `part`: an experiment's figures, or those of each experiment of a run, from the text of
    its shared figures with each one's name (and a finished one's mean iteration time) put in, JOINED items to a
    Rendered; with `full`, a finished one's as read from the index (its repetitions' own times)."""
    if isinstance(part, PendingRun):
        return spliced(iter(part.names()), (_form(part.figures, full),), itertools.repeat(0, len(part)), iter(()))
    if not isinstance(part, PendingOrFinishedRun):
        return iter((part.as_dict(full),))
    names = itertools.islice(part.document.names(part.start), len(part))
    if not full:
        means = map(repr, map(operator.truediv, part.seconds, part.timed)) if all(part.timed) else map(
            _mean_text, part.seconds, part.timed)
        return spliced(names, (_form(part.pending, full), _form(part.figures, full, True)), iter(part.finished), means)
    pending = _renamed(part.pending, full, itertools.compress(names, flipped(part.finished)))
    finished = (indented(figures.as_dict(full), 2) for figures in part.finished_parts())
    return _batches(map(next, map((pending, finished).__getitem__, part.finished)))  # in the experiments' order


def _batches(texts: Iterator[str]) -> Iterator[Rendered]:
    """The texts of list items, JOINED to a Rendered (a Rendered made per item costs as much as its text)."""
    return map(Rendered, map(ITEMS.join, iter(lambda: list(itertools.islice(texts, JOINED)), [])))


def _renamed(figures: ExperimentProgress, full: bool, names: Iterable[str]) -> Iterator[str]:
    """The --json texts of `figures` named each of `names`, from their text made once, without a Python call per
    item."""
    form = indented({**figures.as_dict(full), "name": _NAME}, 2).replace("%", "%%").replace(json.dumps(_NAME), "%s")
    return map(form.__mod__, map(encode_basestring_ascii, names))


_NAME, _MEAN = "\x00", "\x01"  # what no experiment's name or mean's text is


def _form(figures: ExperimentProgress, full: bool, mean: bool = False) -> tuple[str, str, str]:
    """The --json text of `figures` in three pieces: before its name, after it (up to its mean iteration time,
    where `mean`: put in), after that. Its name is its first key: the first piece is every item's."""
    row = {**figures.as_dict(full), "name": _NAME, **({"mean_iteration_time": _MEAN} if mean else {})}
    head, rest = indented(row, 2).split(json.dumps(_NAME))
    before, _, after = rest.partition(json.dumps(_MEAN)) if mean else (rest, "", "")
    return head, before, after


def _mean_text(seconds: Any, timed: int) -> str:
    """The text of a mean iteration time as `json.dumps` gives it."""
    return json.dumps(seconds / timed if timed else None)


def print_summary(summary: Summary, plan: Plan, sweep_paths: Iterable[str], resume: str,
                  stream: TextIO | None = None) -> None:
    """The end of a run: what finished, failed or was skipped, where results are, and `resume`: the command
    that resumes it (`launch.resume_command`), when it did not end well."""
    console = _console(stream or sys.stderr)
    counts = summary.counts
    skipped_changed = plan.totals.skipped
    finished, already = counts[OutcomeKind.FINISHED], counts[OutcomeKind.ALREADY_FINISHED]
    busy, interrupted = counts[OutcomeKind.BUSY], counts[OutcomeKind.INTERRUPTED] + summary.not_started
    unwritten = counts[OutcomeKind.STORE_FAILURE]  # so that the parts add up to the jobs
    parts = [f"{finished} finished", f"{already} already finished" if already else "",
             f"{len(summary.failures())} failed",
             f"{len(summary.quarantined)} quarantined (not run)" if summary.quarantined else "",
             f"{busy} held by another run" if busy else "",
             f"{interrupted} not finished (interrupted)" if interrupted else "",
             f"{unwritten} not finished (results could not be written)" if unwritten else "",
             f"{counted(skipped_changed, 'experiment')} skipped: config changed" if skipped_changed else ""]
    if summary.jobs or not summary.campaigns:
        console.print(f"[bold]Summary[/bold]: {counted(summary.jobs, 'job')} in {summary.seconds:.1f}s: "
                      + ", ".join(p for p in parts if p))
    else:
        console.print(f"[bold]Summary[/bold]: {counted(len(summary.campaigns), 'campaign')} in {summary.seconds:.1f}s")
    for outcome in summary.failures():
        console.print(f"  [red]failed[/red] {outcome.label}: {outcome.error}", highlight=False)
    if summary.stop_reason:
        console.print(f"  [red]stopped[/red]: {summary.stop_reason}", highlight=False)
    for label, suspicion in summary.quarantined[:SCREENFUL]:
        console.print(f"  [red]quarantined[/red] {label}: {suspicion.describe()}", highlight=False)
    if summary.quarantined:
        more = len(summary.quarantined) - SCREENFUL
        console.print(f"  {f'and {more} more quarantined; ' if more > 0 else ''}run with --retry-failed to run "
                      "quarantined repetitions again", highlight=False)
    for campaign in summary.campaigns:
        console.print(f"  {campaign.summary_line()}", highlight=False, markup=False)
    store_failures = summary.store_failures()
    if store_failures:
        console.print(f"[red]error[/red]: results could not be written: {store_failures[0].error}. "
                      "The run stopped; every file is readable. Free space (or fix the folder), then run "
                      "the same command to complete the sweep.", highlight=False)
    if finished:
        console.print(f"  time per job: mean {format_duration(summary.finished_seconds / finished)}, "
                      f"max {format_duration(summary.longest_finished)}")
    console.print(f"  results: {', '.join(sorted(set(sweep_paths)))}", highlight=False)
    if summary.exit_status() != 0:
        console.print(f"  to resume or retry: {resume}", highlight=False, markup=False, soft_wrap=True)


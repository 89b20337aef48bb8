"""Local worker processes (`-n N`): the parent's cost per job against concurrent.futures' ProcessPoolExecutor,
and the time from a worker's death to the next item started on its replacement.

    python benchmarks/local_workers.py --workers 2 --jobs 2000 --rounds 3

Phase A: `ProcessPoolExecutor.map` of N empty tasks (forkserver, as -n starts its workers). Phase B:
cluster_work's local executor hands out N items whose task is empty too (dispatch only, like for like).
Phase C: N real jobs of one no-op iteration each (results and status written) through the same code path
as `-n`. Phases alternate for `--rounds` rounds; medians of the wall time per job (makespan / N) and the
parent's CPU time per job, and their ratios to ProcessPoolExecutor's. Then, `--deaths` times: one worker,
an item that kills it with SIGKILL, and the item it held, which must start on a new worker: the time
from the kill to that start (a new process: fork from the forkserver, imports, the task unpickled).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import os
import shutil
import signal
import statistics
import tempfile
import time

from bench_experiments import NoOp

from cluster_work.backends import LocalProcessExecutor
from cluster_work.backends.base import TaskContext
from cluster_work.expansion import expand_all
from cluster_work.planning import apply_plan, make_plan
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import Outcome, OutcomeKind, RunSettings, Segment

START = "forkserver"


def empty_task(_):
    return None


def empty_item(item: Segment, context: TaskContext) -> Outcome:
    return Outcome(item.index, "", OutcomeKind.FINISHED)


Times = tuple[float, float, float]  # wall per job, parent CPU per job, the job's own time on its worker


def futures_round(workers: int, jobs: int) -> Times:
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(START)) as pool:
        list(pool.map(empty_task, range(workers)))  # every worker started, as in the other phases' warm-up
        wall, cpu = time.perf_counter(), time.process_time()
        list(pool.map(empty_task, range(jobs)))
        return (time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs, 0.0


def drive(executor: LocalProcessExecutor, segments: list[Segment], warm_up: list[Segment]) -> Times:
    run_segments(warm_up, executor)
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_segments(segments, executor)
    assert summary.ended == len(segments)
    worker = summary.job_seconds
    return tuple(value / len(segments) for value in (time.perf_counter() - wall, time.process_time() - cpu, worker))


def dispatch_round(workers: int, segments: list[Segment]) -> Times:
    with LocalProcessExecutor(empty_item, workers, START) as executor:
        return drive(executor, segments, segments[:workers])


def cluster_work_round(workers: int, jobs: int, folder: str, settings: RunSettings) -> Times:
    experiment = {"name": "noop", "repetitions": jobs, "iterations": 1, "path": folder}
    plan = make_plan(expand_all([experiment]), Selection(), Policy(delete=True), "benchmark")
    apply_plan(plan)
    with LocalProcessExecutor(ExperimentTask(NoOp, settings), workers, START) as executor:
        return drive(executor, list(plan.jobs), [])


class KillsItsWorker:
    """Item 0 kills its worker (SIGKILL, after noting the time); every item reports when it started."""

    def __call__(self, item: Segment, context: TaskContext) -> tuple[int, float]:
        started = time.monotonic()  # one clock for every process on this machine
        if item.index == 0:
            with open(os.path.join(item.experiment.path, "killed"), "w") as handle:
                handle.write(repr(time.monotonic()))
            os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(10)
        return item.index, started

    def lost(self, item: Segment, stopping: bool, cause: str = "") -> tuple[int, float]:
        return item.index, -1.0


def death_round(folder: str) -> float:
    [experiment] = expand_all([{"name": "death", "repetitions": 1, "iterations": 1, "path": folder}])
    with LocalProcessExecutor(KillsItsWorker(), 1, START) as executor:
        os.makedirs(experiment.path)
        executor.submit(Segment(0, experiment, 0))
        executor.submit(Segment(1, experiment, 0))  # held by the worker that dies: it must start on a new one
        outcomes = dict(executor.next_outcome() for _ in range(2))
    with open(os.path.join(experiment.path, "killed")) as handle:
        return outcomes[1] - float(handle.read())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--deaths", type=int, default=5)
    parser.add_argument("--no-sync", dest="sync", action="store_false", help="no group commits (--no-sync)")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="cw-local-")
    try:
        settings = RunSettings(log_level="WARNING", sync=args.sync)
        [experiment] = expand_all([{"name": "empty", "repetitions": 1, "iterations": 1, "path": folder}])
        empty_jobs = [Segment(index, experiment, 0) for index in range(args.jobs)]
        futures_times, dispatch, ours = [], [], []
        for _ in range(args.rounds):
            futures_times.append(futures_round(args.workers, args.jobs))
            dispatch.append(dispatch_round(args.workers, empty_jobs))
            ours.append(cluster_work_round(args.workers, args.jobs, os.path.join(folder, "noop"), settings))
        deaths = []
        for n in range(args.deaths):
            deaths.append(death_round(os.path.join(folder, f"death{n}")))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    f_wall, f_cpu = (statistics.median(t[i] for t in futures_times) for i in (0, 1))
    print(f"local_workers: {args.jobs} jobs, {args.workers} workers ({START}), {args.rounds} rounds (medians), "
          f"{os.cpu_count()} cores, group commits {'on' if args.sync else 'off'}")
    print(f"  {'':40} {'wall/job':>10} {'parent CPU/job':>15} {'worker/job':>11} {'wall ratio':>11} "
          f"{'CPU ratio':>10}")
    for label, times in (("ProcessPoolExecutor, empty tasks", futures_times),
                         ("cluster_work, empty tasks", dispatch),
                         ("cluster_work, real no-op jobs", ours)):
        wall, cpu, worker = (statistics.median(t[i] for t in times) for i in (0, 1, 2))
        print(f"  {label:40} {wall * 1e3:7.3f} ms {cpu * 1e3:12.3f} ms {worker * 1e3:8.3f} ms {wall / f_wall:10.2f}x "
              f"{cpu / f_cpu:9.2f}x")
    if deaths:
        print(f"  a worker's death to the next item started on its replacement: median "
              f"{statistics.median(deaths):.3f} s (min {min(deaths):.3f}, max {max(deaths):.3f}, {len(deaths)} deaths)")


if __name__ == "__main__":
    main()

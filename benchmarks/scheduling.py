"""Rank 0's cost per job: cluster_work's MPI backend against mpi4py.futures, in the same mpiexec run.

    mpiexec -n 5 python -m mpi4py benchmarks/scheduling.py --jobs 2000 --rounds 3

Phase A: `MPICommExecutor.map` of N empty tasks. Phase B: cluster_work's MPI backend hands out N items whose
task is empty too (dispatch only: the per-message cost, like for like). Phase C: N real jobs of one no-op
iteration each (N repetitions of one experiment: every job writes its results and status like a real one,
durably: group commits) through the same code path as `-c`. Phases alternate for `--rounds` rounds; the
medians are printed: wall time per job (makespan / N), rank 0's CPU time per job, the time a job takes on
its worker (measured there), and their ratios to mpi4py.futures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from bench_experiments import NoOp
from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

from cluster_work.backends.base import TaskContext
from cluster_work.backends.mpi import MPIExecutor
from cluster_work.expansion import expand_all
from cluster_work.planning import apply_plan, make_plan
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.sweep import Summary, run_segments
from cluster_work.vocabulary import Outcome, OutcomeKind, RunSettings, Segment

Times = tuple[float, float, float]  # wall per job, rank-0 CPU per job, worker time per job


def empty_task(_):
    started = time.perf_counter()
    return time.perf_counter() - started


def futures_round(jobs: int) -> Times | None:
    with MPICommExecutor(MPI.COMM_WORLD, root=0) as executor:
        if executor is None:
            return None
        wall, cpu = time.perf_counter(), time.process_time()
        worker = sum(executor.map(empty_task, range(jobs)))
        return (time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs, worker / jobs


def empty_item(item: Segment, context: TaskContext) -> Outcome:
    return Outcome(item.index, "", OutcomeKind.FINISHED)


def drive(executor: MPIExecutor, segments: list[Segment]) -> tuple[Times, Summary]:
    wall, cpu = time.perf_counter(), time.process_time()
    summary = run_segments(segments, executor)
    jobs = len(segments)
    times = (time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs, summary.job_seconds / jobs
    return times, summary


def dispatch_round(segments: list[Segment]) -> Times | None:
    with MPIExecutor(empty_item, finalize=False) as executor:
        if executor is None:
            return None
        result, summary = drive(executor, segments)
    assert summary.ended == len(segments)
    return result


def cluster_work_round(jobs: int, folder: str, settings: RunSettings) -> Times | None:
    experiment = {"name": "noop", "repetitions": jobs, "iterations": 1, "path": folder}
    with MPIExecutor(ExperimentTask(NoOp, settings), finalize=False) as executor:
        if executor is None:
            return None
        plan = make_plan(expand_all([experiment]), Selection(), Policy(delete=True), "benchmark")
        apply_plan(plan)
        result, summary = drive(executor, list(plan.jobs))
    assert summary.counts[OutcomeKind.FINISHED] == jobs, (summary.counts, summary.kept[:3])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-sync", dest="sync", action="store_false",
                        help="no group commits (--no-sync of the command line)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    folder = comm.bcast(tempfile.mkdtemp(prefix="cw-bench-") if comm.rank == 0 else None, root=0)
    settings = RunSettings(log_level="WARNING", sync=args.sync)
    [experiment] = expand_all([{"name": "empty", "repetitions": 1, "iterations": 1, "path": folder}])
    empty_jobs = [Segment(index, experiment, 0) for index in range(args.jobs)]
    futures_times, dispatch, ours = [], [], []
    for _ in range(args.rounds):
        comm.Barrier()
        futures_times.append(futures_round(args.jobs))
        comm.Barrier()
        dispatch.append(dispatch_round(empty_jobs))
        comm.Barrier()
        ours.append(cluster_work_round(args.jobs, folder, settings))
    if comm.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
        workers = comm.size - 1
        f_wall, f_cpu = (statistics.median(t[i] for t in futures_times) for i in (0, 1))
        print(f"scheduling: {args.jobs} jobs, {workers} workers, {args.rounds} rounds (medians), "
              f"{os.cpu_count()} cores, group commits {'on' if args.sync else 'off'}")
        print(f"  {'':32} {'wall/job':>10} {'rank-0 CPU/job':>15} {'worker/job':>11} {'wall ratio':>11} "
              f"{'CPU ratio':>10}")
        for label, times in (("mpi4py.futures, empty tasks", futures_times),
                             ("cluster_work, empty tasks", dispatch),
                             ("cluster_work, real no-op jobs", ours)):
            wall, cpu, worker = (statistics.median(t[i] for t in times) for i in (0, 1, 2))
            print(f"  {label:32} {wall * 1e3:7.3f} ms {cpu * 1e3:12.3f} ms {worker * 1e3:8.3f} ms "
                  f"{wall / f_wall:10.2f}x {cpu / f_cpu:9.2f}x")


if __name__ == "__main__":
    main()

"""Rank 0's cost per job: cluster_work's MPI backend against mpi4py.futures, in the same mpiexec run.

    mpiexec -n 5 python -m mpi4py benchmarks/scheduling.py --jobs 2000 --rounds 3

Phase A: `MPICommExecutor.map` of N empty tasks. Phase B: cluster_work's MPI backend hands out N jobs whose
task is empty too (dispatch only: the per-message cost, like for like). Phase C: N real jobs of one no-op
iteration each (N repetitions of one experiment: every job writes its results and status like a real one)
through the same code path as `-c`. Phases alternate for `--rounds` rounds; the medians are printed:
wall time per job (makespan / N) and rank 0's CPU time per job, and their ratios to mpi4py.futures.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

from cluster_work import ClusterWork
from cluster_work.expansion import expand_all
from cluster_work.mpi_executor import MPIExecutor, serve_if_worker, serve_jobs
from cluster_work.planning import Policy, Selection, apply_plan, make_plan
from cluster_work.runner import Job, Outcome, RunSettings
from cluster_work.sweep import run_jobs


class NoOp(ClusterWork):
    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        return {"x": n}


def empty_task(_):
    return None


def futures_round(jobs: int) -> tuple[float, float] | None:
    with MPICommExecutor(MPI.COMM_WORLD, root=0) as executor:
        if executor is None:
            return None
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in executor.map(empty_task, range(jobs)):
            pass
        return (time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs


def empty_job(job: Job, comm: object = None, write: bool = True) -> Outcome:
    return Outcome(job.index, "", "finished")


def dispatch_round(jobs: list[Job]) -> tuple[float, float] | None:
    if serve_jobs(empty_job) is not None:
        return None
    with MPIExecutor() as executor:
        wall, cpu = time.perf_counter(), time.process_time()
        finished = sum(1 for _ in executor.map_unordered(empty_job, jobs))
        result = (time.perf_counter() - wall) / len(jobs), (time.process_time() - cpu) / len(jobs)
    assert finished == len(jobs)
    return result


def cluster_work_round(jobs: int, folder: str, settings: RunSettings) -> tuple[float, float] | None:
    if serve_if_worker(NoOp, settings) is not None:
        return None
    experiment = {"name": "noop", "repetitions": jobs, "iterations": 1, "path": folder}
    plan = make_plan(expand_all([experiment]), Selection(), Policy(delete=True), "benchmark")
    apply_plan(plan)
    with MPIExecutor() as executor:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = run_jobs(NoOp, plan.jobs, executor, settings)
        result = (time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs
    assert summary.counts["finished"] == jobs, summary.counts
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync", action="store_true", help="fsync each repetition's results (the default of -c)")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    folder = comm.bcast(tempfile.mkdtemp(prefix="cw-bench-") if comm.rank == 0 else None, root=0)
    settings = RunSettings(log_level="WARNING", sync=args.sync)
    [experiment] = expand_all([{"name": "empty", "repetitions": 1, "iterations": 1, "path": folder}])
    empty_jobs = [Job(index, experiment, 0) for index in range(args.jobs)]
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
              f"{os.cpu_count()} cores, fsync={'on' if args.sync else 'off'}")
        print(f"  {'':32} {'wall/job':>10} {'rank-0 CPU/job':>15} {'wall ratio':>11} {'CPU ratio':>10}")
        for label, times in (("mpi4py.futures, empty tasks", futures_times),
                             ("cluster_work, empty tasks", dispatch),
                             ("cluster_work, real no-op jobs", ours)):
            wall, cpu = (statistics.median(t[i] for t in times) for i in (0, 1))
            print(f"  {label:32} {wall * 1e3:7.3f} ms {cpu * 1e3:12.3f} ms {wall / f_wall:10.2f}x "
                  f"{cpu / f_cpu:9.2f}x")


if __name__ == "__main__":
    main()

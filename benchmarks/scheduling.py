"""Rank 0's cost per job: cluster_work's MPI backend against mpi4py.futures, in the same mpiexec run.

    mpiexec -n 5 python -m mpi4py benchmarks/scheduling.py --jobs 2000 --rounds 3

Phase A: `MPICommExecutor.map` of N empty tasks. Phase B: cluster_work runs N jobs of one no-op iteration
each (N repetitions of one experiment: every job writes its results, status and log like a real one)
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
from cluster_work.mpi_executor import MPIExecutor, serve_if_worker
from cluster_work.planning import Policy, Selection, apply_plan, make_plan
from cluster_work.runner import RunSettings
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


def cluster_work_round(jobs: int, folder: str, settings: RunSettings) -> tuple[float, float] | None:
    if serve_if_worker(NoOp, 1, settings) is not None:
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
    futures_times, ours = [], []
    for _ in range(args.rounds):
        comm.Barrier()
        futures_times.append(futures_round(args.jobs))
        comm.Barrier()
        ours.append(cluster_work_round(args.jobs, folder, settings))
    if comm.rank == 0:
        shutil.rmtree(folder, ignore_errors=True)
        workers = comm.size - 1
        f_wall = statistics.median(t[0] for t in futures_times)
        f_cpu = statistics.median(t[1] for t in futures_times)
        o_wall = statistics.median(t[0] for t in ours)
        o_cpu = statistics.median(t[1] for t in ours)
        print(f"scheduling: {args.jobs} jobs, {workers} workers, {args.rounds} rounds (medians), "
              f"{os.cpu_count()} cores, fsync={'on' if args.sync else 'off'}")
        print(f"  mpi4py.futures  wall/job {f_wall * 1e3:7.3f} ms   rank-0 CPU/job {f_cpu * 1e3:7.3f} ms")
        print(f"  cluster_work    wall/job {o_wall * 1e3:7.3f} ms   rank-0 CPU/job {o_cpu * 1e3:7.3f} ms")
        print(f"  ratio           wall {o_wall / f_wall:5.2f}x            rank-0 CPU {o_cpu / f_cpu:5.2f}x")


if __name__ == "__main__":
    main()

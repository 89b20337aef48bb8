"""Makespan efficiency on a heterogeneous sweep, against mpi4py.futures on the same jobs and workers.

    mpiexec -n 5 python -m mpi4py benchmarks/load_balance.py --jobs 100

Job lengths are drawn from a fixed-seed lognormal (mean `--mean` seconds per iteration, `--iterations`
iterations per job; iterations sleep, so oversubscribed cores do not distort them much).
Efficiency = max(total work / W, longest job) / measured makespan (1.0 is ideal).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

from cluster_work import ClusterWork
from cluster_work.backends.mpi import MPIExecutor
from cluster_work.expansion import expand_all
from cluster_work.planning import apply_plan, make_plan
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import OutcomeKind, RunSettings


def job_lengths(jobs: int, mean: float, sigma: float) -> list[float]:
    """Per-iteration seconds of each job: lognormal with the given mean, fixed seed."""
    rng = np.random.default_rng(2026)
    return list(rng.lognormal(np.log(mean) - sigma ** 2 / 2, sigma, jobs))


class Sleeper(ClusterWork):
    def reset(self, config, rep):
        self.seconds = config["params"]["lengths"][rep]

    def iterate(self, config, rep, n):
        time.sleep(self.seconds)
        return {"slept": self.seconds}


def sleep_job(seconds_and_iterations: tuple[float, int]) -> float:
    """The futures baseline's task; returns its wall time on the worker."""
    started = time.perf_counter()
    seconds, iterations = seconds_and_iterations
    for _ in range(iterations):
        time.sleep(seconds)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=5)
    parser.add_argument("--mean", type=float, default=0.05, help="mean seconds per iteration")
    parser.add_argument("--sigma", type=float, default=0.5, help="lognormal sigma of the job lengths")
    args = parser.parse_args()
    comm = MPI.COMM_WORLD
    workers = comm.size - 1
    lengths = job_lengths(args.jobs, args.mean, args.sigma)
    work = [seconds * args.iterations for seconds in lengths]
    ideal = max(sum(work) / max(workers, 1), max(work))

    with MPICommExecutor(comm, root=0) as executor:
        if executor is not None:
            started = time.perf_counter()
            futures_worker = sum(executor.map(sleep_job, [(s, args.iterations) for s in lengths]))
            futures_makespan = time.perf_counter() - started

    comm.Barrier()
    settings = RunSettings(log_level="WARNING")
    with MPIExecutor(ExperimentTask(Sleeper, settings), finalize=False) as executor:
        if executor is None:
            return
        folder = tempfile.mkdtemp(prefix="cw-balance-")
        try:
            document = {"name": "balance", "repetitions": args.jobs, "iterations": args.iterations,
                        "path": folder, "params": {"lengths": lengths}}
            plan = make_plan(expand_all([document]), Selection(), Policy(), "benchmark")
            apply_plan(plan)
            started = time.perf_counter()
            summary = run_segments(plan.jobs, executor)
            ours_makespan = time.perf_counter() - started
            assert summary.counts[OutcomeKind.FINISHED] == args.jobs, summary.counts
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    print(f"load_balance: {args.jobs} jobs x {args.iterations} iterations, lognormal mean {args.mean * 1e3:.0f} ms "
          f"sigma {args.sigma}, {workers} workers on {os.cpu_count()} cores"
          f"{' (oversubscribed)' if comm.size > (os.cpu_count() or 1) else ''}")
    print(f"  total work {sum(work):.2f} s, longest job {max(work):.2f} s, ideal makespan {ideal:.2f} s")
    ours_worker = summary.job_seconds
    # the worker's wall time per job beyond the sleeps themselves: what each framework adds where jobs run
    print(f"  mpi4py.futures  makespan {futures_makespan:6.2f} s   efficiency {ideal / futures_makespan:.3f}   "
          f"worker overhead {1e3 * (futures_worker - sum(work)) / args.jobs:.3f} ms/job")
    print(f"  cluster_work    makespan {ours_makespan:6.2f} s   efficiency {ideal / ours_makespan:.3f}   "
          f"worker overhead {1e3 * (ours_worker - sum(work)) / args.jobs:.3f} ms/job")


if __name__ == "__main__":
    main()

"""Files created and cost per job of a sweep of many one-iteration experiments, as a user's sweep runs: a grid of
N points (N experiments, cold folders: a fresh sweep folder every round), against mpi4py.futures in the same run.

    mpiexec -n 3 python -m mpi4py benchmarks/files_per_job.py --jobs 2000 --rounds 3 --folder /dev/shm

`--folder` picks the file system (this VM: /work is ext4, /dev/shm tmpfs). Each round runs, in turn:
`MPICommExecutor.map` of N empty tasks; the grid in the default layout (a folder per point and repetition);
the grid in the compact store (`store: compact`). Printed: the medians of wall time per job and its ratio to
futures', the CPU time of all ranks per job (rank 0's while the jobs ran, the workers' over the round) and its
ratio to futures' (what the frameworks cost, less swayed than the wall by other work on the machine), rank 0's
CPU per job, a job's own time on its worker (from its start to its outcome: store, runner,
experiment), and the files and folders each layout left in the sweep folder. The jobs are journaled (a run id),
as a user's run's are.

    python benchmarks/files_per_job.py --in-process [--profile] --jobs 2000 --rounds 5 --folder /dev/shm

runs the same grid's jobs in one process without MPI (the worker's own share of a job: store, runner,
experiment), and with `--profile` shows where its time goes.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time

from bench_experiments import NoOp
from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

from cluster_work.backends.mpi import MPIExecutor
from cluster_work.durability import committer
from cluster_work.expansion import expand_all
from cluster_work.planning import apply_plan, make_plan
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.sweep import run_segments
from cluster_work.task_context import TaskContext
from cluster_work.vocabulary import OutcomeKind, RunSettings


def empty_task(_):
    return 0.0


def futures_round(jobs: int) -> tuple[float, float, int, float] | None:
    with MPICommExecutor(MPI.COMM_WORLD, root=0) as executor:
        if executor is None:
            return None
        wall, cpu = time.perf_counter(), time.process_time()
        list(executor.map(empty_task, range(jobs)))
        return (time.perf_counter() - wall) / jobs, (time.process_time() - cpu) / jobs, 0, 0.0


def entries(folder: str) -> int:
    return sum(len(folders) + len(files) for _, folders, files in os.walk(folder))


def sweep_round(jobs: int, folder: str, layout: str, settings: RunSettings) -> tuple[float, float, int, float] | None:
    """The grid of `jobs` points, one repetition of one iteration each, in a sweep folder of its own."""
    side = int(jobs ** 0.5)
    document = {"name": "grid", "repetitions": 1, "iterations": 1, "path": folder,
                "grid": {"a": list(range(side)), "b": list(range(jobs // side))}}
    if layout == "compact":
        document["store"] = "compact"
    with MPIExecutor(ExperimentTask(NoOp, settings), finalize=False) as executor:
        if executor is None:
            return None
        plan = make_plan(expand_all([document]), Selection(), Policy(), "benchmark")
        apply_plan(plan)
        jobs = list(plan.jobs)
        wall, cpu = time.perf_counter(), time.process_time()  # the jobs only: planning is planning_scale.py's
        summary = run_segments(jobs, executor, run_id="benchmark")  # journaled, as a user's run is (attempts)
        seconds, used = time.perf_counter() - wall, time.process_time() - cpu
    assert summary.counts[OutcomeKind.FINISHED] == len(jobs), (summary.counts, summary.kept[:3])
    return seconds / len(jobs), used / len(jobs), entries(folder), summary.job_seconds / len(jobs)


def in_process(args: argparse.Namespace) -> None:
    """The worker's own share of a job, without MPI: the grid's jobs run by the task in this process, in batches
    of 64 prepared together (as an MPI leader runs them), min / median of the rounds; `--profile`: cProfile's
    30 costliest functions (by own time) of the last round."""
    import cProfile
    import pstats

    settings = RunSettings(log_level="WARNING")
    task = ExperimentTask(NoOp, settings)
    print(f"files_per_job --in-process: {args.jobs} one-iteration experiments, {args.rounds} rounds, in {args.folder}")
    for layout in args.layouts.split(","):
        times, profile = [], cProfile.Profile()
        for round_ in range(args.rounds):
            folder = tempfile.mkdtemp(prefix="cw-files-", dir=args.folder)
            side = int(args.jobs ** 0.5)
            document = {"name": "grid", "repetitions": 1, "iterations": 1, "path": os.path.join(folder, "out"),
                        "grid": {"a": list(range(side)), "b": list(range(args.jobs // side))},
                        **({"store": "compact"} if layout == "compact" else {})}
            plan = make_plan(expand_all([document]), Selection(), Policy(), "benchmark")
            apply_plan(plan)
            jobs = [dataclasses.replace(job, run_id="benchmark") for job in plan.jobs]
            profiling = args.profile and round_ == args.rounds - 1
            wall, cpu = time.perf_counter(), time.process_time()
            if profiling:
                profile.enable()
            for start in range(0, len(jobs), 64):
                batch = jobs[start:start + 64]
                task.prepare(batch)
                for job in batch:
                    assert task(job, TaskContext()).kind == OutcomeKind.FINISHED
            committer.commit()
            if profiling:
                profile.disable()
            times.append(((time.perf_counter() - wall) / len(jobs), (time.process_time() - cpu) / len(jobs)))
            shutil.rmtree(folder)
        walls, cpus = sorted(t[0] for t in times), sorted(t[1] for t in times)
        print(f"  {layout:8} wall {walls[0] * 1e6:6.1f} / {statistics.median(walls) * 1e6:6.1f} us/job, CPU "
              f"{cpus[0] * 1e6:6.1f} / {statistics.median(cpus) * 1e6:6.1f} us/job (min / median)")
        if profiling:
            pstats.Stats(profile).sort_stats("tottime").print_stats(30)


def _unless_gone(function, path: str, error: tuple) -> None:
    """rmtree's error handler for a round's folder: a file that another rank removed meanwhile is gone already
    (an empty fault log: `logs.held_fault_log` and `attempts_index.remove_dead_empty_fault_logs` remove them; seen
    in CI); anything else is raised."""
    if not isinstance(error[1], FileNotFoundError):
        raise error[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--folder", default=tempfile.gettempdir(), help="where the sweeps are written")
    parser.add_argument("--layouts", default="folders,compact", help="which layouts to run, comma-separated")
    parser.add_argument("--in-process", action="store_true", help="the jobs in this process, without MPI")
    parser.add_argument("--profile", action="store_true", help="with --in-process: where the time goes")
    args = parser.parse_args()
    if args.in_process:
        in_process(args)
        return
    comm = MPI.COMM_WORLD
    layouts = args.layouts.split(",")
    settings = RunSettings(log_level="WARNING")
    results: dict[str, list] = {"mpi4py.futures": [], **{layout: [] for layout in layouts}}

    def measured(label: str, phase, *phase_args) -> None:
        """Run `phase` on every rank; rank 0 keeps its figures and the CPU time its workers spent in it."""
        started = time.process_time()
        figures = phase(*phase_args)
        spent = comm.reduce(time.process_time() - started if comm.rank else 0.0, op=MPI.SUM, root=0)
        if comm.rank == 0:
            results[label].append((*figures, spent / args.jobs))

    for _ in range(args.rounds):
        comm.Barrier()
        measured("mpi4py.futures", futures_round, args.jobs)
        for layout in layouts:
            comm.Barrier()
            folder = comm.bcast(tempfile.mkdtemp(prefix="cw-files-", dir=args.folder) if comm.rank == 0 else None)
            measured(layout, sweep_round, args.jobs, os.path.join(folder, "out"), layout, settings)
            comm.Barrier()
            if comm.rank == 0:
                shutil.rmtree(folder, onerror=_unless_gone)
    if comm.rank != 0:
        return
    base = statistics.median(r[0] for r in results["mpi4py.futures"])
    base_min = min(r[0] for r in results["mpi4py.futures"])
    base_cpu = statistics.median(r[1] + r[4] for r in results["mpi4py.futures"])
    print(f"files_per_job: {args.jobs} one-iteration experiments, {comm.size - 1} workers, {args.rounds} rounds "
          f"(medians; the wall's min beside), in {args.folder}")
    for label, rounds in results.items():
        wall, cpu, worker, workers_cpu = (statistics.median(r[i] for r in rounds) for i in (0, 1, 3, 4))
        least = min(r[0] for r in rounds)
        all_cpu = statistics.median(r[1] + r[4] for r in rounds)
        made = rounds[-1][2]
        files = f"{made:7d} files+folders ({made / args.jobs:.2f} per job)" if label != "mpi4py.futures" else ""
        on_worker = f"on its worker {worker * 1e3:6.3f} ms" if label != "mpi4py.futures" else " " * 23
        print(f"  {label:16} {wall * 1e3:7.3f} ms/job ({wall / base:5.2f}x futures; min {least / base_min:5.2f}x)  "
              f"CPU of all ranks {all_cpu * 1e3:6.3f} ms/job ({all_cpu / base_cpu:5.2f}x), rank 0's {cpu * 1e3:6.3f}  "
              f"{on_worker}  {files}")


if __name__ == "__main__":
    main()

"""How planning, progress and loading scale: `python benchmarks/planning_scale.py`.

- expanding and planning 10^5 (experiment, repetition) jobs (a 1,000-point grid x 100 repetitions) and
  taking every job, as a run does, first on an empty folder, then with every experiment's config on
  disk: seconds and peak memory; and how soon a 10^6-point grid hands out its first job;
- `-p` (the progress table) over 10^4 finished repetitions (100 experiments x 100);
- `load_results` of those 10^4 repetitions x 100 iterations (10^6 rows), with pyarrow's reader where it is
  installed, then with the plain reader alone (as without pyarrow); pandas and pyarrow imported before.
Targets (issue 8): planning < 5 s and < 500 MB, -p < 2 s; (issue 15) load_results < 1 s.
"""
from __future__ import annotations

import argparse
import io
import os
import resource
import shutil
import tempfile
import time
from unittest import mock

from cluster_work import arrow_rows, load_results, results
from cluster_work.durability import committer
from cluster_work.expansion import expand_all
from cluster_work.planning import make_plan
from cluster_work.reporting import print_progress
from cluster_work.selection import Policy, Selection
from cluster_work.store import ExperimentStore, encode_row
from cluster_work.vocabulary import Record


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label: str, action) -> object:
    started = time.perf_counter()
    result = action()
    print(f"  {label:<58} {time.perf_counter() - started:6.2f} s   peak {peak_mb():6.0f} MB")
    return result


def import_readers() -> None:
    import pandas  # noqa: F401

    try:
        import pyarrow.json  # noqa: F401
    except ImportError:
        pass


def make_finished_sweep(folder: str, experiments: int, repetitions: int, iterations: int) -> list:
    """Write a finished sweep directly in the store's format (as a run would leave it)."""
    document = {"name": "big", "repetitions": repetitions, "iterations": iterations, "path": folder,
                "grid": {"p": list(range(experiments))}}
    expanded = expand_all([document])
    for experiment in expanded:
        store = ExperimentStore(experiment.path)
        store.write_config(experiment.config)
        for rep in range(repetitions):
            repetition = store.repetition(rep)
            repetition.create_folder()
            with open(repetition.results_file, "wb") as handle:
                handle.write(b"".join(encode_row({"iteration": n, "loss": 1 / (n + 1), "name": "x",
                                                  "iteration_time": 0.01, "repetition_time": 0.01 * n})
                                      for n in range(iterations)))
            repetition.write_status(Record.FINISHED, iterations_done=iterations, iterations=iterations,
                                    mean_iteration_time=0.01)
    return expanded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grid", type=int, default=1000, help="grid points of the planning sweep")
    parser.add_argument("--repetitions", type=int, default=100)
    parser.add_argument("--experiments", type=int, default=100, help="experiments of the finished sweep")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    root = tempfile.mkdtemp(prefix="cw-scale-")
    try:
        jobs = args.grid * args.repetitions
        print(f"planning_scale: {os.cpu_count()} cores")
        document = {"name": "plan", "repetitions": args.repetitions, "iterations": 10,
                    "path": os.path.join(root, "plan"), "params": {"model": {"width": 8}, "lr": 0.1},
                    "grid": {"lr": [round(0.001 * (k + 1), 6) for k in range(args.grid)]}}
        expanded = timed(f"expand {args.grid} grid points", lambda: expand_all([document]))

        def plan_and_list_jobs() -> list:  # what a run does: plan, then take every job
            return list(make_plan(expanded, Selection(), Policy(), "benchmark").jobs)

        assert len(timed(f"plan and take {jobs} jobs (nothing on disk)", plan_and_list_jobs)) == jobs
        timed(f"write {args.grid} experiment configs (a run's first jobs do)",
              lambda: [ExperimentStore(e.path).write_config(e.config) for e in expanded])
        assert len(timed(f"plan and take {jobs} jobs again (configs on disk)", plan_and_list_jobs)) == jobs
        big = {"name": "huge", "repetitions": 1, "iterations": 1, "path": os.path.join(root, "huge"),
               "grid": {"a": list(range(100)), "b": list(range(100)), "c": list(range(100))}}
        huge = make_plan(expand_all([big]), Selection(), Policy(), "benchmark")
        timed("first job of a 10^6-point grid (expand, plan, take one)",
              lambda: next(iter(make_plan(expand_all([big]), Selection(), Policy(), "benchmark").jobs)))
        assert len(huge.jobs) == 10**6
        reps = args.experiments * args.repetitions
        finished = os.path.join(root, "finished")
        print(f"  (writing a finished sweep of {reps} repetitions x {args.iterations} iterations...)")
        sweep = make_finished_sweep(finished, args.experiments, args.repetitions, args.iterations)
        committer.commit()  # as a run ends: no group commit left syncing while the reads below are timed
        timed(f"-p over {reps} finished repetitions",
              lambda: print_progress(sweep, full=False, stream=io.StringIO()))
        timed("import pandas and pyarrow (once in a process)", import_readers)
        frame = timed(f"load_results of {reps} repetitions x {args.iterations} iterations",
                      lambda: load_results(finished))
        assert len(frame) == reps * args.iterations
        with mock.patch.object(results, "_fast_reader", lambda: arrow_rows.Reader(None)):
            plain = timed("the same with the plain reader alone (as without pyarrow)", lambda: load_results(finished))
        assert plain.equals(frame)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

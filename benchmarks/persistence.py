"""Cost of saving one iteration, as a repetition grows: `python benchmarks/persistence.py`.

Runs one repetition of 100, 1,000 and 10,000 no-op iterations through cluster_work's runner (iterate,
seed, append one JSON row) and, as a baseline in the same run, the original ClusterWork's way of saving
(one pandas row appended to a CSV file per iteration). Prints the per-iteration cost of each (median
of `--rounds`), the 10,000 / 1,000 ratio (flat means <= 10.5x), and the files and bytes per row.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import pandas as pd

from cluster_work import ClusterWork
from cluster_work.expansion import expand_all
from cluster_work.runner import run_segment
from cluster_work.vocabulary import RunSettings, Segment

SIZES = (100, 1000, 10000)


class NoOp(ClusterWork):
    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        return {"loss": 1.0 / (n + 1), "accuracy": 0.5, "epoch": n}


def cluster_work_seconds(iterations: int, folder: str) -> float:
    [experiment] = expand_all([{"name": f"noop{iterations}", "repetitions": 1, "iterations": iterations,
                                "path": folder}])
    started = time.perf_counter()
    outcome = run_segment(NoOp, Segment(0, experiment, 0), RunSettings(log_level="WARNING"))
    elapsed = time.perf_counter() - started
    assert outcome.iterations_run == iterations, outcome
    return elapsed


def original_seconds(iterations: int, folder: str) -> float:
    """The original's saving: a one-row DataFrame appended to the repetition's CSV every iteration."""
    path = os.path.join(folder, f"original{iterations}.csv")
    experiment = NoOp()
    started = time.perf_counter()
    for n in range(iterations):
        row = experiment.iterate({}, 0, n)
        frame = pd.DataFrame([row], index=pd.MultiIndex.from_tuples([(0, n)], names=["r", "i"]))
        frame.to_csv(path, mode="a", header=n == 0)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES))
    args = parser.parse_args()
    per_iteration: dict[tuple[str, int], float] = {}
    for size in args.sizes:
        for name, measure in (("cluster_work", cluster_work_seconds), ("original CSV", original_seconds)):
            times = []
            for _ in range(args.rounds):
                folder = tempfile.mkdtemp(prefix="cw-persist-")
                times.append(measure(size, folder))
                if name == "cluster_work" and size == args.sizes[-1]:
                    log = os.path.join(folder, f"noop{size}", "log")
                    files = sorted(os.listdir(log))
                    row_bytes = os.path.getsize(os.path.join(log, "rep_00.jsonl")) / size
                shutil.rmtree(folder)
            per_iteration[name, size] = statistics.median(times) / size
    print(f"persistence: one repetition, median of {args.rounds} rounds, {os.cpu_count()} cores")
    print(f"  {'iterations':>10} {'cluster_work ms/it':>19} {'original CSV ms/it':>19} {'speed-up':>9}")
    for size in args.sizes:
        ours, original = per_iteration["cluster_work", size], per_iteration["original CSV", size]
        print(f"  {size:>10} {ours * 1e3:>19.4f} {original * 1e3:>19.4f} {original / ours:>8.1f}x")
    if len(args.sizes) > 1:
        small, large = args.sizes[-2], args.sizes[-1]
        ratio = per_iteration["cluster_work", large] * large / (per_iteration["cluster_work", small] * small)
        print(f"  total cost {large} / {small} iterations: {ratio:.2f}x (flat: {large / small * 1.05:.1f}x or less)")
    print(f"  files per repetition: {len(files)} ({', '.join(files)}); bytes per row: {row_bytes:.0f}")


if __name__ == "__main__":
    main()

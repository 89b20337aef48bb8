"""Rank 0's decision cost per result of a steered campaign, as the campaign grows.

    python benchmarks/steering.py --sizes 1000 100000

For each size N: a document of N points (1 repetition, 1 iteration each) steered by a no-op user
policy; `Steering.start()` asks for N runs, then N outcomes are fed to `on_outcome` as the engine
would (each with its metric value), journal on (fsynced commits). Printed: the cost per result (wall
and CPU) and results per second, their ratio to the smallest size (flat: close to 1), the cost of
resuming (replaying the journal of N results), and, for comparison, successive halving on the same
points. The issue asks for >= 2,000 results/s, flat as the campaign grows.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from cluster_work.config import merge_and_validate  # noqa: E402
from cluster_work.expansion import expand_all  # noqa: E402
from cluster_work.steering import Journal, Policy, Run, Steering, check_steer_block, journal_path  # noqa: E402
from cluster_work.vocabulary import Outcome, OutcomeKind  # noqa: E402


class NoOp(Policy):
    """Told every result, decides nothing."""


def document(folder: str, size: int, iterations: int):
    experiment = {"name": "bench", "repetitions": 1, "iterations": iterations, "path": folder,
                  "grid": {"c": list(range(size))}}
    validated = merge_and_validate([experiment], "bench.yml", warn=lambda message: None)
    return expand_all(validated, source="bench.yml", warn=lambda message: None).documents[0]


def campaign(size: int, block: dict, iterations: int = 1) -> tuple[float, float, int, float, float]:
    """(wall s per result, CPU s per result, results, start wall s, resume wall s) of a campaign of `size`
    points: the cost per result is that of `on_outcome` and what it decides; `start` (asking for the first
    runs) is timed apart."""
    folder = tempfile.mkdtemp(prefix="steering-bench-")
    try:
        expanded = document(folder, size, iterations)
        spec = check_steer_block(block, "bench.yml", "bench")
        path = journal_path(expanded.base_folder)
        started = time.perf_counter()
        steering = Steering(spec, expanded, Journal(path))
        pending = [a for a in steering.start() if isinstance(a, Run)]
        started = time.perf_counter() - started
        wall, cpu = time.perf_counter(), time.process_time()
        results = 0
        while pending:
            run = pending.pop()
            c = run.experiment.varied[("c",)]
            values = [{"iteration": n, "loss": (c * 7919 % size) + 1 / (n + 1)} for n in range(run.until)]
            kind = OutcomeKind.FINISHED if run.until == iterations else OutcomeKind.REACHED
            actions = steering.on_outcome(Outcome(run.job, "", kind, iterations_done=run.until, values=values))
            pending.extend(a for a in actions if isinstance(a, Run))
            results += 1
        steering.close()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        resume = time.perf_counter()
        Steering(spec, expanded, Journal(path)).start()
        return wall / results, cpu / results, results, started, time.perf_counter() - resume
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--rounds", type=int, default=3, help="rounds at sizes up to 10^4 (one above)")
    args = parser.parse_args()
    cases = [("no-op policy", {"policy": "__main__:NoOp", "metric": "loss"}, 1),
             ("successive halving", {"policy": "successive_halving", "metric": "loss"}, 27)]
    for label, block, iterations in cases:
        print(f"{label} ({iterations} iteration{'s' if iterations > 1 else ''} per point):")
        base = None
        for size in args.sizes:
            if iterations > 1 and size > 10**4:
                continue
            rounds = [campaign(size, block, iterations) for _ in range(args.rounds if size <= 10**4 else 1)]
            wall = statistics.median(r[0] for r in rounds)
            cpu = statistics.median(r[1] for r in rounds)
            results, start = rounds[0][2], statistics.median(r[3] for r in rounds)
            resume = statistics.median(r[4] for r in rounds)
            base = base or wall
            print(f"  {size:>8,} points, {results:>8,} results: {wall * 1e6:7.1f} us/result wall, "
                  f"{cpu * 1e6:7.1f} us CPU, {1 / wall:>9,.0f} results/s, x{wall / base:.2f} of the smallest; "
                  f"start {start:.2f} s, resume (replay) {resume:.2f} s")


if __name__ == "__main__":
    main()

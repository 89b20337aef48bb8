"""Rank 0's decision cost per result of a steered campaign, as the campaign grows.

    python benchmarks/steering.py --sizes 1000 100000

For each size N: a document of N points (1 repetition, 1 iteration each) steered by a no-op user
policy; `Steering.start()` asks for N runs, then N outcomes are fed to `on_outcome` as the engine
would (each with its metric value), journal on (fsynced commits). Printed: the cost per result (wall
and CPU) and results per second, their ratio to the smallest size (flat: close to 1), the cost of
resuming (replaying the journal of N results), and, for comparison, successive halving on the same
points. Then the same no-op campaign through the real engine (`sweep.run_segments` -> `campaign.drive` ->
the steered campaign's driver -> `Steering`, on the SequentialExecutor, whose task answers each segment at
once with its metric, so that only rank 0's work is timed: segments made, outcomes taken, journal written).
The issue asks for >= 2,000 results/s, flat as the campaign grows. Last, planning such a campaign on the compact
store (`make_plan`: through the store's index, new and done points in bulk), fresh and with every other point done.
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

from cluster_work.backends.sequential import SequentialExecutor  # noqa: E402
from cluster_work.config import merge_and_validate  # noqa: E402
from cluster_work.expansion import expand_all  # noqa: E402
from cluster_work.planning import CampaignPlan  # noqa: E402
from cluster_work.steering import Journal, Policy, Run, Steering, check_steer_block, journal_path  # noqa: E402
from cluster_work.steering.campaign import SteeredCampaign  # noqa: E402
from cluster_work.sweep import run_segments  # noqa: E402
from cluster_work.vocabulary import Outcome, OutcomeKind, RunSettings, Segment  # noqa: E402


class NoOp(Policy):
    """Told every result, decides nothing."""


def document(folder: str, size: int, iterations: int, steer: dict | None = None):
    experiment = {"name": "bench", "repetitions": 1, "iterations": iterations, "path": folder,
                  "grid": {"c": list(range(size))}, **({"steer": steer} if steer else {})}
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


def answer(segment: Segment, context: object) -> Outcome:
    """The task of the engine run: every segment ends at once, with the metric of its last iteration."""
    c, until = segment.experiment.varied[("c",)], segment.target
    values = [{"iteration": n, "loss": c % 97 + 1 / (n + 1)} for n in range(until)]
    return Outcome(segment.index, segment.label, OutcomeKind.FINISHED, iterations_done=until, iterations_run=until,
                   values=values)


def through_the_engine(size: int) -> tuple[float, float, int]:
    """(wall s per result, CPU s per result, results) of a no-op campaign of `size` points run by the engine."""
    folder = tempfile.mkdtemp(prefix="steering-engine-bench-")
    try:
        expanded = document(folder, size, 1, steer={"policy": "__main__:NoOp", "metric": "loss"})
        driver = SteeredCampaign(CampaignPlan("steer", expanded), RunSettings())
        wall, cpu = time.perf_counter(), time.process_time()
        with SequentialExecutor(answer) as executor:
            run_segments([], executor, campaigns=[driver])
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        assert driver.exit_status() == 0 and driver.complete, driver.summary_line()
        return wall / size, cpu / size, size
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def planning(size: int) -> tuple[float, float]:
    """CPU seconds of planning (`make_plan`) a steered campaign of `size` points (rounded up to 100s) on the compact
    store: fresh, then with every other point done (its store's segment written as a run leaves it, and its index,
    as that run's end writes it)."""
    from planning_scale import write_half_done_compact

    from cluster_work import compact_index
    from cluster_work.planning import make_plan
    from cluster_work.selection import Policy as Options
    from cluster_work.selection import Selection

    rows = -(-size // 100)
    folder = tempfile.mkdtemp(prefix="steering-plan-")
    steer = {"policy": "successive_halving", "metric": "x", "min_iterations": 1, "reduction_factor": 3}
    try:
        figures = []
        for half_done in (False, True):
            path = os.path.join(folder, f"half{half_done}")
            document = {"name": "half", "repetitions": 1, "iterations": 1, "path": path, "store": "compact",
                        "grid": {"a": list(range(rows)), "b": list(range(100))}}
            if half_done:
                document, root = write_half_done_compact(path, rows, False)
                compact_index.refresh(root)
            validated = merge_and_validate([{**document, "steer": steer}], "bench.yml", warn=lambda message: None)
            expanded = expand_all(validated, source="bench.yml", warn=lambda message: None)
            cpu = time.process_time()
            make_plan(expanded, Selection(), Options(), "bench.yml")
            figures.append(time.process_time() - cpu)
        return figures[0], figures[1]
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
    print("no-op policy through the engine (run_segments, campaign.drive, SequentialExecutor answering at once):")
    base = None
    for size in args.sizes:
        rounds = [through_the_engine(size) for _ in range(args.rounds if size <= 10**4 else 1)]
        wall, cpu = statistics.median(r[0] for r in rounds), statistics.median(r[1] for r in rounds)
        base = base or wall
        print(f"  {size:>8,} points, {size:>8,} results: {wall * 1e6:7.1f} us/result wall, {cpu * 1e6:7.1f} us CPU, "
              f"{1 / wall:>9,.0f} results/s, x{wall / base:.2f} of the smallest")
    print("planning a steered campaign on the compact store (make_plan), CPU:")
    for size in args.sizes:
        fresh, half_done = planning(size)
        print(f"  {-(-size // 100) * 100:>8,} points: fresh {fresh:6.2f} s, every other point done {half_done:6.2f} s")


if __name__ == "__main__":
    main()

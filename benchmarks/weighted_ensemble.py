"""Framework cost of a weighted ensemble per walker-iteration: `python benchmarks/weighted_ensemble.py`.

Runs 800 walkers (80 bins x 10 walkers) of a trivial `iterate` for a few hundred iterations, in this
process, through the real worker (`run_walker_block`), driver (resample, commit) and store, and prints
per walker-iteration (median of `--rounds`):

- baseline: the loop a hand-written WE must run anyway (set_state, iterate, get_state per walker);
- worker: `run_walker_block` beyond that baseline (seeds, pickled states, rows, timing);
- driver: collecting, resampling and committing an iteration (rank 0's share, sequential under MPI);
- transport: pickling blocks and outcomes both ways, as `-n` and MPI do;
- the total, the store's bytes per walker-iteration and files, and fsync per commit;
- one append-only file (cluster_work's) against one file per iteration (temporary, fsync, rename);
- the whole ensemble through the engine a run uses (its campaign driver, `campaign.drive`, `ExperimentTask`
  and an executor: this process, and 2 local worker processes as `-n 2` runs it), wall time per
  walker-iteration, iterate included; in this process also its CPU time, and both again with the global
  generators seeded before every segment (as a class that draws from them is, and every class was before
  issue 25: the baseline of the lazy seeding; the rounds alternate, so that both see the same load).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import pickle
import shutil
import statistics
import tempfile
import time
from collections.abc import Iterator

from cluster_work import ClusterWork, seeding
from cluster_work.backends import LocalProcessExecutor, SequentialExecutor
from cluster_work.backends.base import TaskContext
from cluster_work.campaign import drive
from cluster_work.ensemble import EnsembleStore, WeightedEnsemble, check_ensemble_block, run_walker_block
from cluster_work.ensemble.campaign import EnsembleCampaign
from cluster_work.ensemble.store import encode, ensemble_file, read_records
from cluster_work.expansion import expand_all
from cluster_work.runner import ExperimentTask
from cluster_work.seeding import seed_global_generators
from cluster_work.store import atomic_write
from cluster_work.vocabulary import RunSettings


class Drift(ClusterWork):
    """A trivial segment: a walker steps through 0..99, so every bin stays occupied."""

    def reset(self, config, rep):
        self.x = rep % 100

    def iterate(self, config, rep, n):
        self.x = (self.x + 1 + rep % 3) % 100
        return {"pcoord": self.x}

    def get_state(self):
        return self.x

    def set_state(self, state):
        self.x = state


def baseline_seconds(blocks: list, config: dict) -> float:
    instance = Drift()
    instance.reset(config, 0)
    started = time.perf_counter()
    for block in blocks:
        for walker, state in block.walkers:
            if state is not None:
                instance.set_state(pickle.loads(state))
            instance.iterate(config, walker, block.iteration)
            pickle.dumps(instance.get_state())
    return time.perf_counter() - started


def ensemble_block(walkers: int) -> dict:
    return {"walkers": walkers, "coordinate": "pcoord", "bins": {"uniform": [0, 100, 80]},
            "walkers_per_bin": max(1, walkers // 80), "seed": 1}


def one_round(walkers: int, iterations: int, workers: int, sync: bool, folder: str) -> dict[str, float]:
    [experiment] = expand_all([{"name": "drift", "repetitions": 1, "iterations": iterations, "path": folder}])
    spec = check_ensemble_block(ensemble_block(walkers), "bench.yml", "drift")
    store = EnsembleStore(experiment.path, sync=sync)
    driver = WeightedEnsemble(spec, experiment, store, workers=workers)
    times = {"baseline": 0.0, "worker": 0.0, "driver": 0.0, "transport": 0.0, "commit": 0.0}
    segments = 0
    commit = store.commit

    def timed_commit(record):
        began = time.perf_counter()
        commit(record)
        times["commit"] += time.perf_counter() - began

    store.commit = timed_commit  # type: ignore[method-assign]
    started = time.perf_counter()
    blocks = driver.start()
    while blocks:
        times["baseline"] += baseline_seconds(blocks, experiment.config)
        next_blocks = []
        for block in blocks:
            began = time.perf_counter()
            outcome = run_walker_block(Drift, block, TaskContext())
            times["worker"] += time.perf_counter() - began
            began = time.perf_counter()
            pickle.loads(pickle.dumps(block)), pickle.loads(pickle.dumps(outcome))
            times["transport"] += time.perf_counter() - began
            segments += len(block.walkers)
            began = time.perf_counter()
            next_blocks += driver.on_outcome(outcome)
            times["driver"] += time.perf_counter() - began
        blocks = next_blocks
    times["total"] = time.perf_counter() - started - times["baseline"] - times["transport"]
    assert driver.finished, driver.error
    times["worker"] -= times["baseline"]
    times["bytes"] = os.path.getsize(ensemble_file(experiment.path))
    times["files"] = len(os.listdir(os.path.dirname(ensemble_file(experiment.path))))
    times["segments"] = segments
    return times


@contextlib.contextmanager
def seeded_eagerly(eager: bool) -> Iterator[None]:
    """Drift's walkers seeded before every segment, as those of a class seen drawing from the generators."""
    if eager:
        seeding._DRAWS_FROM_GLOBALS.add(Drift)
    try:
        yield
    finally:
        seeding._DRAWS_FROM_GLOBALS.discard(Drift)


def engine_seconds(walkers: int, iterations: int, workers: int, folder: str) -> tuple[float, int]:
    """Wall seconds of the whole ensemble (fsync off) through the engine of a run, and its walker-iterations."""
    [experiment] = expand_all([{"name": "drift", "repetitions": 1, "iterations": iterations, "path": folder,
                                "ensemble": ensemble_block(walkers)}])
    settings = RunSettings(sync=False)
    task = ExperimentTask(Drift, settings)
    with SequentialExecutor(task) if workers == 1 else LocalProcessExecutor(task, workers) as executor:
        driver = EnsembleCampaign(experiment, None, settings, executor.workers)
        started = time.perf_counter()
        drive(driver, executor)
        seconds = time.perf_counter() - started
    driver.close()
    assert driver.exit_status() == 0, driver.summary_line()
    return seconds, sum(record.walkers for record in read_records(experiment.path))


def commit_formats(walkers: int, folder: str) -> tuple[float, float]:
    """Seconds per iteration (fsync included) to append a frame to one file, and to write it as a file of
    its own (temporary, fsync, rename), for the frames of a short ensemble."""
    one_round(walkers, 30, 1, False, folder)
    records = list(read_records(os.path.join(folder, "drift"), with_states=True))
    appended = EnsembleStore(os.path.join(folder, "again"), sync=True)
    appended.open()
    started = time.perf_counter()
    for record in records:
        appended.commit(record)
    append_seconds = (time.perf_counter() - started) / len(records)
    appended.close()
    started = time.perf_counter()
    for record in records:
        atomic_write(os.path.join(folder, f"iteration_{record.iteration:06d}.bin"), encode(record), sync=True)
    return append_seconds, (time.perf_counter() - started) / len(records)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--walkers", type=int, default=800)
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--workers", type=int, default=1, help="blocks are sized for this many workers")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[bool, list[dict[str, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for sync in (False, True):
            folder = tempfile.mkdtemp(prefix="cw_we_bench_")
            try:
                results[sync].append(one_round(args.walkers, args.iterations, args.workers, sync, folder))
            finally:
                shutil.rmtree(folder)
    runs = results[False]
    segments = runs[0]["segments"]

    def per_segment(key: str, which: list[dict[str, float]] = runs) -> float:
        return statistics.median(r[key] for r in which) / segments * 1e6

    print(f"{args.walkers} walkers x {args.iterations} iterations = {segments:,} walker-iterations, "
          f"blocks for {args.workers} worker(s), median of {args.rounds} round(s); microseconds per walker-iteration:")
    print(f"  baseline (set_state, iterate, get_state; not framework): {per_segment('baseline'):6.2f}")
    print(f"  worker, beyond the baseline:                             {per_segment('worker'):6.2f}")
    seeding = timeit_us(lambda: seed_global_generators(3735928559))
    print(f"    of which seeding random and numpy's global generators: {seeding:6.2f}")
    print(f"  driver (collect, resample, commit):                      {per_segment('driver'):6.2f}")
    print(f"    of which the commit (no fsync):                        {per_segment('commit'):6.2f}")
    framework = per_segment("worker") + per_segment("driver")
    print(f"  framework (worker beyond the baseline + driver):         {framework:6.2f}")
    print(f"  everything, iterate included (wall time of the loop):    {per_segment('total'):6.2f}")
    print(f"  transport (pickle block and outcome both ways, -n/MPI):  {per_segment('transport'):6.2f}")
    fsync_ms = statistics.median(r["commit"] for r in results[True]) / args.iterations * 1e3
    print(f"commit with fsync (the default): {fsync_ms:.2f} ms per iteration; store: "
          f"{runs[0]['bytes'] / segments:.1f} bytes per walker-iteration in {int(runs[0]['files'])} file(s)")
    folder = tempfile.mkdtemp(prefix="cw_we_bench_")
    try:
        append, per_file = commit_formats(args.walkers, folder)
    finally:
        shutil.rmtree(folder)
    print(f"commit with fsync, one append-only file: {append * 1e3:.2f} ms per iteration; one file per iteration "
          f"(temporary, fsync, rename): {per_file * 1e3:.2f} ms")
    variants = ((1, False), (1, True), (2, False))  # (-n 2's worker processes learn by themselves what draws)
    walls: dict[tuple[int, bool], list[float]] = {variant: [] for variant in variants}
    cpus: dict[tuple[int, bool], list[float]] = {variant: [] for variant in variants}
    for _ in range(args.rounds):  # the variants alternate round by round: each sees the same load
        for workers, eager in variants:
            folder = tempfile.mkdtemp(prefix="cw_we_bench_")
            try:
                with seeded_eagerly(eager):
                    began = time.process_time()
                    seconds, walker_iterations = engine_seconds(args.walkers, args.iterations, workers, folder)
                    cpus[workers, eager].append((time.process_time() - began) / walker_iterations * 1e6)
            finally:
                shutil.rmtree(folder)
            walls[workers, eager].append(seconds / walker_iterations * 1e6)
    engine = {variant: (min(times), statistics.median(times)) for variant, times in walls.items()}
    cpu = {variant: (min(times), statistics.median(times)) for variant, times in cpus.items()}
    print("through the engine of a run (campaign driver, campaign.drive, ExperimentTask, executor; no fsync), "
          "per walker-iteration, iterate included, min / median:")
    for eager, how in ((False, "lazily seeded (a class that never draws)"), (True, "seeded before every segment")):
        (low, wall), (cpu_low, cpu_median) = engine[1, eager], cpu[1, eager]
        print(f"  this process, {how:<41} wall {low:6.2f} / {wall:6.2f}  CPU {cpu_low:6.2f} / {cpu_median:6.2f}"
              f"  (framework beyond the baseline, CPU: {cpu_low - per_segment('baseline'):.2f})")
    low, wall = engine[2, False]
    print(f"  2 local worker processes (-n 2), lazily seeded      wall {low:6.2f} / {wall:6.2f}  (rank 0's share "
          "sequential, pickling both ways)")
    seconds = per_segment("total") * 800 * 3000 / 1e6
    print(f"800 walkers x 3000 iterations of this iterate: {seconds:.0f} s in one process, "
          f"{engine[2, False][1] * 800 * 3000 / 1e6:.0f} s through the engine with -n 2")


def timeit_us(function, number: int = 20000) -> float:
    started = time.perf_counter()
    for _ in range(number):
        function()
    return (time.perf_counter() - started) / number * 1e6


if __name__ == "__main__":
    main()

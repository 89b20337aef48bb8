"""Cost of exporting a row to each tracker: `python benchmarks/export.py`.

Writes a sweep of `--repetitions` repetitions x `--iterations` rows (5 numeric columns each) with the
store's own writer, then exports it in this process with each tracker (MLflow into a local SQLite URI,
or `--tracking-uri` of a running server; TensorBoard event files; W&B offline runs) and prints rows/s and
microseconds per row of the first pass, and the cost per repetition of a second pass that finds nothing
new (what following a finished sweep costs). Also the watch alone: one poll over `--watch` repetitions.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from cluster_work.compact_store import CompactExperimentStore
from cluster_work.export.engine import Exporter
from cluster_work.export.source import Watch
from cluster_work.export.spec import make_tracker
from cluster_work.paths import compact_root
from cluster_work.store import ExperimentStore
from cluster_work.vocabulary import Record


def write_sweep(root: str, repetitions: int, iterations: int, per_experiment: int = 4, layout: str = "folders",
                ) -> None:
    for rep_index in range(0, repetitions, per_experiment):
        experiment = rep_index // per_experiment
        name, folder = f"bench__p{experiment}", os.path.join(root, "bench", f"p{experiment}")
        config = {"name": name, "experiment_name": "bench", "iterations": iterations,
                  "params": {"lr": 0.1 * experiment, "model": {"width": 8}}, "path": folder}
        store: ExperimentStore | CompactExperimentStore = ExperimentStore(folder)
        if layout == "compact":
            store = CompactExperimentStore(compact_root(os.path.join(root, "bench")), name, folder,
                                           config["params"], "bench")
        store.write_config(config, sync=False)
        for rep in range(min(per_experiment, repetitions - rep_index)):
            writer = store.repetition(rep).open_writer()
            for n in range(iterations):
                writer.append({"iteration": n, "loss": 1.0 / (n + 1), "accuracy": n / iterations, "epoch": n,
                               "iteration_time": 0.001, "repetition_time": 0.001 * (n + 1)})
            writer.close(sync=False)
            store.repetition(rep).write_status(Record.FINISHED, sync=False, iterations_done=iterations,
                                               iterations=iterations)


def measure(kind: str, options: dict, sweep: str, rows: int, repetitions: int, layout: str) -> str:
    warm = os.path.join(os.path.dirname(sweep), "warm-up")  # the tracker's imports and services, untimed
    write_sweep(warm, 1, 1, layout=layout)
    warming = Exporter(make_tracker(kind, options), [(warm, None)])
    warming.open()
    warming.catch_up(time.monotonic() + 600)
    warming.close()
    exporter = Exporter(make_tracker(kind, options), [(sweep, None)])
    exporter.open()
    started = time.perf_counter()
    assert exporter.catch_up(time.monotonic() + 600), f"{kind}: rows left"
    first = time.perf_counter() - started
    assert exporter.totals.rows == rows, (kind, exporter.totals.rows, rows)
    started = time.perf_counter()
    exporter.catch_up(time.monotonic() + 60)
    second = time.perf_counter() - started
    exporter.close()
    return (f"{kind:<12} {rows / first:>10,.0f} rows/s  {first / rows * 1e6:>8.1f} us/row   "
            f"nothing new: {second / repetitions * 1e6:>7.1f} us/repetition")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=40)
    parser.add_argument("--iterations", type=int, default=500)
    parser.add_argument("--trackers", nargs="+", default=["mlflow", "tensorboard", "wandb"])
    parser.add_argument("--tracking-uri", help="an MLflow server to measure against (default: a local SQLite file)")
    parser.add_argument("--watch", type=int, default=100_000, help="repetitions for the watch's poll (0: skip)")
    parser.add_argument("--store", choices=["folders", "compact"], default="folders",
                        help="the sweep's layout: a folder per point (the default) or the compact store")
    args = parser.parse_args()
    rows = args.repetitions * args.iterations
    print(f"{args.repetitions} repetitions x {args.iterations} rows (5 numeric columns) = {rows:,} rows, "
          f"store: {args.store}")
    for kind in args.trackers:
        folder = tempfile.mkdtemp(prefix=f"cw-export-{kind}-")
        try:
            sweep = os.path.join(folder, "sweep")
            write_sweep(sweep, args.repetitions, args.iterations, layout=args.store)
            options = {"tracking_uri": args.tracking_uri or f"sqlite:///{folder}/mlflow.db"} if kind == "mlflow" else {}
            print(measure(kind, options, sweep, rows, args.repetitions, args.store)
                  + (f"   ({options['tracking_uri'].split(':')[0]})" if kind == "mlflow" else ""), flush=True)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    if args.watch:
        folder = tempfile.mkdtemp(prefix="cw-export-watch-")
        try:
            write_sweep(folder, args.watch, 1, per_experiment=10, layout=args.store)
            watch = Watch([(folder, None)])
            started = time.perf_counter()
            found = sum(1 for _ in watch.poll(now=0.0))
            first = time.perf_counter() - started
            polls, started = 10, time.perf_counter()
            looked = sum(sum(1 for _ in watch.poll(now=float(i))) for i in range(1, polls + 1))
            steady = (time.perf_counter() - started) / polls
            if args.store == "compact":  # it looks at the repetitions with new events only: none here
                print(f"watch over {found:,} repetitions: first look {first:.2f} s; then {steady * 1e3:.2f} ms a "
                      f"poll looking at {looked // polls:,} of them (those with new events)")
            else:
                print(f"watch over {found:,} repetitions: first look {first:.2f} s; then {steady * 1e3:.1f} ms a "
                      f"poll looking at {looked // polls:,} of them (the budget), all of them every "
                      f"{found / max(1, looked // polls):.0f} polls")
        finally:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Cost of the attempts journal (what quarantine decides from): `python benchmarks/attempts.py`.

Per job, in one process: the journal's two lines alone (begin, end), and whole one-iteration jobs through
cluster_work's runner with the journal on (segments stamped with a run id) and off (not stamped), one of each
in turn, median of `--rounds`; then what a rerun's planning pays to read the journals: `--processes` dead journals
of `--jobs` / `--processes` jobs each (every one closed but the last), with and without a suspect.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import tempfile
import time

from cluster_work import ClusterWork
from cluster_work.attempts import AttemptJournal, read_index
from cluster_work.backends.base import TaskContext
from cluster_work.expansion import expand_all
from cluster_work.runner import run_segment
from cluster_work.vocabulary import RunSettings, Segment

RUN = "0123456789ab"


class NoOp(ClusterWork):
    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        return {"loss": 1.0}


def segments(folder: str, jobs: int, run_id: str) -> list[Segment]:
    [experiment] = expand_all([{"name": "noop", "repetitions": jobs, "iterations": 1, "path": folder}])
    return [Segment(rep, experiment, rep, run_id=run_id) for rep in range(jobs)]


def journal_alone(jobs: int, folder: str) -> float:
    journal = AttemptJournal()
    items = segments(folder, jobs, RUN)
    started = time.perf_counter()
    for segment in items:
        journal.begin(segment, 0)
        journal.end(segment)
    elapsed = time.perf_counter() - started
    journal.release(RUN)
    return elapsed / jobs


def whole_jobs(jobs: int, folder: str) -> tuple[float, float]:
    """Seconds per job with the journal on and off, the two kinds alternating (the machine's noise is shared)."""
    context = TaskContext(attempts=AttemptJournal())
    settings = RunSettings(sync=False)
    seconds = {True: 0.0, False: 0.0}
    for segment in segments(folder, jobs, RUN):
        stamped = segment.rep % 2 == 0
        item = segment if stamped else dataclasses.replace(segment, run_id="")
        started = time.perf_counter()
        run_segment(NoOp, item, settings, context)
        seconds[stamped] += time.perf_counter() - started
    context.attempts.release(RUN)
    return seconds[True] / (jobs // 2), seconds[False] / (jobs - jobs // 2)


def reading(folder: str, jobs: int, processes: int, suspect: bool) -> float:
    attempts = os.path.join(folder, ".cluster_work_attempts")
    os.makedirs(attempts, exist_ok=True)
    per = jobs // processes
    for pid in range(processes):
        with open(os.path.join(attempts, f"{RUN}.host.{pid}"), "w") as handle:
            for rep in range(per):
                handle.write(f'begin 1.0 {rep} 0 "noop__{pid}"\nend 1.0 {rep} "noop__{pid}"\n')
            if suspect and pid == 0:
                handle.write(f'begin 2.0 0 0 "noop__{pid}"\n')
    started = time.perf_counter()
    index = read_index(folder)
    elapsed = time.perf_counter() - started
    assert len(index.suspects) == int(suspect)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--processes", type=int, default=100)
    parser.add_argument("--read-jobs", type=int, default=100_000)
    args = parser.parse_args()
    alone, on, off = [], [], []
    for _ in range(args.rounds):
        folder = tempfile.mkdtemp(prefix="cw-attempts-")
        alone.append(journal_alone(args.jobs, folder))
        with_journal, without = whole_jobs(args.jobs, folder)
        on.append(with_journal)
        off.append(without)
        shutil.rmtree(folder)
    print(f"attempts journal: {args.jobs} one-iteration jobs in one process, median of {args.rounds} rounds")
    print(f"  journal alone (begin + end): {statistics.median(alone) * 1e6:.1f} us per job")
    print(f"  whole job (alternating): journal on {statistics.median(on) * 1e6:.0f} us, off "
          f"{statistics.median(off) * 1e6:.0f} us per job: {statistics.median(on) / statistics.median(off):.3f}x")
    for suspect in (False, True):
        folder = tempfile.mkdtemp(prefix="cw-attempts-")
        seconds = reading(folder, args.read_jobs, args.processes, suspect)
        shutil.rmtree(folder)
        how = "one suspect: whole files scanned" if suspect else "no suspect: tails only"
        print(f"  planning reads {args.processes} dead journals of {args.read_jobs} jobs ({how}): "
              f"{seconds * 1e3:.1f} ms")


if __name__ == "__main__":
    main()

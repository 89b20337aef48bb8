"""A compact store's index extended by its segments' tails (compact_tails) says exactly what the index rebuilt from
every segment says, over many random event sequences; where it cannot tell, it says so (and the reader reads
every segment). The common cases (a run that went on, or was killed, after the index was written) are extended."""
from __future__ import annotations

import multiprocessing
import os
import random
import signal
import time

import pytest
from compact_events_helpers import Writers
from experiments import Deterministic
from huge_sweep_helpers import text

from cluster_work import compact_catalog, compact_index
from cluster_work.backends import SequentialExecutor
from cluster_work.compact_catalog import Catalog
from cluster_work.compact_index import IndexKeeper, Summary, read_index, summary, write_index
from cluster_work.expansion import expand_all
from cluster_work.paths import COMPACT_FOLDER, INDEX_FILE
from cluster_work.planning import make_plan
from cluster_work.reporting import write_progress_json
from cluster_work.rows import encode_row
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.stopping import stop_signals_handled
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import RunSettings


def rebuilt(root: str) -> Summary:
    """The summary of every segment, read by a catalog of its own."""
    return Summary.of(Catalog(root).refresh(force=True))


def fields(found: Summary) -> tuple:
    """Everything the index holds, as it holds it (written and read back)."""
    again = Summary.decode(found.encode())
    assert again is not None
    return again.segments, again.dropped, again.latest, again.open, again.entries


CASES = 1500


@pytest.mark.parametrize("phases", [2, 4], ids=["one extension", "extensions of extensions"])
def test_an_index_extended_by_tails_is_the_index_of_every_segment(tmp_path, phases):
    """Seeded random sequences (see compact_events_helpers): after each phase the index so far, extended by
    what the segments gained, equals the one rebuilt from every segment, or is refused (None). A fair share is
    extended: refusals are not what makes it pass."""
    extended = 0
    for case in range(CASES):
        writers = Writers(str(tmp_path / str(case)), random.Random(case))
        writers.phase()
        index = rebuilt(writers.root)
        for _ in range(phases - 1):
            writers.phase()
            found = index.extended(writers.root)
            index = rebuilt(writers.root)
            if found is not None:
                extended += 1
                assert fields(found) == fields(index), f"case {case}"
    assert extended > CASES * (phases - 1) * 0.2


def test_the_tails_of_an_interrupted_run_are_read_instead_of_every_segment(tmp_path):
    """A run's writer went on after the index was written (its claim open, a torn line caught, new rows and a
    status), and a new run re-claimed a repetition: the reader takes the index and the tails, does not read
    every segment (no catalog of the store is made), and writes the index the segments give."""
    root = str(tmp_path)
    first, second = "seg-host-1-00000000.jsonl", "seg-host-2-00000000.jsonl"

    def write(segment, *events, torn=b""):
        with open(tmp_path / segment, "ab") as handle:
            handle.write(b"".join(encode_row(event) for event in events) + torn)

    write(first, {"c": ["a", 0], "t": 10.0, "params": {"x": 1}, "base": "d", "at": "a"},
          {"w": ["a", 0], "row": {"iteration": 0, "iteration_time": 0.5}},
          {"c": ["a", 1], "t": 11.0, "params": {"x": 1}, "base": "d", "at": "a"},
          {"w": ["a", 1], "row": {"iteration": 0, "iteration_time": 0.25}}, torn=b'{"w":["a",1],"row":{"itera')
    summary(root)  # the index, written while the run goes on
    compact_index._summaries.clear()  # a new process
    compact_catalog._catalogs.clear()
    with open(tmp_path / first, "ab") as handle:  # the torn line's rest, then a line the reader skips
        handle.write(b'tion":1,"iteration_time":0.5}}\n{}\n')
    write(first, {"s": ["a", 1], "t": 12.0, "status": {"state": "finished"}})
    write(second, {"c": ["a", 0], "t": 13.0, "params": {"x": 1}, "base": "d", "at": "a"},
          {"w": ["a", 0], "row": {"iteration": 1, "iteration_time": 1.0}},
          {"c": ["b", 0], "t": 14.0, "params": {"x": 2}, "base": "d", "at": "b"})
    found = summary(root)
    assert compact_catalog.loaded(root) is None  # the segments were not read whole
    assert fields(found) == fields(rebuilt(root)) == fields(read_index(root))
    assert found.entries["a"][2] == [[0, None, 2, 1.5, 2], [1, {"state": "finished"}, 2, 0.75, 2]]


REFUSED = {
    "a clock behind": {"c": ["a", 0], "t": 5.0, "params": {"x": 1}, "base": "d", "at": "a"},
    "a drop of an experiment it holds": {"d": "a", "t": 20.0},
    "other parameters": {"c": ["a", 0], "t": 20.0, "params": {"x": 2}, "base": "d", "at": "a"},
    "a keep that cuts rows": {"k": ["a", 0], "n": 0},
}


@pytest.mark.parametrize("event", REFUSED.values(), ids=list(REFUSED))
def test_what_the_tails_cannot_tell_is_read_from_every_segment(tmp_path, event):
    root = str(tmp_path)
    segment = tmp_path / "seg-host-1-00000000.jsonl"
    segment.write_bytes(encode_row({"c": ["a", 0], "t": 10.0, "params": {"x": 1}, "base": "d", "at": "a"})
                        + encode_row({"w": ["a", 0], "row": {"iteration": 0, "iteration_time": 0.5}}))
    write_index(root, rebuilt(root))
    with open(segment, "ab") as handle:
        handle.write(encode_row(event))
    assert read_index(root).extended(root) is None
    compact_index._summaries.clear()
    compact_catalog._catalogs.clear()
    assert fields(summary(root)) == fields(rebuilt(root))
    assert compact_catalog.loaded(root) is not None  # read whole


def slow_sweep(tmp_path):
    document = {"name": "slow", "repetitions": 2, "iterations": 3, "path": str(tmp_path / "out"), "store": "compact",
                "params": {"sleep": 0.02}, "grid": {"step": [0.5 * k for k in range(1, 31)]}}
    return expand_all([document], Deterministic._default_params, warn=lambda message: None)


def run_keeping_the_index(tmp_path):
    """A run (in a child: killed -9 below) whose launcher rewrites the index every 0.2 s."""
    plan = make_plan(slow_sweep(tmp_path), Selection(), Policy(), "test")
    keeper = IndexKeeper(plan.compact_roots(), every=0.2)
    with stop_signals_handled(), SequentialExecutor(ExperimentTask(Deterministic, RunSettings(sync=False))) as executor:
        run_segments(plan.jobs, executor, lambda outcome: keeper())


def looks(tmp_path):
    """What planning a resume and -p --json say."""
    plan = make_plan(slow_sweep(tmp_path), Selection(), Policy(), "test")
    return [vars(job) for job in plan.jobs], text(write_progress_json, slow_sweep(tmp_path), True)


@pytest.mark.processes
def test_after_a_kill_9_of_a_run_that_kept_its_index_the_next_look_reads_the_tails(tmp_path):
    """The run's index was rewritten while it ran; it is killed -9 with rows and a claim past the index: the next
    look takes the index and the tails (not every segment) and plans and reports as a read of every segment."""
    child = multiprocessing.get_context("fork").Process(target=run_keeping_the_index, args=(tmp_path,))
    child.start()
    deadline = time.monotonic() + 120
    while True:  # an index of a few outcomes, and rows past it (the keeper writes it every 0.2 s)
        assert time.monotonic() < deadline and child.is_alive(), "the run ended before it was caught mid-way"
        roots = list((tmp_path / "out").glob(f"*/{COMPACT_FOLDER}"))
        index = read_index(str(roots[0])) if roots else None
        if index is not None and len(index.entries) >= 3 and any(
                os.path.getsize(roots[0] / name) > size + 100 for name, size in index.segments.items()):
            break
        time.sleep(0.01)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    root = str(roots[0])
    covered = read_index(root).segments
    assert any(os.path.getsize(os.path.join(root, name)) > size for name, size in covered.items())
    compact_index._summaries.clear()
    compact_catalog._catalogs.clear()
    tails = looks(tmp_path)
    assert compact_catalog.loaded(root) is None  # the index and the tails only
    assert fields(read_index(root)) == fields(rebuilt(root))
    os.unlink(os.path.join(root, INDEX_FILE))
    compact_index._summaries.clear()
    compact_catalog._catalogs.clear()
    assert looks(tmp_path) == tails
    assert compact_catalog.loaded(root) is not None  # (that one read every segment)

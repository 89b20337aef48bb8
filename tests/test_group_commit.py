"""Group commits and the rules that make a power loss cost nothing but the last rows (in-process).

A power loss cannot be staged in a test, but what it can leave can: rows that did not reach the disk
(a results file cut short behind a status that says finished), a status lost or torn. The repetition's
state must then come from its rows."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from backend_clients import Counting
from repetition_files import is_status

from cluster_work import durability
from cluster_work.expansion import expand_all
from cluster_work.repetition_state import read_repetition
from cluster_work.runner import run_segment
from cluster_work.store import ExperimentStore
from cluster_work.vocabulary import RepetitionState, RunSettings, Segment


def finished_repetition(tmp_path: Path):
    """A finished repetition with a status that says so: one that ended unfinished once (a segment up to
    iteration 2), then ran to its end (one that runs to its end in one go has its rows only)."""
    [exp] = expand_all([{"name": "c", "repetitions": 1, "iterations": 4, "path": str(tmp_path)}],
                       Counting._default_params)
    run_segment(Counting, Segment(0, exp, 0, until=2), RunSettings(log_level="WARNING"))
    run_segment(Counting, Segment(0, exp, 0), RunSettings(log_level="WARNING"))
    store = ExperimentStore(exp.path).repetition(0)
    assert store.read_status()["state"] == "finished"
    return store


def test_a_repetition_that_runs_to_its_end_at_once_has_no_status(tmp_path):
    [exp] = expand_all([{"name": "c", "repetitions": 1, "iterations": 4, "path": str(tmp_path)}],
                       Counting._default_params)
    run_segment(Counting, Segment(0, exp, 0), RunSettings(log_level="WARNING"))
    store = ExperimentStore(exp.path).repetition(0)
    assert not store.has_status()
    view = read_repetition(store, 4)
    assert (view.state, view.iterations_saved) == (RepetitionState.FINISHED, 4)
    assert view.mean_iteration_time is not None  # from the rows' iteration times, for scheduling


def test_a_finished_status_is_trusted_only_while_the_rows_it_counted_are_there(tmp_path):
    store = finished_repetition(tmp_path)
    assert read_repetition(store, 4).state == RepetitionState.FINISHED
    assert read_repetition(store, 4).rows is None  # answered from the status alone
    data = Path(store.results_file).read_bytes()
    Path(store.results_file).write_bytes(data[:data.index(b"\n", data.index(b"\n") + 1) + 1])  # two rows survived
    view = read_repetition(store, 4)
    assert (view.state, view.iterations_saved) == (RepetitionState.PARTIAL, 2)


def test_a_lost_or_torn_status_costs_nothing(tmp_path):
    store = finished_repetition(tmp_path)
    data = Path(store.results_file).read_bytes()
    Path(store.results_file).write_bytes(data[:-12])  # the finished status's record torn
    assert read_repetition(store, 4).state == RepetitionState.FINISHED  # from the rows
    assert store.read_status()["state"] == "reached"  # the last complete record
    Path(store.results_file).write_bytes(b"".join(line for line in data.splitlines(keepends=True)
                                                  if not is_status(line.decode())))  # every record lost
    assert not store.has_status() and read_repetition(store, 4).state == RepetitionState.FINISHED
    assert read_repetition(store, 5).state == RepetitionState.PARTIAL


def test_a_held_lock_is_running_whatever_the_files_say(tmp_path):
    store = finished_repetition(tmp_path)
    writer = store.open_writer()  # as `-r 0 -i 0` rerunning a finished repetition holds it
    try:
        assert read_repetition(store, 4).state == RepetitionState.RUNNING
        assert read_repetition(store, 4, check_lock=False).state == RepetitionState.FINISHED
    finally:
        writer.close(sync=False)


def test_a_commit_syncs_what_was_written_once(tmp_path):
    committer = durability.GroupCommit(interval=60)  # no commit by the thread during this test
    path = tmp_path / "rows"
    path.write_bytes(b"x\n")
    committer.wrote(str(path))
    committer.wrote(str(path))
    committer.commit()
    assert not committer.pending() and committer.commits == 1
    committer.commit()  # nothing new: nothing synced
    assert committer.commits == 1
    committer.wrote(str(tmp_path / "removed-since"))  # a file deleted before the commit is no error
    committer.commit()
    assert not committer.pending()


def test_the_thread_commits_on_its_own(tmp_path):
    committer = durability.GroupCommit(interval=0.01)
    committer.wrote(str(tmp_path))
    deadline = time.monotonic() + 30
    while committer.pending() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not committer.pending() and committer.commits == 1


@pytest.mark.processes
def test_a_forked_child_starts_with_nothing_to_commit(tmp_path):
    committer = durability.GroupCommit(interval=60)
    committer.wrote(str(tmp_path))
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: the parent's pending work is not its own
        os.write(write, b"1" if not committer.pending() else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and committer.pending()

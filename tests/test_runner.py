"""The runner in-process, in milliseconds: resume, restore, stops, cancels, failures, locks, and a group of
two ranks (threads over a fake communicator) that must take every branch together."""
from __future__ import annotations

import threading
from pathlib import Path

from backend_clients import Counting
from repetition_files import repetition_file, rows
from thread_comm import ThreadComm

from cluster_work.backends.base import TaskContext
from cluster_work.expansion import expand_all
from cluster_work.runner import run_segment
from cluster_work.store import ExperimentStore
from cluster_work.vocabulary import OutcomeKind, RunSettings, Segment

SETTINGS = RunSettings(log_level="WARNING", sync=False)


def experiment(folder: Path, iterations: int = 5, **params):
    [expanded] = expand_all([{"name": "c", "repetitions": 2, "iterations": iterations, "path": str(folder),
                              "params": params}], Counting._default_params)
    return expanded


def totals(expanded, rep: int = 0) -> list[int]:
    return [row["total"] for row in rows(expanded, rep)]


def status(expanded, rep: int = 0) -> dict:
    return ExperimentStore(expanded.path).repetition(rep).read_status()


def stop_after(count: int):
    """A stop check that says stop once `count` iterations were saved."""
    saved = [0]
    return TaskContext(stop_requested=lambda: saved[0] >= count,
                       iteration_done=lambda: saved.__setitem__(0, saved[0] + 1))


def test_a_stop_keeps_the_rows_and_a_rerun_continues_from_the_saved_state(tmp_path):
    exp = experiment(tmp_path)
    stopped = run_segment(Counting, Segment(0, exp, 1), SETTINGS, stop_after(2))
    assert stopped.kind == OutcomeKind.INTERRUPTED and stopped.iterations_done == 2
    assert status(exp, 1)["state"] == "interrupted" and totals(exp, 1) == [1, 3]
    resumed = run_segment(Counting, Segment(1, exp, 1), SETTINGS)
    assert resumed.kind == OutcomeKind.FINISHED and resumed.iterations_run == 3
    assert totals(exp, 1) == [1, 3, 6, 10, 15]  # restored from iteration 1's state, not reset
    data = repetition_file(exp, 1).read_bytes()  # the rows' bytes, before the finished status's record
    assert status(exp, 1)["results_bytes"] == data.rindex(b'\n{"cluster_work.status":') + 1


def test_restart_from_an_iteration_drops_the_later_rows(tmp_path):
    exp = experiment(tmp_path)
    run_segment(Counting, Segment(0, exp, 0), SETTINGS)
    again = run_segment(Counting, Segment(1, exp, 0, restart_from=3), SETTINGS)
    assert again.kind == OutcomeKind.FINISHED and again.iterations_run == 2 and totals(exp) == [0, 1, 3, 6, 10]


def test_a_failing_iteration_keeps_the_rows_before_it(tmp_path):
    exp = experiment(tmp_path, fail_at=3)
    outcome = run_segment(Counting, Segment(0, exp, 0), SETTINGS)
    assert outcome.kind == OutcomeKind.FAILED and "failed at 3" in outcome.error
    assert status(exp)["state"] == "failed" and "Traceback" in status(exp)["traceback"]
    assert totals(exp) == [0, 1, 3] and outcome.log_file


def test_a_repetition_held_by_another_writer_is_busy_and_untouched(tmp_path):
    exp = experiment(tmp_path)
    holder = ExperimentStore(exp.path).repetition(0).open_writer()
    try:
        outcome = run_segment(Counting, Segment(0, exp, 0), SETTINGS)
    finally:
        holder.close(sync=False)
    assert outcome.kind == OutcomeKind.BUSY and status(exp) == {}


def test_a_cancelled_or_stopped_segment_that_has_not_started_touches_nothing(tmp_path):
    exp = experiment(tmp_path)
    cancelled = run_segment(Counting, Segment(0, exp, 0), SETTINGS, TaskContext(cancelled=lambda: True))
    stopped = run_segment(Counting, Segment(0, exp, 0), SETTINGS, TaskContext(stop_requested=lambda: True))
    assert (cancelled.kind, stopped.kind) == (OutcomeKind.CANCELLED, OutcomeKind.INTERRUPTED)
    assert not Path(exp.path).exists()


def test_a_cancel_after_the_segment_began_leaves_the_status_to_its_canceller(tmp_path):
    """The driver that cancelled it writes the repetition's status (steering: "stopped" or "interrupted"), so
    the runner writes none and says in the outcome what an "interrupted" one would hold."""
    exp = experiment(tmp_path)
    saved = [0]
    context = TaskContext(cancelled=lambda: saved[0] >= 2, iteration_done=lambda: saved.__setitem__(0, saved[0] + 1))
    cancelled = run_segment(Counting, Segment(0, exp, 0), SETTINGS, context)
    assert (cancelled.kind, cancelled.iterations_done) == (OutcomeKind.CANCELLED, 2) and totals(exp) == [0, 1]
    assert status(exp) == {}
    assert cancelled.left_status is not None and cancelled.left_status["iterations_done"] == 2
    assert cancelled.left_status["iterations"] == 5 and cancelled.left_status["mean_iteration_time"] >= 0


def test_values_carry_only_the_columns_asked_for(tmp_path):
    exp = experiment(tmp_path)
    outcome = run_segment(Counting, Segment(0, exp, 0, until=2, columns=("total", "missing")), SETTINGS)
    assert outcome.values == [{"iteration": 0, "total": 0, "missing": None},
                              {"iteration": 1, "total": 1, "missing": None}]
    assert run_segment(Counting, Segment(1, exp, 1), SETTINGS).values == []


def test_a_cancel_seen_by_the_leader_stops_its_whole_group(tmp_path):
    from experiments import GroupSum

    [exp] = expand_all([{"name": "g", "repetitions": 1, "iterations": 6, "path": str(tmp_path / "out")}])
    shared = {"condition": threading.Condition()}
    outcomes = {}
    leader_saved = [0]

    def rank(number: int) -> None:
        comm = ThreadComm(number, 2, shared)
        leader = number == 0
        context = TaskContext(comm=comm, write=leader,
                              cancelled=lambda: leader and leader_saved[0] >= 2,  # only the leader sees it
                              iteration_done=lambda: leader_saved.__setitem__(0, leader_saved[0] + 1))
        outcomes[number] = run_segment(GroupSum, Segment(0, exp, 0), SETTINGS, context)

    threads = [threading.Thread(target=rank, args=(number,), daemon=True) for number in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a rank of the group hangs in a collective"
    assert outcomes[0].kind == outcomes[1].kind == OutcomeKind.CANCELLED
    assert outcomes[0].iterations_done == outcomes[1].iterations_done == 2

"""How the local worker processes (`-n`) hand items out: a worker holds at most one item beyond the one it
runs; a cancel answers such a held item at once, and an idle worker takes it over at a sweep's end, so
that it never waits behind a long item; and no item ever runs twice, nor yields two outcomes."""
from __future__ import annotations

import random
import time
from pathlib import Path

import pytest
from crash_clients import BigOutcome, Crashing
from polls import wait_for
from pool_helpers import SETTINGS, calls, collect, experiment, rep_folder, saved_rows

from cluster_work.backends import LocalProcessExecutor
from cluster_work.runner import ExperimentTask
from cluster_work.stopping import stop_signals_handled
from cluster_work.vocabulary import ConfigWrite, OutcomeKind, Segment

pytestmark = pytest.mark.processes  # every test here starts local worker processes


@pytest.fixture(autouse=True)
def fresh_stop_flag():
    with stop_signals_handled():
        yield


def held_behind_gates(executor, tmp_path: Path):
    """Reps 0 and 1 wait at a gate in their iteration 1, one on each of two workers; reps 2 and 3 are
    held by those workers behind them."""
    gate = tmp_path / "gate"
    exp = experiment(tmp_path, repetitions=4, iterations=3, gate=str(gate), gate_at=1, gate_reps="0,1")
    for rep in range(4):
        executor.submit(Segment(rep, exp, rep, config=ConfigWrite.IF_MISSING if rep == 0 else ConfigWrite.KEEP))
    for rep in (0, 1):
        wait_for(lambda rep=rep: Path(f"{gate}.{rep}.waiting").exists(), f"rep {rep} at its gate")
    return exp, gate


def test_a_cancelled_item_a_busy_worker_holds_is_answered_at_once(tmp_path):
    with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 2, "forkserver") as executor:
        exp, gate = held_behind_gates(executor, tmp_path)
        executor.cancel(3)
        [cancelled] = collect(executor, 1).values()  # while reps 0 and 1 still wait at the gate
        assert cancelled.index == 3 and cancelled.kind == OutcomeKind.CANCELLED and cancelled.iterations_run == 0
        assert not rep_folder(exp, 3).exists()  # it never started
        gate.touch()
        rest = collect(executor, 3)
    assert {index: outcome.kind for index, outcome in rest.items()} == {i: OutcomeKind.FINISHED for i in (0, 1, 2)}
    assert calls(exp, 3) == 0  # the worker that held it skipped it


def test_at_a_sweep_s_end_a_held_item_does_not_wait_behind_a_long_one(tmp_path):
    """Rep 0 waits at the gate on one worker, holding rep 2; rep 1 on the other worker ends at once: that
    worker, idle, takes rep 2 over, which finishes while rep 0 still waits."""
    gate = tmp_path / "gate"
    exp = experiment(tmp_path, repetitions=3, iterations=2, gate=str(gate), gate_at=1, gate_reps="0")
    with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 2, "forkserver") as executor:
        for rep in range(3):
            executor.submit(Segment(rep, exp, rep, config=ConfigWrite.IF_MISSING if rep == 0 else ConfigWrite.KEEP))
        early = collect(executor, 2)  # reps 1 and 2; rep 0 is still at its gate
        assert set(early) == {1, 2} and {o.kind for o in early.values()} == {OutcomeKind.FINISHED}
        wait_for(lambda: Path(f"{gate}.0.waiting").exists(), "rep 0 at its gate")  # (under load it may start late)
        gate.touch()
        [last] = collect(executor, 1).values()
    assert last.index == 0 and last.kind == OutcomeKind.FINISHED


def test_no_item_runs_twice_whatever_is_cancelled_when(tmp_path):
    """Many short items, two workers, cancels at random moments (of queued, held and running items, as the
    parent and the workers race for the held ones): one outcome per item, and no repetition's `iterate`
    called more often than its rows."""
    exp = experiment(tmp_path, repetitions=60, iterations=2)
    chooser = random.Random(7)
    with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 2, "forkserver") as executor:
        outcomes = {}
        for rep in range(60):
            executor.submit(Segment(rep, exp, rep, config=ConfigWrite.IF_MISSING if rep == 0 else ConfigWrite.KEEP))
            if chooser.random() < 0.5:
                executor.cancel(chooser.randrange(rep + 1))
            while not executor.has_capacity():
                outcome = executor.next_outcome()
                assert outcome.index not in outcomes
                outcomes[outcome.index] = outcome
        outcomes.update(collect(executor, executor.in_flight()))
    assert sorted(outcomes) == list(range(60))
    for rep, outcome in outcomes.items():
        rows = saved_rows(exp, rep)
        assert calls(exp, rep) == rows == outcome.iterations_done, (rep, outcome)
        assert outcome.kind in (OutcomeKind.FINISHED, OutcomeKind.CANCELLED), outcome
    assert any(o.kind == OutcomeKind.CANCELLED for o in outcomes.values())


def test_leaving_with_an_outcome_still_on_its_way_does_not_hang(tmp_path):
    """The worker blocks writing an outcome bigger than its connection holds until the parent reads it:
    `shutdown` reads while it waits for the workers to leave."""
    started = time.monotonic()
    with LocalProcessExecutor(BigOutcome(), 2, "forkserver") as executor:
        executor.submit(Segment(0, experiment(tmp_path), 0))
    assert time.monotonic() - started < 60

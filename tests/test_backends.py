"""The executor contract (cluster_work/backends/base.py), checked in-process against every backend:
one outcome per item, cancels of queued and running items, stops, segments up to a target and on to
the end, values for the campaign, a worker that dies. The same checks run under a real mpiexec (slow)."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from backend_clients import Counting
from conftest import mpiexec, run_mpiexec

from cluster_work.backends import LocalProcessExecutor, SequentialExecutor
from cluster_work.expansion import expand_all
from cluster_work.runner import ExperimentTask
from cluster_work.stopping import request_stop, stop_signals_handled
from cluster_work.vocabulary import ConfigWrite, OutcomeKind, RunSettings, Segment

SETTINGS = RunSettings(log_level="WARNING", sync=False)


@pytest.fixture(autouse=True)
def fresh_stop_flag():
    """Each test with a fresh stop flag (check_stop sets it) and the test's own signal handlers after."""
    with stop_signals_handled():
        yield


def experiment(folder: Path, name: str = "c", iterations: int = 4, repetitions: int = 3, **params):
    [expanded] = expand_all([{"name": name, "repetitions": repetitions, "iterations": iterations,
                              "path": str(folder), "params": params}], Counting._default_params)
    return expanded


def rows(expanded, rep: int) -> list[dict]:
    path = Path(expanded.path) / "log" / f"rep_{rep:02d}" / "results.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def collect(executor, count: int) -> dict[int, object]:
    outcomes = {}
    for _ in range(count):
        outcome = executor.next_outcome()
        assert outcome.index not in outcomes, "two outcomes for one item"
        outcomes[outcome.index] = outcome
    assert executor.in_flight() == 0
    return outcomes


def wait_for(condition, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def check_one_outcome_per_item_and_segments_up_to_a_target(executor, folder: Path) -> None:
    exp = experiment(folder / "a")
    items = [Segment(0, exp, 0, config=ConfigWrite.IF_MISSING, columns=("total",)),
             Segment(1, exp, 1, until=2, columns=("total",)), Segment(2, exp, 2, until=9)]
    for item in items:
        executor.submit(item)
    outcomes = collect(executor, len(items))
    assert outcomes[0].kind == OutcomeKind.FINISHED and outcomes[0].iterations_run == 4
    assert [v["total"] for v in outcomes[0].values] == [0, 1, 3, 6]
    assert outcomes[1].kind == OutcomeKind.REACHED and outcomes[1].iterations_done == 2
    assert [v["iteration"] for v in outcomes[1].values] == [0, 1] and len(rows(exp, 1)) == 2
    assert outcomes[2].kind == OutcomeKind.FINISHED  # `until` past the end: the repetition's end
    executor.submit(Segment(3, exp, 1, columns=("total",)))  # on from the rung, from the saved state
    [continued] = collect(executor, 1).values()
    assert continued.kind == OutcomeKind.FINISHED and continued.iterations_run == 2
    # the rows up to its target, old and new; restored from the rung's state (a reset would give 2, 5)
    assert [v["total"] for v in continued.values] == [1, 3, 6, 10] == [r["total"] for r in rows(exp, 1)]
    executor.submit(Segment(4, exp, 0))
    [again] = collect(executor, 1).values()
    assert again.kind == OutcomeKind.ALREADY_FINISHED and again.iterations_run == 0


def check_cancel_of_a_queued_item(executor, folder: Path) -> None:
    exp = experiment(folder / "q", gate=str(folder / "q-gate"))
    count = executor.workers * 2 + 2  # more than the backend starts at once: the last ones wait
    for index in range(count):
        executor.submit(Segment(index, exp, index % 3 if index < 3 else 0, until=1))
    executor.cancel(count - 1)
    outcomes = collect(executor, count)
    assert outcomes[count - 1].kind in (OutcomeKind.CANCELLED, OutcomeKind.ALREADY_FINISHED)
    assert outcomes[count - 1].iterations_run == 0


def check_cancel_of_a_running_item(executor, folder: Path) -> None:
    gate = folder / "r-gate"
    exp = experiment(folder / "r", iterations=6, gate=str(gate), gate_after=2)
    executor.submit(Segment(0, exp, 0))
    wait_for(lambda: len(rows(exp, 0)) == 2, "two saved rows")  # now waiting at the gate, in iteration 2
    executor.cancel(0)
    executor.cancel(0)  # twice is once
    gate.touch()
    [outcome] = collect(executor, 1).values()
    assert outcome.kind == OutcomeKind.CANCELLED
    assert outcome.iterations_done == 3 and len(rows(exp, 0)) == 3  # it stopped after its current iteration
    executor.cancel(0)  # after it ended: nothing happens


def check_stop(executor, folder: Path) -> None:
    gate = folder / "s-gate"
    exp = experiment(folder / "s", iterations=5, gate=str(gate), gate_after=1)
    for index in range(3):  # running (held at the gate after a row) or still queued: all stop
        executor.submit(Segment(index, exp, index))
    request_stop()
    executor.forward_stop()
    gate.touch()
    outcomes = collect(executor, 3)
    assert {o.kind for o in outcomes.values()} == {OutcomeKind.INTERRUPTED}
    assert all(len(rows(exp, rep)) < 5 for rep in range(3))


CHECKS = [check_one_outcome_per_item_and_segments_up_to_a_target, check_cancel_of_a_queued_item,
          check_cancel_of_a_running_item, check_stop]


def make_sequential():
    return SequentialExecutor(ExperimentTask(Counting, SETTINGS))


def make_processes():
    return LocalProcessExecutor(ExperimentTask(Counting, SETTINGS), 2, "forkserver")


def make_mpi_alone():
    from cluster_work.backends.mpi import MPIExecutor

    return MPIExecutor(ExperimentTask(Counting, SETTINGS), finalize=False)


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__[6:])
@pytest.mark.parametrize("make", [make_sequential, make_processes, make_mpi_alone],
                         ids=["sequential", "processes", "mpi-rank-0-alone"])
def test_backend_conformance(make, check, tmp_path):
    if make is not make_processes and check is check_cancel_of_a_running_item:
        pytest.skip("in this process nothing runs while the caller could cancel it")
    with make() as executor:
        check(executor, tmp_path)


def test_a_worker_that_dies_fails_only_its_own_item(tmp_path):
    exp = experiment(tmp_path, die_at=1)
    alive = experiment(tmp_path / "alive", name="alive")
    with LocalProcessExecutor(ExperimentTask(Counting, SETTINGS), 1, "forkserver") as executor:
        executor.submit(Segment(0, exp, 0))
        [died] = collect(executor, 1).values()
        executor.submit(Segment(1, alive, 0))
        [fine] = collect(executor, 1).values()
    assert died.kind == OutcomeKind.FAILED and "exited with status 3 without reporting in iteration 1" in died.error
    assert fine.kind == OutcomeKind.FINISHED  # a new pool took over


MPI_SCRIPT = """
import sys, tempfile
from pathlib import Path
sys.path[:0] = [{tests!r}]
from cluster_work.backends.mpi import MPIExecutor
from cluster_work.runner import ExperimentTask
import test_backends as t
from backend_clients import Counting
folder = Path(sys.argv[1])
for check in t.CHECKS:
    with MPIExecutor(ExperimentTask(Counting, t.SETTINGS), finalize=False) as executor:
        if executor is not None:
            (folder / check.__name__).mkdir()
            check(executor, folder / check.__name__)
            print("passed", check.__name__, flush=True)
"""


@pytest.mark.slow
def test_backend_conformance_under_mpiexec(tmp_path):
    script = tmp_path / "conformance.py"
    script.write_text(MPI_SCRIPT.format(tests=str(Path(__file__).parent)))
    result = run_mpiexec([mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py", str(script), str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(CHECKS), result.stdout

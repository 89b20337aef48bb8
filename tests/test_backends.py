"""The executor contract (cluster_work/backends/base.py), checked in-process against every backend:
one outcome per item, cancels of queued and running items, stops, segments up to a target and on to
the end, values for the campaign, a worker that dies. The same checks run under a real mpiexec (slow)."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
from backend_clients import Counting
from conformance import CHECKS, LAYOUTS, SETTINGS, check_cancel_of_a_running_item, collect, experiment
from conftest import mpiexec, run_mpiexec

from cluster_work.backends import LocalProcessExecutor, SequentialExecutor
from cluster_work.runner import ExperimentTask
from cluster_work.stopping import RunStop, stop_requested, stop_signals_handled
from cluster_work.vocabulary import OutcomeKind, Segment


@pytest.fixture(autouse=True)
def fresh_stop_flag():
    """Each test with a fresh stop flag (check_stop sets it) and the test's own signal handlers after."""
    with stop_signals_handled():
        yield


def make_sequential():
    return SequentialExecutor(ExperimentTask(Counting, SETTINGS))


def make_processes():
    return LocalProcessExecutor(ExperimentTask(Counting, SETTINGS), 2, "forkserver")


def make_mpi_alone():
    from cluster_work.backends.mpi import MPIExecutor

    return MPIExecutor(ExperimentTask(Counting, SETTINGS), finalize=False)


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__[6:])
@pytest.mark.parametrize("make", [
    pytest.param(make_sequential, id="sequential"),
    pytest.param(make_processes, id="processes", marks=pytest.mark.processes),
    pytest.param(make_mpi_alone, id="mpi-rank-0-alone"),  # MPI initialized in this process, a world of one
])
def test_backend_conformance(make, check, layout, tmp_path):
    if make is not make_processes and check is check_cancel_of_a_running_item:
        pytest.skip("in this process nothing runs while the caller could cancel it")
    (tmp_path / layout).mkdir()
    with make() as executor:
        check(executor, tmp_path / layout)


@pytest.mark.parametrize("make", [
    pytest.param(lambda stop: SequentialExecutor(ExperimentTask(Counting, SETTINGS), stop=stop), id="sequential"),
    pytest.param(lambda stop: LocalProcessExecutor(ExperimentTask(Counting, SETTINGS), 2, "forkserver", stop=stop),
                 id="processes", marks=pytest.mark.processes),
])
def test_an_executor_obeys_the_stop_flag_it_is_given_and_leaves_the_processes_alone(make, tmp_path):
    gate, stop = tmp_path / "gate", RunStop()
    exp = experiment(tmp_path / "s", iterations=5, gate=str(gate), gate_after=1)
    with make(stop) as executor:
        for index in range(3):  # running (held at the gate after a row) or still queued: all stop
            executor.submit(Segment(index, exp, index))
        executor.request_stop()
        gate.touch()
        outcomes = collect(executor, 3)
    assert {o.kind for o in outcomes.values()} == {OutcomeKind.INTERRUPTED}
    assert stop.requested() and not stop_requested()  # this process's flag (fresh: see the fixture) is untouched


@pytest.mark.processes
@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_worker_that_dies_fails_only_its_own_item(tmp_path, layout):
    exp = experiment(tmp_path / layout, die_at=1)
    alive = experiment(tmp_path / layout / "alive", name="alive")
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
from conformance import CHECKS, SETTINGS
from backend_clients import Counting
folder = Path(sys.argv[1])
for check in CHECKS:
    with MPIExecutor(ExperimentTask(Counting, SETTINGS), finalize=False) as executor:
        if executor is not None:
            (folder / check.__name__).mkdir()
            check(executor, folder / check.__name__)
            print("passed", check.__name__, flush=True)
"""


@pytest.mark.slow
@pytest.mark.processes
def test_backend_conformance_under_mpiexec(tmp_path):
    script = tmp_path / "conformance.py"
    script.write_text(MPI_SCRIPT.format(tests=str(Path(__file__).parent)))
    result = run_mpiexec([mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py", str(script), str(tmp_path)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("passed") == len(CHECKS), result.stdout

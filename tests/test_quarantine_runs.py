"""Quarantine with real runs that really die: a native crash ends the sequential run, or (without ULFM) the
whole mpiexec job; twice, then the third run leaves the culprit out and finishes the rest. Innocents that
were only handed out when a run was killed as a whole are never suspected."""
import json
import subprocess

import pytest
import quarantine_clients
from experiments import NO_SLEEP
from in_process import run_main
from kills import kill_session
from polls import wait_for
from quarantine_helpers import rows, start_run

pytestmark = [pytest.mark.processes, pytest.mark.slow]

CONFIG = """\
name: walk
repetitions: 1
iterations: 4
path: out
params: {{crash_x: 3, crash_at: {crash_at}, sleep: {sleep}}}
grid:
  x: [0, 1, 2, 3, 4, 5, 6, 7]
"""
CRASH = {"CW_TEST_CRASH": "1"}
KILLED_BY_SIGSEGV = (-11, 139)  # the Python process itself; mpiexec reporting its rank's signal


def run_crashing(cwd, *args, mpi_ranks=0, env=None, timeout=180):
    """A run of the Crashing client on config.yml in `cwd` (see quarantine_helpers.start_run), to its end."""
    process = start_run(cwd, *args, mpi_ranks=mpi_ranks, env=env)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_session(process)
        raise
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.fixture
def progress(monkeypatch):
    """`-P ARGS` of the sweep in a folder, run in this process (as conftest's `cli` runs a command): it only
    reads what the runs left, so no process of its own is needed."""
    def show(cwd, *args):
        result = run_main("Crashing", ["config.yml", "-P", *args], cwd, monkeypatch, module=quarantine_clients)
        assert result.returncode == 0, result.stderr
        return result
    return show


@pytest.fixture
def repetitions(progress):
    """-P --json: each repetition's state, suspicion count and error, by experiment name."""
    return lambda cwd: {e["name"]: e["repetition_list"][0]
                        for e in json.loads(progress(cwd, "--json").stdout)["experiments"]}


@pytest.mark.parametrize("mpi_ranks, options", [(0, []), (3, []), (5, ["-g", "2"])],
                         ids=["sequential", "mpiexec-3-without-ulfm", "mpiexec-5-groups-of-2"])
def test_a_poison_pill_costs_two_runs_then_the_rest_finishes(tmp_path, mpi_ranks, options, progress,
                                                              repetitions):
    """Every rank of an MPI group records the group's attempt in a journal of its own."""
    (tmp_path / "config.yml").write_text(CONFIG.format(crash_at=0 if mpi_ranks else 2, sleep=0.05))
    for run in (1, 2):
        died = run_crashing(tmp_path, *options, mpi_ranks=mpi_ranks, env=CRASH)
        assert died.returncode in KILLED_BY_SIGSEGV, (run, died.returncode, died.stderr[-3000:])
    quick = {**CRASH, NO_SLEEP: "1"}  # (from here on, the runs' pace matters to no one)
    third = run_crashing(tmp_path, *options, mpi_ranks=mpi_ranks, env=quick)
    assert third.returncode == 1, third.stderr[-3000:]  # failed: the quarantined one
    assert "1 repetition(s) quarantined, not run: walk__x3 rep 0: suspected of ending 2 runs" in third.stderr
    assert "quarantined walk__x3 rep 0" in third.stderr and "--retry-failed" in third.stderr
    states = repetitions(tmp_path)
    assert {name: rep["state"] for name, rep in states.items()} == {
        f"walk__x{x}": "quarantined" if x == 3 else "finished" for x in range(8)}
    assert states["walk__x3"]["suspected_runs"] == 2
    iteration = 0 if mpi_ranks else 2
    # the signal, from the Python stack faulthandler left in the repetition's log
    expected = f"suspected of ending 2 runs (each died in its iteration {iteration}; SIGSEGV)"
    assert states["walk__x3"]["error"] == expected
    full = progress(tmp_path)
    assert "quarantined" in full.stdout and "suspected of ending 2 runs" in full.stdout
    again = run_crashing(tmp_path, *options, mpi_ranks=mpi_ranks, env=quick)  # a plain rerun leaves it out
    assert again.returncode == 1 and "0 jobs to run" in again.stderr, again.stderr[-3000:]
    retried = run_crashing(tmp_path, "--retry-failed", *options, mpi_ranks=mpi_ranks,
                           env={NO_SLEEP: "1"})  # fixed (no crash): run it
    assert retried.returncode == 0, retried.stderr[-3000:]
    assert "running 1 quarantined repetition(s) again (--retry-failed)" in retried.stderr
    assert {rep["state"] for rep in repetitions(tmp_path).values()} == {"finished"}


def test_a_crashed_worker_of_a_run_that_went_on_is_not_a_run_death(tmp_path, repetitions):
    """-n: the worker dies, its run reports it and ends; no number of such runs quarantines anything."""
    (tmp_path / "config.yml").write_text(CONFIG.format(crash_at=1, sleep=0.0))
    for _ in range(3):
        result = run_crashing(tmp_path, "-n", "2", env=CRASH)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "quarantined" not in result.stderr
    assert repetitions(tmp_path)["walk__x3"]["suspected_runs"] == 0


@pytest.mark.parametrize("backend", [["-n", "2"], ["mpi"]], ids=["local-workers", "mpiexec-3"])
def test_innocents_handed_out_when_the_run_is_killed_are_not_suspected(tmp_path, backend, repetitions):
    """kill -9 of the whole run while two repetitions run and others wait at their workers: only the two
    that began are suspected (once: no quarantine); the next run finishes everything."""
    (tmp_path / "config.yml").write_text(CONFIG.format(crash_at=0, sleep=0.0).replace(
        "crash_x: 3", "crash_x: -1, gate_at: 1"))
    gate = tmp_path / "gate"
    mpi_ranks = 3 if backend == ["mpi"] else 0
    process = start_run(tmp_path, *([] if mpi_ranks else backend), mpi_ranks=mpi_ranks,
                        env={"CW_TEST_GATE": str(gate)})
    out = tmp_path / "out"
    running = ["walk__x0", "walk__x1"]
    try:
        wait_for(lambda: all(rows(out, name) == 1 for name in running), "two repetitions to hold at iteration 1",
                 seconds=90)
    finally:
        kill_session(process)
    from cluster_work.attempts import parse

    began = set()
    for path in (out / ".cluster_work_attempts").iterdir():
        for line in path.read_text().splitlines():
            kind, _, key, _ = parse(line)
            if kind == "begin":
                began.add(key[0])
    assert began == set(running)  # x2, x3 were handed to the workers too, and never began
    states = repetitions(tmp_path)
    assert {name: rep["suspected_runs"] for name, rep in states.items()} == {
        f"walk__x{x}": int(x < 2) for x in range(8)}
    assert states["walk__x0"]["error"] == "a run died while it ran (in its iteration 1)"
    gate.touch()
    done = run_crashing(tmp_path, *([] if mpi_ranks else backend), mpi_ranks=mpi_ranks, env={"CW_TEST_GATE": str(gate)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert {rep["state"] for rep in repetitions(tmp_path).values()} == {"finished"}



def test_an_innocent_killed_beside_the_culprit_in_both_runs_is_not_quarantined(tmp_path, repetitions):
    """mpiexec -n 3: the culprit segfaults (faulthandler's stack in its log) while the innocent stands in the
    same iteration, deaf to mpiexec's SIGTERM (so no stop signal closes its attempt: it is SIGKILLed open),
    in two runs in a row. Only the culprit is quarantined; the third run finishes the innocent."""
    (tmp_path / "config.yml").write_text(CONFIG.format(crash_at=2, sleep=0.0).replace(
        "crash_x: 3", "crash_x: 0, hold_x: 1, hold_at: 2").replace("[0, 1, 2, 3, 4, 5, 6, 7]", "[0, 1]"))
    held = tmp_path / "held"
    for run in (1, 2):
        held.unlink(missing_ok=True)  # the culprit crashes once the innocent holds in this run
        died = run_crashing(tmp_path, mpi_ranks=3, env={**CRASH, "CW_TEST_HOLD": str(held)})
        assert died.returncode in KILLED_BY_SIGSEGV, (run, died.returncode, died.stderr[-3000:])
        assert held.exists()
        states = repetitions(tmp_path)
        assert states["walk__x1"]["suspected_runs"] == 0, states  # open in the run, but the culprit explains it
        assert states["walk__x0"]["suspected_runs"] == run
    assert states["walk__x0"]["error"] == "suspected of ending 2 runs (each died in its iteration 2; SIGSEGV)"
    third = run_crashing(tmp_path, mpi_ranks=3, env=CRASH)
    assert third.returncode == 1, third.stderr[-3000:]
    assert "1 repetition(s) quarantined, not run: walk__x0 rep 0: suspected of ending 2 runs" in third.stderr
    assert {name: rep["state"] for name, rep in repetitions(tmp_path).items()} == {
        "walk__x0": "quarantined", "walk__x1": "finished"}

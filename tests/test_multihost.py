"""MPI across two hosts (network namespaces joined by a veth pair, see tests/netns_hosts.py): a hostfile
sweep, a host killed mid-run, a host cut off for good, native crashes on the second host. Skipped, with
the reason, without root or without iproute2/util-linux; .ci/run runs them as root.

Each mpiexec across the hosts costs seconds: every test launches as few as it needs."""
import json
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import SCRIPT, comparable, run_cli, run_mpi
from netns_hosts import TwoHosts, repetition_states, unavailable_reason, wait_until

from cluster_work import load_results

pytestmark = [pytest.mark.slow, pytest.mark.skipif(unavailable_reason() is not None,
                                                   reason=unavailable_reason() or "")]

CLIENTS = str(Path(__file__).resolve().parent / "clients_multihost.py")
CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 5
path: out
params: {count_calls: true}
---
name: walk
grid:
  step: [1.0, 2.0]
"""
REPETITIONS, ITERATIONS = 6, 5
RANKS = 4  # rank 0 and worker 1 on the first host, workers 2 and 3 on the second (slots=2 each)


@pytest.fixture
def hosts(tmp_path):
    two = TwoHosts(tmp_path)
    try:
        two.open()
    except RuntimeError as exc:  # e.g. a container without CAP_SYS_ADMIN
        pytest.skip(f"cannot build two hosts from network namespaces here: {exc}")
    yield two
    two.close()  # kills every process the test started there, whatever the test's outcome


@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sequential")
    (folder / "config.yml").write_text(CONFIG)
    run_cli("Deterministic", "config.yml", cwd=folder, check_rc=0)
    return comparable(folder / "out")


def calls(out: Path) -> dict[str, int]:
    """Iterations computed per repetition (one byte per `iterate` call), by folder."""
    return {str(path.parent.relative_to(out)): path.stat().st_size for path in out.rglob("calls")}


def test_a_hostfile_sweep_runs_on_both_hosts_as_a_sequential_run(hosts, tmp_path, sequential):
    (tmp_path / "config.yml").write_text(CONFIG)
    started = time.monotonic()
    result = hosts.run(hosts.mpi_command(RANKS, SCRIPT, "Deterministic", "config.yml"), cwd=tmp_path)
    across = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"3 MPI workers ({RANKS} ranks)" in result.stderr and "6 finished, 0 failed" in result.stderr
    out = tmp_path / "out"
    run = json.loads((out / "runs.jsonl").read_text().splitlines()[0])
    assert run["hosts"] == sorted([hosts.first.name, hosts.second.name]) and run["mpi_size"] == RANKS
    states = repetition_states(out).values()
    assert len(states) == REPETITIONS and {state["state"] for state in states} == {"finished"}
    assert {state["host"] for state in states} == {hosts.first.name, hosts.second.name}
    pd.testing.assert_frame_equal(sequential, comparable(out))

    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "config.yml").write_text(CONFIG)
    started = time.monotonic()
    run_mpi(RANKS, "Deterministic", "config.yml", cwd=tmp_path / "one", check_rc=0)
    print(f"\nthe sweep, {RANKS} ranks, mpiexec to exit: {across:.1f} s across two hosts, "
          f"{time.monotonic() - started:.1f} s on one")


def test_a_host_killed_mid_run_aborts_the_job_and_a_resume_loses_and_redoes_nothing(hosts, tmp_path, sequential):
    """Every process of the second host dies at once while its two workers hold a repetition each (one
    iteration done, the next waiting on a gate): the job ends (MPI semantics), with every process of the
    first host; a resume finishes every repetition, without computing any iteration twice."""
    (tmp_path / "config.yml").write_text(CONFIG)
    out = tmp_path / "out"
    gate = {"CW_TEST_GATE": str(tmp_path / "gate"), "CW_TEST_HOST": hosts.second.name}
    command = hosts.mpi_command(RANKS, CLIENTS, "OnOneHost", "config.yml", export=tuple(gate))
    process = hosts.start(command, cwd=tmp_path, env=gate)

    def held():  # (status.json is written as a repetition ends; the gate leaves `waiting` on the second host)
        assert process.poll() is None, process.communicate()
        finished = [rep for rep, state in repetition_states(out).items() if state["state"] == "finished"]
        return len(list(out.rglob("waiting"))) == 2 and finished

    finished = wait_until(held, 120, "two repetitions held on the second host, one finished on the first")
    killed = time.monotonic()
    hosts.kill(hosts.second)
    wait_until(lambda: process.poll() is not None, 120, "mpiexec ends once a host is gone")
    ended = time.monotonic() - killed
    wait_until(lambda: not hosts.processes(hosts.first), 60, "every process of the first host ends with the job")
    # (its exit status: 0 here as often as not, although rank 0 died of MPI_ERRORS_ARE_FATAL: Open MPI's)
    print(f"\nsecond host killed -> mpiexec exited {process.returncode} after {ended:.1f} s")

    load_results(out)  # every file readable
    before = calls(out)
    assert all(before[rep] == ITERATIONS for rep in finished)
    result = hosts.run(hosts.mpi_command(RANKS, CLIENTS, "OnOneHost", "config.yml"), cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    states = repetition_states(out).values()
    assert len(states) == REPETITIONS and {state["state"] for state in states} == {"finished"}
    after = calls(out)  # nothing computed twice, the finished repetitions untouched
    assert len(after) == REPETITIONS and set(after.values()) == {ITERATIONS}, (before, after)
    pd.testing.assert_frame_equal(sequential, comparable(out))

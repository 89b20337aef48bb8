"""Native crashes with local worker processes (`-n`): a worker that dies by a signal or exits without
reporting fails exactly the repetition it was running, named with the signal and the iteration, its
Python stack (where faulthandler can) in the repetition's log; every other repetition finishes."""
from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import pytest
from conftest import ROOT, run_cli
from crash_clients import Crashing, RaisesOSError
from kills import dead
from polls import wait_for
from pool_helpers import SETTINGS, experiment, rep_folder, run_all, saved_rows, status

from cluster_work.backends import LocalProcessExecutor
from cluster_work.deaths import describe_death
from cluster_work.errors import ClusterWorkError
from cluster_work.runner import ExperimentTask
from cluster_work.stopping import request_stop, stop_signals_handled
from cluster_work.vocabulary import ConfigWrite, OutcomeKind, Segment

CRASH_SCRIPT = str(ROOT / "tests" / "crash_clients.py")


@pytest.fixture(autouse=True)
def fresh_stop_flag():
    with stop_signals_handled():
        yield


# how the worker dies, the words that must name it, whether faulthandler leaves the Python stack
CRASHES = [
    ("segv", "killed by SIGSEGV (segmentation fault)", True),
    ("null", "killed by SIGSEGV (segmentation fault)", True),
    ("sigkill", "killed by SIGKILL (out of memory?", False),
    ("abort", "killed by SIGABRT (aborted", True),
    ("sigbus", "killed by SIGBUS (bus error", True),
    ("sigfpe", "killed by SIGFPE (floating point exception", True),
    ("exit3", "exited with status 3 without reporting", False),
]


@pytest.mark.processes
@pytest.mark.parametrize("how, words, stack", CRASHES, ids=[crash[0] for crash in CRASHES])
def test_a_native_crash_fails_only_its_repetition(tmp_path, how, words, stack):
    exp = experiment(tmp_path, crash=f"0:{how}", crash_at=1, sleep=0.02)
    # two workers, four items: each worker runs one and holds one, so rep 2 waits on the worker that dies
    segments = [Segment(rep, exp, rep, config=ConfigWrite.IF_MISSING if rep == 0 else ConfigWrite.KEEP,
                        run_id="r1") for rep in range(4)]  # a run's: its attempts name each worker's fault log
    with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 2, "forkserver") as executor:
        outcomes = run_all(executor, segments)
    failed = outcomes.pop(0)
    assert {rep: o.kind for rep, o in outcomes.items()} == {rep: OutcomeKind.FINISHED for rep in (1, 2, 3)}
    assert failed.kind == OutcomeKind.FAILED, failed
    assert words in failed.error and failed.error.endswith("in iteration 1"), failed.error
    assert failed.error.startswith("worker process ") and failed.iterations_done == 1
    recorded = status(exp, 0)
    assert recorded["state"] == "failed" and recorded["error"] == failed.error and recorded["iterations_done"] == 1
    assert saved_rows(exp, 0) == 1
    # the stack in the dead worker's fault log beside its attempts journal (one file a process, not one a
    # repetition); the surviving workers' were empty, and removed as they exited
    logs = list((tmp_path / ".cluster_work_attempts").glob("fault-*.log"))
    if stack:
        [log] = logs
        text = log.read_text()
        assert "Fatal Python error" in text and "crash_clients.py" in text and " in iterate" in text, text
        assert failed.log_file == str(log)
    else:
        # (a process killed by SIGKILL or exit() leaves its fault log empty: nothing to name)
        assert failed.log_file is None and not any(log.stat().st_size for log in logs)
    for rep in range(4):
        assert not (rep_folder(exp, rep) / "rep.log").exists()


@pytest.mark.processes
def test_a_worker_killed_while_idle_costs_nothing(tmp_path):
    exp = experiment(tmp_path, repetitions=6, iterations=2)
    with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 2, "forkserver") as executor:
        first = run_all(executor, [Segment(0, exp, 0, config=ConfigWrite.IF_MISSING)])
        pid = int((rep_folder(exp, 0) / "pid").read_text())
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: dead(pid), "the idle worker's death")  # (reaped at any instant: no race with /proc)
        outcomes = run_all(executor, [Segment(rep, exp, rep) for rep in range(1, 6)])  # one is sent to the dead one
    assert first[0].kind == OutcomeKind.FINISHED
    assert {o.kind for o in outcomes.values()} == {OutcomeKind.FINISHED} and len(outcomes) == 5


@pytest.mark.processes
def test_a_worker_killed_while_the_run_stops_is_interrupted(tmp_path):
    gate = tmp_path / "gate"
    exp = experiment(tmp_path, repetitions=1, iterations=4, gate=str(gate), gate_at=1)
    with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 2, "forkserver") as executor:
        executor.submit(Segment(0, exp, 0, config=ConfigWrite.IF_MISSING))
        wait_for(lambda: Path(f"{gate}.0.waiting").exists(), "the repetition at its gate")
        request_stop()
        executor.forward_stop()
        os.kill(int((rep_folder(exp, 0) / "pid").read_text()), signal.SIGKILL)
        outcome = executor.next_outcome()
    assert outcome.kind == OutcomeKind.INTERRUPTED
    assert status(exp, 0).get("state") != "failed"


@pytest.mark.processes
@pytest.mark.parametrize("start", ["forkserver", "fork"])
def test_a_repetition_whose_lock_a_live_process_still_holds_is_not_written(tmp_path, start):
    """The worker forks a child (which inherits the locked results file, and under the fork start method the
    worker's sentinel too) and dies: the parent must see the death, and not write the repetition while the
    child lives."""
    child_pid = tmp_path / "child"
    exp = experiment(tmp_path, repetitions=1, crash="0:fork-then-kill", crash_at=1, child_pid_file=str(child_pid))
    try:
        with LocalProcessExecutor(ExperimentTask(Crashing, SETTINGS), 1, start) as executor:
            [outcome] = run_all(executor, [Segment(0, exp, 0, config=ConfigWrite.IF_MISSING)]).values()
            child_alive = os.path.exists(f"/proc/{child_pid.read_text()}")
    finally:
        if child_pid.exists():
            os.kill(int(child_pid.read_text()), signal.SIGKILL)
    assert child_alive  # the child sleeps two minutes: the death was seen while it lived
    assert outcome.kind == OutcomeKind.FAILED and "killed by SIGKILL" in outcome.error
    assert "not recorded: a live process still holds the repetition" in outcome.error
    assert status(exp, 0).get("state") != "failed"


class DiesOnArrival:
    """A task whose unpickling ends the worker process: every worker dies before it begins anything."""

    def __reduce__(self):
        return os._exit, (4,)

    def __call__(self, item, context):
        raise AssertionError("never runs")


@pytest.mark.processes
def test_workers_that_die_at_start_stop_the_run_with_the_cause(tmp_path):
    exp = experiment(tmp_path, repetitions=1)
    with LocalProcessExecutor(DiesOnArrival(), 2, "forkserver") as executor:
        executor.submit(Segment(0, exp, 0))
        with pytest.raises(ClusterWorkError, match="died before running anything.*exited with status 4"):
            while True:
                executor.next_outcome()
    assert not Path(exp.path).exists()  # the item never ran: nothing written


@pytest.mark.processes
def test_an_error_a_task_raises_in_a_worker_is_raised_here_with_its_traceback(tmp_path):
    exp = experiment(tmp_path, repetitions=1)
    with LocalProcessExecutor(RaisesOSError(), 2, "forkserver") as executor:
        executor.submit(Segment(7, exp, 0))
        with pytest.raises(FileNotFoundError, match="/nonexistent/7") as raised:
            executor.next_outcome()
        assert executor.in_flight() == 0
    assert "in the worker process" in str(raised.value.__cause__) and "crash_clients.py" in str(raised.value.__cause__)


@pytest.mark.parametrize("exitcode, words", [
    (-signal.SIGKILL, "killed by SIGKILL (out of memory? the kernel's OOM killer sends SIGKILL)"),
    (-signal.SIGSEGV, "killed by SIGSEGV (segmentation fault)"),
    (-signal.SIGTERM, "killed by SIGTERM (terminated)"),
    (3, "exited with status 3 without reporting"),
    (0, "exited with status 0 without reporting"),
    (-200, "killed by signal 200"),
    (None, "died (how is unknown)"),
], ids=["sigkill", "sigsegv", "sigterm", "status-3", "status-0", "unknown-signal", "unknown"])
def test_describe_death(exitcode, words):
    assert describe_death(exitcode) == words


CONFIG = """\
name: grid
repetitions: 6
iterations: 4
path: out
params: {crash: "1:sigkill,3:segv", crash_at: 2, sleep: 0.05}
"""


@pytest.mark.processes
@pytest.mark.slow
def test_two_crashes_in_a_sweep_fail_two_repetitions_and_a_rerun_retries_only_them(tmp_path, monkeypatch):
    (tmp_path / "config.yml").write_text(CONFIG)
    first = run_cli("Crashing", "config.yml", "-n", "2", cwd=tmp_path, script=CRASH_SCRIPT)
    output = first.stdout + first.stderr
    assert first.returncode == 1, output  # failures: the exit status the CLI gives any failed repetition
    experiment_folder = tmp_path / "out" / "grid"
    reps = experiment_folder / "log"
    for rep, words in ((1, "killed by SIGKILL"), (3, "killed by SIGSEGV (segmentation fault)")):
        recorded = status(experiment_folder, rep)
        assert recorded["state"] == "failed" and recorded["iterations_done"] == 2, recorded
        assert words in recorded["error"] and recorded["error"].endswith("in iteration 2"), recorded
        assert f"grid rep {rep}: failed: worker process" in output and words in output
    assert output.count(": failed: ") == 2, output
    named = re.search(r"grid rep 3: .*; traceback in (\S+)", output)  # the dead worker's fault log
    assert named and "Fatal Python error: Segmentation fault" in (tmp_path / named.group(1)).read_text(), output
    assert {rep: saved_rows(experiment_folder, rep) for rep in range(6)} == {0: 4, 1: 2, 2: 4, 3: 2, 4: 4, 5: 4}

    progress = run_cli("Crashing", "config.yml", "-P", cwd=tmp_path, script=CRASH_SCRIPT, check_rc=0).stdout
    failed_lines = [line for line in progress.splitlines() if "failed" in line and "worker process" in line]
    assert len(failed_lines) == 2 and "SIGKILL" in failed_lines[0] and "SIGSEGV" in failed_lines[1], progress

    calls = {rep: (reps / f"rep_{rep:02d}" / "calls").read_bytes() for rep in range(6)}
    monkeypatch.setenv("CW_NO_CRASH", "1")
    run_cli("Crashing", "config.yml", "-n", "2", cwd=tmp_path, script=CRASH_SCRIPT, check_rc=0)
    again = {rep: (reps / f"rep_{rep:02d}" / "calls").read_bytes() for rep in range(6)}
    assert {rep for rep in range(6) if again[rep] != calls[rep]} == {1, 3}  # only the failed ones ran again
    assert all(saved_rows(experiment_folder, rep) == 4 for rep in range(6))

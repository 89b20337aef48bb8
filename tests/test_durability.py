"""Crash safety and clean stops with real processes: kill -9 at random instants, SIGTERM, SIGINT."""
import fcntl
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from conftest import SCRIPT, comparable, run_cli, script_env
from experiments import NO_SLEEP
from kills import assert_every_file_readable, kill_session
from polls import saved_rows, stops_noted, wait_for
from repetition_files import is_status, repetition_key, results_files, statuses

pytestmark = pytest.mark.processes  # every test here starts real processes

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 12
path: out
params: {sleep: 0.02, count_calls: true}
---
name: walk
grid:
  step: [1.0, 2.0]
"""
TIMING = ("iteration_time", "repetition_time")  # the only columns that differ between equal runs


def start(cwd, *args, experiment="Deterministic", env=()):
    return subprocess.Popen([sys.executable, SCRIPT, experiment, "config.yml", *args], cwd=cwd,
                            env={**script_env(), **dict(env)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def locked(out):
    """The repetition folders (relative to `out`) whose results file a live process holds locked, found by
    trying a shared lock from this process: what the kernel says, whatever cluster_work reports."""
    held = []
    for path in results_files(out):
        with open(path, "rb") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append(repetition_key(path, out))
    return held


def progress_states(cwd):
    """{(experiment, rep): state} of every repetition, as `-P --json` reports them."""
    report = json.loads(run_cli("Deterministic", "config.yml", "-P", "--json", cwd=cwd, check_rc=0).stdout)
    return {(item["name"], rep["rep"]): rep["state"] for item in report["experiments"]
            for rep in item["repetition_list"]}


def running(cwd):
    """The repetitions `-P` reports as running (it must read that off the locks alone)."""
    return sorted(key for key, state in progress_states(cwd).items() if state == "running")


def repetition_of(folder):
    """`walk/s1.0/log/rep_02` -> ("walk__s1.0", 2): the experiment's name and the repetition, as runs name them."""
    experiment, rep = folder.split("/log/rep_")
    return experiment.replace("/", "__"), int(rep)


def saved_repetitions(out):
    """Each repetition's complete rows (a torn last line left out) read with plain json, without the timing
    columns, keyed by its folder relative to `out`."""
    return {repetition_key(path, out): [{k: v for k, v in json.loads(line).items() if k not in TIMING}
                                        for line in path.read_text().split("\n")[:-1] if not is_status(line)]
            for path in results_files(out)}


def wait_until_running(folder, count=1, timeout=60):
    """Until `count` repetitions have opened their results file (the run has really started)."""
    wait_for(lambda: len(results_files(folder)) >= count,
             f"{count} repetition(s) to open their results", timeout)


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_9_at_random_instants_loses_nothing_and_redoes_little(tmp_path_factory, workers):
    import pandas as pd
    long = CONFIG.replace("iterations: 12", "iterations: 24").replace("sleep: 0.02", "sleep: 0.05")
    clean = tmp_path_factory.mktemp("clean")
    (clean / "config.yml").write_text(long)
    uninterrupted = start(clean, "-n", workers, env={NO_SLEEP: "1"})  # meanwhile: what the killed ones add up to

    crashed = tmp_path_factory.mktemp("crashed")
    (crashed / "config.yml").write_text(long)
    instants = random.Random(1234 + int(workers))
    kills, after_kills = 0, []
    for _ in range(5):
        # each kill lands at a random instant after the run saved a row, so that it always costs progress
        # (3.6 s of work with 2 workers) but never finishes the sweep before the kills are done
        saved = saved_rows(crashed / "out")
        process = start(crashed, "-n", workers)
        deadline = time.time() + 60
        while saved_rows(crashed / "out") == saved and process.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        time.sleep(instants.uniform(0.0, 0.3))
        if process.poll() is not None:
            break
        kill_session(process)
        kills += 1
        assert_every_file_readable(crashed / "out")
        after_kills.append(saved_repetitions(crashed / "out"))
        assert locked(crashed / "out") == []  # the kernel dropped every lock with its dead holder
    assert kills == 5
    _, stderr = uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0, stderr.decode()
    expected = saved_repetitions(clean / "out")
    for saved in after_kills:
        for folder, rows in saved.items():  # nothing wrong was ever saved
            assert rows == expected[folder][:len(rows)], folder
    assert running(crashed) == []  # no stale "running": -P reads the locks (see the test of -P below)
    # two kills in a row may both land in one repetition's same iteration, which no SIGKILL explains: then the
    # quarantine holds it back, as it would a poison pill (README: an innocent costs a --retry-failed)
    rest = start(crashed, "-n", workers, "--retry-failed", env={NO_SLEEP: "1"})  # (its pace matters no more)
    _, stderr = rest.communicate(timeout=120)
    assert rest.returncode == 0, stderr.decode()

    pd.testing.assert_frame_equal(comparable(clean / "out"), comparable(crashed / "out"))
    calls = sum(p.stat().st_size for p in (crashed / "out").rglob("calls"))
    rows = 2 * 3 * 24
    # each kill may cost at most the iteration in flight in each worker
    assert rows <= calls <= rows + kills * int(workers)


@pytest.mark.slow
@pytest.mark.parametrize("deliver", [
    pytest.param(lambda process: process.send_signal(signal.SIGTERM), id="SIGTERM-to-the-run"),
    pytest.param(lambda process: os.killpg(process.pid, signal.SIGINT), id="Ctrl-C-to-the-process-group"),
])
def test_a_stop_signal_finishes_the_iterations_in_flight_and_the_same_command_resumes(tmp_path, deliver):
    (tmp_path / "config.yml").write_text(CONFIG)
    process = start(tmp_path, "-n", "2")
    wait_until_running(tmp_path / "out", 2)
    wait_for(lambda: saved_rows(tmp_path / "out") >= 2, "rows to be saved")  # iterations are running
    deliver(process)
    _, stderr = process.communicate(timeout=30)
    stderr = stderr.decode()
    assert process.returncode == 130, stderr
    assert "to resume or retry:" in stderr and "Traceback" not in stderr
    assert_every_file_readable(tmp_path / "out")
    states = [found["state"] for found in statuses(tmp_path / "out")]
    assert set(states) <= {"interrupted", "finished"} and states.count("finished") < 6, states
    deadline = time.time() + 30  # the run has exited; its workers must follow it, dropping their locks
    while locked(tmp_path / "out") and time.time() < deadline:
        time.sleep(0.02)
    assert locked(tmp_path / "out") == [] and running(tmp_path) == []
    run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0, env={NO_SLEEP: "1"})  # (its pace: no matter)
    calls = sum(p.stat().st_size for p in (tmp_path / "out").rglob("calls"))
    assert calls == 2 * 3 * 12  # a clean stop redoes nothing


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_second_ctrl_c_stops_at_once_and_keeps_saved_rows(tmp_path, workers):
    (tmp_path / "config.yml").write_text(CONFIG.replace("sleep: 0.02", "sleep: 30.0"))
    process = start(tmp_path, "-n", workers)
    # an iteration of 30 s in flight (count_calls: its first byte is written as it begins): without it the
    # first Ctrl-C may land before any iteration began, and the run ends before the second one comes
    wait_for(lambda: any(path.stat().st_size for path in (tmp_path / "out").rglob("calls")), "an iteration to begin")
    os.killpg(process.pid, signal.SIGINT)
    wait_for(lambda: stops_noted(tmp_path / "out", process.pid) >= 1, "the first Ctrl-C to be handled")  # (or merged)
    began = time.monotonic()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    # did not wait for the 30 s iteration in flight (a bound no load on shared cores comes near)
    assert time.monotonic() - began < 20
    assert process.returncode == 130, stderr.decode()
    assert "stopped at once" in stderr.decode() and "Traceback" not in stderr.decode()
    assert_every_file_readable(tmp_path / "out")


@pytest.mark.slow
def test_progress_sees_running_repetitions_by_their_lock_not_a_stale_status(tmp_path):
    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 2\niterations: 50\npath: out\n"
                                         "params: {sleep: 0.3}\n")
    process = start(tmp_path)
    deadline = time.time() + 30
    while not (locked(tmp_path / "out") and saved_rows(tmp_path / "out")) and time.time() < deadline:
        time.sleep(0.02)
    [folder] = locked(tmp_path / "out")  # one worker, inside a repetition of 15 s with a row saved
    mine = repetition_of(folder)
    other = {("w", rep): "pending" for rep in (0, 1) if ("w", rep) != mine}
    assert progress_states(tmp_path) == {mine: "running", **other}
    kill_session(process)
    assert progress_states(tmp_path) == {mine: "partial", **other}


@pytest.mark.slow
def test_two_concurrent_runs_of_one_sweep_write_each_repetition_once(tmp_path_factory):
    quick = CONFIG.replace("sleep: 0.02", "sleep: 0.0")  # the gate, not the timing, makes the runs overlap
    clean = tmp_path_factory.mktemp("clean")
    (clean / "config.yml").write_text(quick)
    run_cli("Gated", "config.yml", cwd=clean, check_rc=0)

    shared = tmp_path_factory.mktemp("shared")
    (shared / "config.yml").write_text(quick)
    gate = shared / "gate"
    # the first run's two workers each save a row, then hold their repetition until the gate opens
    first = start(shared, "-n", "2", experiment="Gated", env={"CW_TEST_GATE": str(gate)})
    try:
        deadline = time.time() + 60
        while len(locked(shared / "out")) < 2 and first.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        held = locked(shared / "out")
        assert len(held) == 2, held
        second = run_cli("Gated", "config.yml", cwd=shared)  # runs to its end while the first holds two
        assert locked(shared / "out") == held  # the first run held them all along
    finally:
        gate.touch()
    _, stderr = first.communicate(timeout=120)
    assert second.returncode == 0, second.stderr  # skipping what another run holds is no failure
    for experiment, rep in map(repetition_of, held):
        assert f"{experiment} rep {rep}: skipped, held by another run" in second.stderr, second.stderr
    assert "4 finished" in second.stderr and "2 held by another run" in second.stderr, second.stderr
    # the first run finished what it held, and left what the second finished
    assert first.returncode == 0 and "2 finished" in stderr.decode(), stderr.decode()
    assert saved_repetitions(shared / "out") == saved_repetitions(clean / "out")
    calls = sum(p.stat().st_size for p in (shared / "out").rglob("calls"))
    assert calls == 2 * 3 * 12  # no iteration ran twice
    rerun = run_cli("Gated", "config.yml", cwd=shared, check_rc=0)
    assert "0 jobs" in rerun.stderr


def test_a_second_ctrl_c_while_the_run_s_end_is_made_durable_stops_with_130(tmp_path, cli, monkeypatch):
    """Every job ended, then a second Ctrl-C lands in the final commit (the handler raises KeyboardInterrupt
    wherever the main thread is): the run stops at once with exit 130 and its end recorded, not a traceback."""
    from cluster_work import cli as command_line

    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 2\niterations: 2\npath: out\nparams: {sleep: 0}\n")
    calls = []

    def interrupted_commit():
        calls.append(1)
        raise KeyboardInterrupt

    monkeypatch.setattr(command_line.committer, "commit", interrupted_commit)
    result = cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=130)
    assert calls and "stopped at once" in result.stderr and "Traceback" not in result.stderr, result.stderr
    [ended] = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()
               if json.loads(line).get("event") == "ended"]
    assert ended["exit_status"] == 130, ended

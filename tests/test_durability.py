"""Crash safety and clean stops with real processes: kill -9 at random instants, SIGTERM, SIGINT."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import SCRIPT, comparable, descendants, run_cli, script_env

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



def start(cwd, *args):
    return subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", *args], cwd=cwd,
                            env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)


def kill_session(process):
    """Kill the run and every process below it at once, as a node failure would (MPICH's ranks each
    have a session of their own, so the process tree is what holds a run together)."""
    for pid in [process.pid, *descendants(process.pid)]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def wait_until_running(folder, count=1, timeout=60, rows=0):
    """Until `count` repetitions have opened their results file (the run has really started), each with at
    least `rows` rows saved."""
    deadline = time.time() + timeout

    def started() -> int:
        return sum(1 for path in Path(folder).rglob("results.jsonl") if path.read_bytes().count(b"\n") >= rows)
    while started() < count and time.time() < deadline:
        time.sleep(0.02)


def saved_rows(out):
    return sum(path.read_bytes().count(b"\n") for path in Path(out).rglob("results.jsonl"))


def assert_every_file_readable(out):
    for path in Path(out).rglob("*"):
        if path.name == "config.yml":
            assert isinstance(yaml.safe_load(path.read_text()), dict), path
        elif path.name == "status.json":
            json.loads(path.read_text())
        elif path.name == "results.jsonl":
            lines = path.read_bytes().split(b"\n")
            for number, line in enumerate(lines[:-1]):  # every complete line is a row in order
                assert json.loads(line)["iteration"] == number, path


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_kill_9_at_random_instants_loses_nothing_and_redoes_little(tmp_path_factory, workers):
    long = CONFIG.replace("iterations: 12", "iterations: 24").replace("sleep: 0.02", "sleep: 0.05")
    clean = tmp_path_factory.mktemp("clean")
    (clean / "config.yml").write_text(long)
    run_cli("Deterministic", "config.yml", "-n", workers, cwd=clean, check_rc=0)

    crashed = tmp_path_factory.mktemp("crashed")
    (crashed / "config.yml").write_text(long)
    instants = random.Random(1234 + int(workers))
    kills = 0
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
    assert kills == 5
    run_cli("Deterministic", "config.yml", "-n", workers, cwd=crashed, check_rc=0)

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
    time.sleep(0.3)
    deliver(process)
    _, stderr = process.communicate(timeout=30)
    stderr = stderr.decode()
    assert process.returncode == 130, stderr
    assert "to resume or retry:" in stderr and "Traceback" not in stderr
    assert_every_file_readable(tmp_path / "out")
    states = [json.loads(p.read_text())["state"] for p in (tmp_path / "out").rglob("status.json")]
    assert set(states) <= {"interrupted", "finished"} and states.count("finished") < 6, states
    run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    calls = sum(p.stat().st_size for p in (tmp_path / "out").rglob("calls"))
    assert calls == 2 * 3 * 12  # a clean stop redoes nothing


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_second_ctrl_c_stops_at_once_and_keeps_saved_rows(tmp_path, workers):
    (tmp_path / "config.yml").write_text(CONFIG.replace("sleep: 0.02", "sleep: 2.0"))
    process = start(tmp_path, "-n", workers)
    wait_until_running(tmp_path / "out")
    time.sleep(0.3)
    os.killpg(process.pid, signal.SIGINT)
    time.sleep(0.3)
    began = time.time()
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=30)
    assert time.time() - began < 1.5  # did not wait for the 2 s iteration in flight
    assert process.returncode == 130, stderr.decode()
    assert "stopped at once" in stderr.decode() and "Traceback" not in stderr.decode()
    assert_every_file_readable(tmp_path / "out")


@pytest.mark.slow
def test_progress_sees_running_repetitions_by_their_lock_not_a_stale_status(tmp_path):
    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 2\niterations: 50\npath: out\n"
                                         "params: {sleep: 0.1}\n")
    process = start(tmp_path)
    deadline = time.time() + 30
    while not list((tmp_path / "out").rglob("results.jsonl")) and time.time() < deadline:
        time.sleep(0.05)
    progress = run_cli("Deterministic", "config.yml", "-P", cwd=tmp_path, check_rc=0).stdout
    assert "running" in progress
    kill_session(process)
    progress = run_cli("Deterministic", "config.yml", "-P", cwd=tmp_path, check_rc=0).stdout
    assert "running" not in progress.split("mean it. time")[1] and "partial" in progress


@pytest.mark.slow
def test_two_concurrent_runs_of_one_sweep_write_each_repetition_once(tmp_path_factory):
    slow = CONFIG.replace("sleep: 0.02", "sleep: 0.1")  # a repetition lasts 1.2 s: the runs surely overlap
    clean = tmp_path_factory.mktemp("clean")
    (clean / "config.yml").write_text(slow)
    run_cli("Deterministic", "config.yml", "-n", "2", cwd=clean, check_rc=0)

    shared = tmp_path_factory.mktemp("shared")
    (shared / "config.yml").write_text(slow)
    first = start(shared, "-n", "2")
    wait_until_running(shared / "out", 2, rows=1)  # the second starts while the first is inside two repetitions
    second = start(shared)
    outputs = [process.communicate(timeout=120)[1].decode() for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, outputs
    assert any("held by another run" in output for output in outputs), outputs
    pd.testing.assert_frame_equal(comparable(clean / "out"), comparable(shared / "out"))
    calls = sum(p.stat().st_size for p in (shared / "out").rglob("calls"))
    assert calls == 2 * 3 * 12  # no iteration ran twice
    rerun = run_cli("Deterministic", "config.yml", cwd=shared, check_rc=0)
    assert "0 jobs" in rerun.stderr

"""The default layout's one file per repetition (`log/rep_NN.jsonl`: rows and status records), beside the folder
layout an earlier version wrote (`log/rep_NN/results.jsonl` and `status.json`), which a sweep keeps where it has
it: status records, torn lines, cutting back, resuming an old sweep, a mixed one, kill -9, -d, a native crash."""
from __future__ import annotations

import fcntl
import json
import os
import re
import signal
import subprocess
import sys

import pytest
from backend_clients import Counting
from conftest import ROOT, SCRIPT, descendants, run_cli, script_env
from kills import assert_every_file_readable
from polls import wait_for
from repetition_files import (
    STATUS_KEY,
    lines,
    rep_folder,
    repetition_file,
    rows,
    status,
    to_folder_layout,
    write_folder_layout,
)
from store_helpers import kill_9

from cluster_work import load_results
from cluster_work.attempts import compact, lost_attempt_signal
from cluster_work.expansion import expand_all
from cluster_work.repetition_state import read_repetition
from cluster_work.runner import run_segment
from cluster_work.store import ExperimentStore
from cluster_work.vocabulary import ConfigWrite, Record, RepetitionState, RunSettings, Segment

SETTINGS = RunSettings(log_level="WARNING", sync=False)
CRASH_SCRIPT = str(ROOT / "tests" / "crash_clients.py")


def counting(folder, iterations: int = 4, repetitions: int = 2):
    [expanded] = expand_all([{"name": "c", "repetitions": repetitions, "iterations": iterations,
                              "path": str(folder)}], Counting._default_params)
    return expanded


def record(fields) -> str:
    return json.dumps({STATUS_KEY: fields}) + "\n"


# --- the file's format, in-process ---------------------------------------------------------------------------

def test_a_repetition_stopped_before_it_ever_ran_is_a_file_with_only_a_status(tmp_path):
    """What a campaign writes for a repetition no one runs: one status record, in the repetition's one file."""
    exp = counting(tmp_path)
    store = ExperimentStore(exp.path).repetition(1)
    store.write_status(Record.STOPPED, reason="halving", iterations_done=0, iterations=4)
    assert sorted(os.listdir(tmp_path / "c" / "log")) == ["rep_01.jsonl"]
    [line] = lines(exp, 1)
    assert json.loads(line)[STATUS_KEY]["reason"] == "halving" and rows(exp, 1) == []
    view = read_repetition(store, 4)
    assert (view.state, view.iterations_saved) == (RepetitionState.STOPPED, 0)


def test_the_last_complete_status_record_wins_and_a_torn_one_is_ignored(tmp_path):
    exp = counting(tmp_path)
    run_segment(Counting, Segment(0, exp, 0, until=2), SETTINGS)  # a status: reached 2
    store = ExperimentStore(exp.path).repetition(0)
    assert store.read_status()["state"] == "reached"
    with open(repetition_file(exp, 0), "a") as handle:
        handle.write(record({"state": "failed", "error": "x"}) + record({"state": "interrupted"})[:20])  # torn
    assert store.read_status()["state"] == "failed"
    assert [row["iteration"] for row in store.read_results().rows] == [0, 1]
    # a status written without the lock (a campaign's) after a torn line starts a line of its own
    store.write_status(Record.STOPPED, reason="r", iterations_done=2, iterations=4)
    assert store.read_status()["reason"] == "r" and read_repetition(store, 4).state == RepetitionState.STOPPED


def test_a_status_among_the_rows_is_never_a_row_and_cutting_back_keeps_it(tmp_path):
    """A resumed repetition appends rows after its status record; `-r/-i` cuts the rows back and the record stays
    its status (as a status.json would), appended again where the cut took it."""
    exp = counting(tmp_path)
    run_segment(Counting, Segment(0, exp, 0, until=2, config=ConfigWrite.IF_MISSING), SETTINGS)
    run_segment(Counting, Segment(1, exp, 0), SETTINGS)
    assert [row["total"] for row in rows(exp, 0)] == [0, 1, 3, 6]
    assert [json.loads(line).get(STATUS_KEY, {}).get("state") for line in lines(exp, 0)] == [
        None, None, "reached", None, None, "finished"]
    assert load_results(tmp_path).groupby("rep").size().to_dict() == {0: 4}
    again = run_segment(Counting, Segment(2, exp, 0, restart_from=1), SETTINGS)
    assert again.iterations_run == 3 and [row["total"] for row in rows(exp, 0)] == [0, 1, 3, 6]
    assert status(exp, 0)["state"] == "finished" and status(exp, 0)["iterations_done"] == 4
    assert read_repetition(ExperimentStore(exp.path).repetition(0), 4).state == RepetitionState.FINISHED


def test_an_earlier_versions_repetition_is_read_and_continued_in_its_own_layout(tmp_path):
    """A repetition with `log/rep_NN/results.jsonl` (and status.json) stays in that layout; a new one beside it,
    of the same experiment, gets its one file (a mixed sweep)."""
    exp = counting(tmp_path, repetitions=3)
    run_segment(Counting, Segment(0, exp, 0, until=2, config=ConfigWrite.IF_MISSING), SETTINGS)
    old = to_folder_layout(exp, 0)  # rows 0, 1 and a reached status, as an earlier version left them
    assert json.loads((old / "status.json").read_text())["state"] == "reached"
    store = ExperimentStore(exp.path).repetition(0)
    assert store.in_folder and len(store.read_results()) == 2 and store.read_status()["state"] == "reached"
    for rep in (0, 1):
        assert run_segment(Counting, Segment(rep, exp, rep), SETTINGS).iterations_done == 4
    assert sorted(os.listdir(tmp_path / "c" / "log")) == ["rep_00", "rep_01.jsonl"]
    assert sorted(os.listdir(old)) == ["results.jsonl", "status.json"]
    assert [json.loads(line)["total"] for line in (old / "results.jsonl").read_text().splitlines()] == [0, 1, 3, 6]
    assert json.loads((old / "status.json").read_text())["state"] == "finished"
    assert [row["total"] for row in rows(exp, 1)] == [1, 3, 6, 10]
    frame = load_results(tmp_path)
    assert frame.groupby("rep").size().to_dict() == {0: 4, 1: 4}


def test_delete_removes_both_layouts_files_and_only_them(tmp_path):
    exp = counting(tmp_path, repetitions=3)
    for rep in range(3):
        run_segment(Counting, Segment(rep, exp, rep, config=ConfigWrite.IF_MISSING), SETTINGS)
    to_folder_layout(exp, 1)
    (rep_folder(exp, 0) / "mine.txt").parent.mkdir()
    (rep_folder(exp, 0) / "mine.txt").write_text("the experiment's, in its folder: ours to delete, as before")
    log = tmp_path / "c" / "log"
    (log / "rep_07").mkdir()  # a folder that holds nothing of a repetition's: the user's
    (log / "notes.txt").write_text("mine")
    (tmp_path / "elsewhere.jsonl").write_text("{}\n")
    os.symlink(tmp_path / "elsewhere.jsonl", log / "rep_05.jsonl")  # never followed, never removed
    assert sorted(os.listdir(log)) == ["notes.txt", "rep_00", "rep_00.jsonl", "rep_01", "rep_02.jsonl",
                                       "rep_05.jsonl", "rep_07"]
    left = ExperimentStore(exp.path).delete()
    assert sorted(os.listdir(log)) == ["notes.txt", "rep_05.jsonl", "rep_07"]
    assert sorted(os.path.basename(path) for path in left) == ["notes.txt", "rep_05.jsonl", "rep_07"]
    assert (tmp_path / "elsewhere.jsonl").read_text() == "{}\n"


# --- whole runs ----------------------------------------------------------------------------------------------

@pytest.mark.processes
def test_an_old_sweep_is_resumed_and_extended_in_both_layouts(tmp_path, write_config):
    """A sweep an earlier version wrote (folder layout), given more iterations and repetitions: its repetitions
    continue in their folders, the new ones get one file each, and every reader sees all of them."""
    write_config("name: walk\nrepetitions: 2\niterations: 2\npath: out\ngrid: {step: [1.0, 2.0]}\n")
    run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    experiments = [tmp_path / "out" / "walk" / part for part in ("s1.0", "s2.0")]
    for experiment in experiments:
        for rep in range(2):
            (repetition_file(experiment, rep)).unlink()
            write_folder_layout(experiment, rep, [{"iteration": n, "value": 0.0, "old": True} for n in range(2)])
    write_config("name: walk\nrepetitions: 3\niterations: 3\npath: out\ngrid: {step: [1.0, 2.0]}\n")
    result = run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    assert "6 finished" in result.stderr, result.stderr
    for experiment in experiments:
        assert sorted(name for name in os.listdir(experiment / "log") if not name.startswith("rep_02")) == [
            "rep_00", "rep_01"]  # no rep_00.jsonl beside the old ones
        for rep in (0, 1):
            results = rep_folder(experiment, rep) / "results.jsonl"
            old = [json.loads(line) for line in results.read_text().splitlines()]
            assert [row["iteration"] for row in old] == [0, 1, 2] and old[0]["old"] and "old" not in old[2]
        assert [row["iteration"] for row in rows(experiment, 2)] == [0, 1, 2]
    frame = load_results(tmp_path / "out")
    assert frame.groupby(["experiment", "rep"]).size().tolist() == [3] * 6
    progress = json.loads(run_cli("Deterministic", "config.yml", "-p", "--json", cwd=tmp_path, check_rc=0).stdout)
    assert progress["total"]["finished"] == 6, progress["total"]
    assert "0 jobs to run" in run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0).stderr


@pytest.mark.processes
def test_kill_9_mid_run_then_resume_keeps_every_row_and_drops_a_torn_status(tmp_path, write_config):
    write_config("name: walk\nrepetitions: 2\niterations: 40\npath: out\nparams: {sleep: 0.02}\n")
    process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", "-n", "2"], cwd=tmp_path,
                               env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        wait_for(lambda: all(rows(tmp_path / "out" / "walk", rep) for rep in range(2)), "rows of both")
    finally:
        kill_9(process, descendants(process.pid))  # its workers too: one left would write rows after the kill
    experiment = tmp_path / "out" / "walk"
    before = {rep: rows(experiment, rep) for rep in range(2)}
    assert all(before.values())
    with open(repetition_file(experiment, 0), "a") as handle:  # a power loss's torn status record
        handle.write(record({"state": "failed", "error": "lost"})[:25])
    assert_every_file_readable(tmp_path / "out")
    assert status(experiment, 0) is None  # the torn record is no status
    run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    for rep in range(2):
        after = rows(experiment, rep)
        assert [row["iteration"] for row in after] == list(range(40))
        kept = [{k: v for k, v in row.items() if k not in ("iteration_time", "repetition_time")} for row in after]
        assert kept[:len(before[rep])] == [{k: v for k, v in row.items() if k not in ("iteration_time",
                                                                                        "repetition_time")}
                                           for row in before[rep]]
    assert all(line.endswith("}") for line in repetition_file(experiment, 0).read_text().splitlines())
    assert_every_file_readable(tmp_path / "out")


@pytest.mark.processes
@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["sequential", "two-local-workers"])
def test_a_native_crash_is_named_with_its_stack_from_the_process_fault_log(tmp_path, workers):
    """A SIGSEGV in one repetition of the default layout: its Python stack in the dying process's fault log beside
    the attempts journals (no file per repetition). -n: the summary names the death and that log; sequential (the
    run dies with it): the next reader of the attempts finds the signal there."""
    (tmp_path / "config.yml").write_text("name: c\nrepetitions: 3\niterations: 3\npath: out\n"
                                         "params: {crash: '1:null', crash_at: 1}\n")
    result = run_cli("Crashing", "config.yml", *workers, cwd=tmp_path, script=CRASH_SCRIPT)
    logs = list((tmp_path / "out" / ".cluster_work_attempts").glob("fault-*.log"))
    assert len(logs) == 1 and "Fatal Python error: Segmentation fault" in logs[0].read_text(), logs
    assert not (rep_folder(tmp_path / "out" / "c", 1) / "rep.log").exists()
    if workers:
        assert result.returncode == 1, result.stderr
        assert "c rep 1: failed: worker process" in result.stderr
        assert "killed by SIGSEGV (segmentation fault) in iteration 1" in result.stderr
        named = re.search(r"traceback in (\S+)", result.stderr)
        assert named and os.path.samefile(tmp_path / named.group(1), logs[0]), result.stderr
        assert status(tmp_path / "out" / "c", 1)["state"] == "failed"
    else:
        assert result.returncode == -signal.SIGSEGV, result.stderr
        assert lost_attempt_signal(str(tmp_path / "out"), ("c", 1)) == "SIGSEGV"
        assert lost_attempt_signal(str(tmp_path / "out"), ("c", 0)) is None  # closed: it finished


def test_a_runs_start_removes_only_the_empty_fault_logs_of_dead_processes(tmp_path):
    """A process killed, or ended with its MPI job without Python's exit, leaves its fault log empty: the next run's
    start (attempts.compact) removes it; a stack, a live process's log (locked) and a fresh one stay."""
    folder = tmp_path / ".cluster_work_attempts"
    folder.mkdir()
    dead, stack, live, fresh = (folder / f"fault-h-{pid}-t.log" for pid in (1, 2, 3, 4))
    for path in (dead, live, fresh):
        path.write_text("")
    stack.write_text("Fatal Python error: Segmentation fault\n")
    for path in (dead, stack, live):
        os.utime(path, (1, 1))
    mine = (folder / "fault-notes.txt")
    mine.write_text("")
    held = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        compact(str(tmp_path))
    finally:
        os.close(held)
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        [stack.name, live.name, fresh.name, mine.name, ".lock"])

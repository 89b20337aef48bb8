"""The compact store (`store: compact`): the same results, resumes and guarantees as the default layout, in a
few segment files instead of a folder and files per point and repetition (compact_store.py)."""
from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import SCRIPT, comparable, descendants, run_cli, script_env
from experiments import NO_SLEEP
from repetition_files import results_files
from store_helpers import kill_9

from cluster_work import load_results
from cluster_work.compact_catalog import catalog
from cluster_work.compact_store import experiment_store
from cluster_work.expansion import expand_all
from cluster_work.paths import ATTEMPTS_FOLDER, COMPACT_FOLDER, DOCUMENT_CONFIG_FILE, INDEX_FILE
from cluster_work.repetition_state import read_repetition
from cluster_work.store import RepetitionBusy
from cluster_work.vocabulary import RepetitionState

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: {iterations}
path: out
store: compact
params: {{sleep: {sleep}, count_calls: true}}
---
name: walk
grid:
  step: [1.0, 2.0]
"""


def sweep(folder: Path, iterations: int = 6, sleep: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yml").write_text(CONFIG.format(iterations=iterations, sleep=sleep))
    return folder


def rows_by_repetition(out: Path) -> dict[tuple[str, int], list[dict]]:
    frame = load_results(out).drop(columns=["iteration_time", "repetition_time"])
    return {key: group.drop(columns=["experiment", "rep"]).to_dict("records")
            for key, group in frame.groupby(["experiment", "rep"])}


def calls(out: Path) -> int:
    """Iterations run, over all runs (the experiment counts its calls, one byte each, in `_log_path_rep`)."""
    return sum(path.stat().st_size for path in out.rglob("calls"))


def states(cwd: Path) -> dict[tuple[str, int], str]:
    report = json.loads(run_cli("Deterministic", "config.yml", "-P", "--json", cwd=cwd, check_rc=0).stdout)
    return {(item["name"], rep["rep"]): rep["state"] for item in report["experiments"]
            for rep in item["repetition_list"]}


@pytest.mark.processes  # the command line, as a user runs it
def test_a_sweep_runs_resumes_and_loads_as_in_folders(tmp_path):
    folders = sweep(tmp_path / "folders")
    (folders / "config.yml").write_text((folders / "config.yml").read_text().replace("store: compact\n", ""))
    run_cli("Deterministic", "config.yml", cwd=folders, check_rc=0)
    compact = sweep(tmp_path / "compact")
    run_cli("Deterministic", "config.yml", "-e", "walk__s1.0", cwd=compact, check_rc=0)  # half, then the rest
    assert set(states(compact).values()) == {"finished", "pending"}
    rerun = run_cli("Deterministic", "config.yml", cwd=compact, check_rc=0)
    assert "3 jobs to run" in rerun.stderr, rerun.stderr  # the finished half is not run again
    pd.testing.assert_frame_equal(comparable(folders / "out"), comparable(compact / "out"))
    assert set(states(compact).values()) == {"finished"}
    assert not results_files(compact / "out") and not list((compact / "out").rglob("config.yml"))
    assert "0 jobs to run" in run_cli("Deterministic", "config.yml", cwd=compact, check_rc=0).stderr


@pytest.mark.processes  # the command line, as a user runs it
def test_restarting_a_repetition_from_an_iteration_replaces_its_later_rows(tmp_path):
    compact = sweep(tmp_path)
    run_cli("Deterministic", "config.yml", cwd=compact, check_rc=0)
    before = comparable(compact / "out")
    run_cli("Deterministic", "config.yml", "-e", "walk__s2.0", "-r", "1", "-i", "4", cwd=compact, check_rc=0)
    pd.testing.assert_frame_equal(before, comparable(compact / "out"))  # the same rows again, not more
    assert calls(compact / "out") == 2 * 3 * 6 + 2  # iterations 4 and 5 of one repetition ran again


@pytest.mark.processes  # the command line, as a user runs it
def test_delete_forgets_the_rows_and_touches_nothing_else(tmp_path):
    compact = sweep(tmp_path)
    run_cli("Deterministic", "config.yml", cwd=compact, check_rc=0)
    before = comparable(compact / "out")
    mine = compact / "out" / "walk" / COMPACT_FOLDER / "notes.txt"
    mine.write_text("mine")
    run_cli("Deterministic", "config.yml", "-d", cwd=compact, check_rc=0)
    pd.testing.assert_frame_equal(before, comparable(compact / "out"))  # each row once: the old ones forgotten
    assert mine.read_text() == "mine"
    assert calls(compact / "out") == 2 * 2 * 3 * 6  # all of it ran again


@pytest.mark.processes  # the command line, as a user runs it
def test_a_torn_last_line_is_ignored(tmp_path):
    compact = sweep(tmp_path)
    run_cli("Deterministic", "config.yml", cwd=compact, check_rc=0)
    before = comparable(compact / "out")
    [segment] = (compact / "out" / "walk" / COMPACT_FOLDER).glob("seg-*")
    with open(segment, "ab") as handle:  # as a kill in the middle of a write leaves it
        handle.write(b'{"w": ["walk__s1.0", 0], "row": {"iteration": 6, "val')
    pd.testing.assert_frame_equal(before, comparable(compact / "out"))
    assert set(states(compact).values()) == {"finished"}


HOLD = """
import sys
from cluster_work.compact_catalog import catalog
from cluster_work.compact_store import experiment_store
from cluster_work.expansion import expand_all
[exp] = expand_all([{{"name": "h", "repetitions": 2, "iterations": 3, "path": {path!r}, "store": "compact"}}])
writer = experiment_store(exp.path, exp.config).repetition(0).open_writer()
writer.append({{"iteration": 0, "x": 1}})
print("held", flush=True)
sys.stdin.read()
"""


@pytest.mark.processes
def test_a_repetition_another_process_holds_is_busy_and_running_until_it_dies(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", HOLD.format(path=str(tmp_path))], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, env=script_env())
    try:
        assert holder.stdout.readline() == b"held\n"
        [exp] = expand_all([{"name": "h", "repetitions": 2, "iterations": 3, "path": str(tmp_path),
                             "store": "compact"}])
        store = experiment_store(exp.path, exp.config)
        with pytest.raises(RepetitionBusy):
            store.repetition(0).open_writer()
        assert read_repetition(store.repetition(0), 3).state == RepetitionState.RUNNING
        other = store.repetition(1).open_writer()  # one lock per repetition, in the one locks file
        other.close(sync=False)
    finally:
        kill_9(holder)
    view = read_repetition(store.repetition(0), 3)
    assert (view.state, view.iterations_saved) == (RepetitionState.PARTIAL, 1)  # the kernel dropped its lock
    writer = store.repetition(0).open_writer()
    assert [row["x"] for row in writer.read().rows] == [1]
    writer.close(sync=False)


@pytest.mark.slow
def test_kill_9_at_random_instants_loses_nothing_and_a_resume_equals_a_clean_run(tmp_path):
    clean = sweep(tmp_path / "clean", iterations=16, sleep=0.05)
    uninterrupted = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", "-n", "2"], cwd=clean,
                                     env={**script_env(), NO_SLEEP: "1"}, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)  # meanwhile (its pace matters to no one)
    crashed = sweep(tmp_path / "crashed", iterations=16, sleep=0.05)
    instants, kills, after_kills = random.Random(25), 0, []
    for _ in range(3):
        store = crashed / "out" / "walk" / COMPACT_FOLDER
        saved = len(load_results(crashed / "out")) if store.exists() else 0
        process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", "-n", "2"], cwd=crashed,
                                   env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while (not store.exists() or len(load_results(crashed / "out")) == saved) \
                and process.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(instants.uniform(0.0, 0.3))
        if process.poll() is not None:
            break
        kill_9(process, descendants(process.pid))
        kills += 1
        after_kills.append(rows_by_repetition(crashed / "out"))
        assert "running" not in states(crashed).values()  # the kernel dropped the locks with their holders
    assert kills == 3
    _, stderr = uninterrupted.communicate(timeout=120)
    assert uninterrupted.returncode == 0, stderr
    expected = rows_by_repetition(clean / "out")
    for saved in after_kills:
        for key, rows in saved.items():  # nothing wrong was ever saved
            assert rows == expected[key][:len(rows)], key
    rest = subprocess.run([sys.executable, SCRIPT, "Deterministic", "config.yml", "-n", "2"], cwd=crashed,
                          env={**script_env(), NO_SLEEP: "1"}, capture_output=True, text=True, timeout=120)
    assert rest.returncode == 0, rest.stderr  # (the resume's pace matters no more)
    pd.testing.assert_frame_equal(comparable(clean / "out"), comparable(crashed / "out"))
    rows = 2 * 3 * 16
    assert rows <= calls(crashed / "out") <= rows + kills * 2  # each kill costs at most the iterations in flight


@pytest.mark.slow
def test_a_sweep_of_10_4_points_creates_files_per_worker_and_run_not_per_point(tmp_path):
    points = 10_000
    config = "name: g\nrepetitions: 1\niterations: 1\npath: out\nstore: compact\ngrid:\n  a: {a}\n  b: {b}\n"
    (tmp_path / "config.yml").write_text(config.format(a=list(range(100)), b=list(range(50))))  # half of it
    run_cli("GrowingResults", "config.yml", "-n", "2", cwd=tmp_path, check_rc=0, timeout=600)
    (tmp_path / "config.yml").write_text(config.format(a=list(range(100)), b=list(range(100))))  # all of it
    second = run_cli("GrowingResults", "config.yml", "-n", "2", cwd=tmp_path, check_rc=0, timeout=600)
    assert f"{points // 2:,} jobs to run" in second.stderr or f"{points // 2} jobs to run" in second.stderr
    made = sorted(os.path.relpath(os.path.join(root, name), tmp_path / "out")
                  for root, folders, files in os.walk(tmp_path / "out") for name in folders + files)
    segments = [name for name in made if os.path.basename(name).startswith("seg-")]
    assert 1 <= len(segments) <= 2 * 2  # at most one per writing process of each run
    # quarantine's journals: the folder, its summary of ended runs, at most one per process of a live run
    attempts = [name for name in made if name.split(os.sep)[0] == ATTEMPTS_FOLDER]
    assert len(attempts) <= 2 + 3 * 2, attempts
    assert sorted(set(made) - set(segments) - set(attempts)) == [  # and the index, rewritten by each run, and the
        "g", f"g/{COMPACT_FOLDER}", f"g/{COMPACT_FOLDER}/{DOCUMENT_CONFIG_FILE}",  # config its points share
        f"g/{COMPACT_FOLDER}/{INDEX_FILE}", f"g/{COMPACT_FOLDER}/locks", "runs.jsonl"]
    assert len(load_results(tmp_path / "out")) == points


@pytest.mark.processes
@pytest.mark.parametrize("extra, message", [
    pytest.param("store: compac\n", "'store': must be one of folders, compact, got 'compac'", id="a-typo"),
    pytest.param("store: compact\nensemble: {walkers: 4, coordinate: x, bins: [1.0]}\n",
                 "'store': the compact store does not hold a weighted ensemble, nor need to", id="an-ensemble"),
])
def test_a_bad_store_is_one_line_and_writes_nothing(tmp_path, extra, message):
    (tmp_path / "config.yml").write_text("name: g\nrepetitions: 1\niterations: 1\npath: out\n" + extra)
    result = run_cli("GrowingResults", "config.yml", cwd=tmp_path, check_rc=2)
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "out").exists()


def test_a_repetitions_claims_keep_their_order_when_another_hosts_clock_is_ahead(tmp_path):
    [exp] = expand_all([{"name": "h", "repetitions": 1, "iterations": 3, "path": str(tmp_path), "store": "compact"}])
    root = tmp_path / "h" / COMPACT_FOLDER
    root.mkdir(parents=True)
    ahead = time.time() + 3600  # a host whose clock is an hour ahead ran iterations 0 and 1
    events = [{"c": ["h", 0], "t": ahead, "params": {}}, {"w": ["h", 0], "row": {"iteration": 0, "x": "a0"}},
              {"w": ["h", 0], "row": {"iteration": 1, "x": "a1"}}]
    (root / "seg-other-1-00000000.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    store = experiment_store(exp.path, exp.config).repetition(0)
    writer = store.open_writer()  # then this host restarts it from iteration 1 (-r 0 -i 1)
    prefix = writer.read()
    assert [row["x"] for row in prefix.rows] == ["a0", "a1"]
    writer.keep(prefix, 1)
    writer.append({"iteration": 1, "x": "m1"})
    writer.close(sync=False)
    assert [row["x"] for row in catalog(str(root), force=True).repetition("h", 0).rows()] == ["a0", "m1"]

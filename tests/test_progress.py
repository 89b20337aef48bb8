"""Seeing a sweep's state: -p/-P/--json from disk, the live bar on a terminal, log lines in batch jobs,
the end summary and the provenance record."""
import json
import os
import pty
import re
import select
import subprocess
import sys
import time

import pytest
from conftest import SCRIPT, script_env

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 6
path: out
---
name: walk
grid: {step: [1.0, 2.0, 3.0]}
params: {fail_at: 3, fail_rep: 1}
---
name: solo
"""


def test_progress_json_counts_states_and_iterations(cli, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    cli("Deterministic", "config.yml", "-e", "walk", cwd=tmp_path, check_rc=1)
    data = json.loads(cli("Deterministic", "config.yml", "-P", "--json", cwd=tmp_path, check_rc=0).stdout)
    walk = next(b for b in data["base_experiments"] if b["name"] == "walk")
    assert (walk["finished"], walk["failed"], walk["pending"]) == (6, 3, 0)
    assert walk["iterations_done"] == 6 * 6 + 3 * 3 and walk["iterations_total"] == 54
    solo = next(b for b in data["base_experiments"] if b["name"] == "solo")
    assert solo["pending"] == 3 and solo["iterations_done"] == 0
    assert data["total"]["iterations_total"] == 54 + 18
    failed = [r for e in data["experiments"] for r in e["repetition_list"] if r["state"] == "failed"]
    assert len(failed) == 3 and all(r["error"] == "RuntimeError: boom at 3" for r in failed)
    assert walk["work_left_seconds"] is not None and walk["mean_iteration_time"] > 0


def test_progress_table_groups_by_base_experiment(cli, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    cli("Deterministic", "config.yml", "-e", "walk", cwd=tmp_path, check_rc=1)
    short = cli("Deterministic", "config.yml", "-p", cwd=tmp_path, check_rc=0).stdout
    assert "walk (3 expanded)" in short and "walk__s1.0" not in short and "total" in short
    full = cli("Deterministic", "config.yml", "-P", cwd=tmp_path, check_rc=0).stdout
    assert "walk__s1.0" in full and "Repetitions" in full and "boom at 3" in full


def test_provenance_is_appended_per_run_and_shown_by_full_progress(cli, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    cli("Deterministic", "config.yml", "-e", "solo", cwd=tmp_path, check_rc=0)
    cli("Deterministic", "config.yml", "-e", "solo", "-j", "0", cwd=tmp_path, check_rc=0)
    records = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert [r["event"] for r in records] == ["started", "ended", "started", "ended"]
    first = records[0]
    assert first["command"] == [sys.executable, SCRIPT, "Deterministic", "config.yml", "-e", "solo"]  # as run
    assert first["hosts"]
    assert first["packages"]["pandas"] and first["python"] and "git" in first
    assert records[1]["exit_status"] == 0 and records[1]["jobs"] == {"finished": 3}
    full = cli("Deterministic", "config.yml", "-P", cwd=tmp_path, check_rc=0).stdout
    assert "last runs:" in full and "exit 0" in full


def test_batch_output_gets_periodic_progress_lines_and_a_summary(cli, tmp_path):
    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 2\niterations: 10\npath: out\n"
                                         "params: {sleep: 0.1}\n")
    result = cli("Deterministic", "config.yml", "--report_every", "0.3", cwd=tmp_path, check_rc=0)
    lines = [l for l in result.stderr.splitlines() if "progress:" in l]
    assert len(lines) >= 3 and "/20 iterations" in lines[-1] and "workers busy" in lines[-1]
    assert "Summary: 2 jobs" in result.stderr and "results: out" in result.stderr


@pytest.mark.processes
def test_live_bar_on_a_terminal(tmp_path):
    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 2\niterations: 8\npath: out\n"
                                         "params: {sleep: 0.1, fail_at: 2, fail_rep: 1}\n")
    main, child = pty.openpty()
    process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml"], cwd=tmp_path,
                               env={**script_env(), "TERM": "xterm", "COLUMNS": "160"},
                               stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    output = b""
    deadline = time.time() + 60
    while time.time() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    process.wait(timeout=10)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", output.decode(errors="replace"))
    assert process.returncode == 1
    assert "it/s" in text and "/16" in text  # 2 x 8 iterations to run
    assert re.search(r"(?<![\d.])(0\.[1-9]|1)/1 busy", text), text  # busy over the last seconds: 1, or nearly
    assert "1 failed" in text and "boom at 2" in text  # failures show as they happen
    assert "w rep 0: finished" not in text  # with the bar, finished jobs are not listed line by line


WORK = """\
name: DEFAULT
repetitions: 2
iterations: 5
path: out
params: {sleep: 0.01}
---
name: walk
grid: {step: [1.0, 2.0]}
---
name: solo
"""


@pytest.mark.parametrize("ran, unstarted", [
    pytest.param(["-e", "walk__s1.0"], {"walk__s2.0": "walk", "solo": "sweep"}, id="one-experiment-ran"),
    pytest.param(["-e", "solo"], {"walk__s1.0": "sweep", "walk__s2.0": "sweep"}, id="another-document-ran"),
    pytest.param(["-j", "0"], {"walk__s2.0": "walk", "solo": "sweep"}, id="one-repetition-ran"),
])
def test_work_left_counts_the_experiments_that_have_not_started(cli, tmp_path, ran, unstarted):
    """An unstarted experiment's work is its iterations at the mean time measured in its base experiment,
    else in the whole sweep: not zero (32% done once said 0:00:01 left of ~49 s)."""
    (tmp_path / "config.yml").write_text(WORK)
    cli("Deterministic", "config.yml", *ran, cwd=tmp_path, check_rc=0)
    data = json.loads(cli("Deterministic", "config.yml", "-p", "--json", cwd=tmp_path, check_rc=0).stdout)
    experiments = {e["name"]: e for e in data["experiments"]}
    means = {"sweep": data["total"]["mean_iteration_time"],
             **{b["name"]: b["mean_iteration_time"] for b in data["base_experiments"]}}
    for name, source in unstarted.items():
        assert experiments[name]["iterations_done"] == 0
        assert experiments[name]["work_left_seconds"] == pytest.approx(10 * means[source]), name
    expected = sum(e["work_left_seconds"] for e in experiments.values())
    assert data["total"]["work_left_seconds"] == pytest.approx(expected)
    assert expected >= 20 * 0.01  # at least the 20 unstarted iterations of 10 ms


def test_work_left_is_unknown_before_anything_was_measured(cli, tmp_path):
    (tmp_path / "config.yml").write_text(WORK)
    data = json.loads(cli("Deterministic", "config.yml", "-p", "--json", cwd=tmp_path, check_rc=0).stdout)
    assert data["total"]["work_left_seconds"] is None
    assert all(e["work_left_seconds"] is None for e in data["experiments"])
    table = cli("Deterministic", "config.yml", "-p", cwd=tmp_path, check_rc=0).stdout
    rows = [line for line in table.splitlines() if line.startswith(("│ walk", "│ solo", "│ total"))]
    assert len(rows) == 3 and all("unknown" in row and "0:00:00" not in row for row in rows), table

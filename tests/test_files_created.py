"""How many files and folders a sweep creates: HPC sites cap inodes per user, and every create is a metadata
round trip on a parallel file system. A repetition that runs to its end and writes nothing of its own costs
its folder and its results file (no status file, no log file, no folder for the experiment's own files)."""
from __future__ import annotations

import os

import pytest
from conftest import run_cli

from cluster_work.paths import ATTEMPTS_FOLDER

pytestmark = pytest.mark.processes  # the command line, as a user runs it


def entries(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, folders, files in os.walk(folder) for name in folders + files)


def test_a_finished_repetition_costs_one_folder_and_one_file(tmp_path, write_config):
    points, repetitions = 3, 2
    write_config(f"name: g\nrepetitions: {repetitions}\niterations: 1\npath: out\ngrid:\n  a: [1, 2, 3]\n")
    run_cli("GrowingResults", "config.yml", cwd=tmp_path, check_rc=0)
    made = entries(tmp_path / "out")
    # the document's folder, the runs' record, and quarantine's journals: their folder and one per process
    sweep = ["g", "runs.jsonl", ATTEMPTS_FOLDER, f"{ATTEMPTS_FOLDER}/<run>.<host>.<pid>"]
    assert len([name for name in made if name.startswith(f"{ATTEMPTS_FOLDER}/")]) == 1  # a sequential run
    per_point = ["config.yml", "log"]  # besides the point's folder itself
    per_repetition = ["log/rep_00", "log/rep_00/results.jsonl"]
    assert len(made) == len(sweep) + points * (1 + len(per_point)) + points * repetitions * len(per_repetition)
    assert sorted(name for name in made if name.startswith("g/a1/")) == [
        "g/a1/config.yml", "g/a1/log", "g/a1/log/rep_00", "g/a1/log/rep_00/results.jsonl",
        "g/a1/log/rep_01", "g/a1/log/rep_01/results.jsonl"]


def test_the_repetition_folder_for_the_experiments_files_is_made_when_read(tmp_path, write_config):
    """`_log_path_rep` exists for an experiment that uses it (the original's clients write into it)."""
    write_config("name: w\nrepetitions: 1\niterations: 2\npath: out\n")
    run_cli("NoRestore", "config.yml", cwd=tmp_path, check_rc=0)
    assert sorted(os.listdir(tmp_path / "out" / "w" / "log" / "rep_00")) == [
        "results.jsonl", "state_0.pkl", "state_1.pkl"]

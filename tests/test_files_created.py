"""How many files and folders a sweep creates: HPC sites cap inodes per user, and every create is a metadata
round trip on a parallel file system. A new repetition costs one file, `log/rep_NN.jsonl`, however it ends (its
status is folded into it): no folder, no log file and no fault log of its own, unless the experiment writes
files of its own or logs."""
from __future__ import annotations

import os

import pytest
from conftest import run_cli, run_mpi
from repetition_files import rows, status

from cluster_work.paths import ATTEMPTS_FOLDER

pytestmark = pytest.mark.processes  # the command line, as a user runs it


def entries(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(root, name), folder)
                  for root, folders, files in os.walk(folder) for name in folders + files)


RUNS = {"sequential": (), "two local workers": ("-n", "2"), "mpiexec -n 3": ("mpi",)}


@pytest.mark.parametrize("how", RUNS.values(), ids=list(RUNS))
def test_a_new_repetition_costs_one_file(tmp_path, write_config, how):
    points, repetitions = 3, 2
    write_config(f"name: g\nrepetitions: {repetitions}\niterations: 2\npath: out\ngrid:\n  a: [1, 2, 3]\n")
    if how == ("mpi",):
        run_mpi(3, "GrowingResults", "config.yml", "-c", cwd=tmp_path, check_rc=0)
    else:
        run_cli("GrowingResults", "config.yml", *how, cwd=tmp_path, check_rc=0)
    made = entries(tmp_path / "out")
    # the document's folder, the runs' record, and quarantine's journals: their folder and one per process; no
    # fault log is left (each process's, empty, is removed as it exits)
    journals = [name for name in made if name.startswith(f"{ATTEMPTS_FOLDER}/")]
    assert journals and not [name for name in journals if "/fault-" in name], journals
    sweep = ["g", "runs.jsonl", ATTEMPTS_FOLDER, *journals]
    per_point = ["config.yml", "log"]  # besides the point's folder itself
    per_repetition = ["log/rep_00.jsonl"]
    assert len(made) == len(sweep) + points * (1 + len(per_point)) + points * repetitions * len(per_repetition)
    assert sorted(name for name in made if name.startswith("g/a1/")) == [
        "g/a1/config.yml", "g/a1/log", "g/a1/log/rep_00.jsonl", "g/a1/log/rep_01.jsonl"]


def test_an_unfinished_repetition_keeps_its_status_in_its_file(tmp_path, write_config):
    """A failed repetition's status is a line of its one file; its traceback, logged, makes its log (and the
    folder that holds it): what the repetition logged, as before."""
    write_config("name: w\nrepetitions: 2\niterations: 3\npath: out\nparams: {fail_at: 1, fail_rep: 1}\n")
    run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=1)
    assert entries(tmp_path / "out" / "w" / "log") == ["rep_00", "rep_00.jsonl", "rep_00/state_0.pkl",
                                                        "rep_00/state_1.pkl", "rep_00/state_2.pkl", "rep_01",
                                                        "rep_01.jsonl", "rep_01/rep.log", "rep_01/state_0.pkl"]
    assert [row["iteration"] for row in rows(tmp_path / "out" / "w", 1)] == [0]
    assert status(tmp_path / "out" / "w", 1)["state"] == "failed" and status(tmp_path / "out" / "w", 0) is None


def test_the_repetition_folder_for_the_experiments_files_is_made_when_read(tmp_path, write_config):
    """`_log_path_rep` exists for an experiment that uses it (the original's clients write into it)."""
    write_config("name: w\nrepetitions: 1\niterations: 2\npath: out\n")
    run_cli("NoRestore", "config.yml", cwd=tmp_path, check_rc=0)
    assert sorted(os.listdir(tmp_path / "out" / "w" / "log" / "rep_00")) == ["state_0.pkl", "state_1.pkl"]
    assert sorted(os.listdir(tmp_path / "out" / "w" / "log")) == ["rep_00", "rep_00.jsonl"]

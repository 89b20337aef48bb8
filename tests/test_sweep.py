"""Running sweeps through the command line, as a user does, and reading them back with load_results."""
import json
import os

import pytest
from conftest import run_cli
from repetition_files import rep_folder, repetition_file, rows, status

from cluster_work import load_results

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 4
path: out
---
name: walk
grid:
  step: [1.0, 2.0]
"""


def values(path):
    frame = load_results(path)
    return frame.sort_values(["experiment", "rep", "iteration"]).reset_index(drop=True)


def assert_same_results(a, b):
    import pandas as pd
    columns = [c for c in a.columns if c not in ("iteration_time", "repetition_time")]
    pd.testing.assert_frame_equal(a[columns], b[columns])


@pytest.fixture
def sweep(tmp_path, write_config):
    write_config(CONFIG)
    return tmp_path


def test_sweep_writes_tidy_results(cli, sweep):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    frame = values(sweep / "out")
    assert len(frame) == 2 * 3 * 4
    assert list(frame.columns[:4]) == ["experiment", "rep", "iteration", "params.step"]
    assert {"params.step", "value", "seed", "info_rep", "info_tag", "iteration_time", "repetition_time"} <= set(frame)
    assert sorted(frame.experiment.unique()) == ["walk__s1.0", "walk__s2.0"]
    assert frame.groupby(["experiment", "rep"]).iteration.apply(list).map(lambda l: l == [0, 1, 2, 3]).all()
    # loading by config file gives the same frame, and filters work
    assert_same_results(frame, values(sweep / "config.yml"))
    assert set(load_results(sweep / "out", params={"step": 2.0}).experiment) == {"walk__s2.0"}
    assert set(load_results(sweep / "out", experiments=["walk__s1.0"]).experiment) == {"walk__s1.0"}


def test_files_per_repetition_are_few_and_readable(cli, sweep):
    cli("NoRestore", "config.yml", cwd=sweep, check_rc=0)
    experiment = sweep / "out" / "walk" / "s1.0"
    # rep.log once something is logged; save_state is called without restore support too, as the original did
    ours = [name for name in sorted(os.listdir(rep_folder(experiment, 0))) if not name.startswith("state_")]
    # no status: a repetition that runs to its end has its rows only (they say it is finished)
    assert ours == [] and (rep_folder(experiment, 0) / "state_3.pkl").exists()
    assert sorted(os.listdir(experiment / "log")) == ["rep_00", "rep_00.jsonl", "rep_01", "rep_01.jsonl", "rep_02",
                                                       "rep_02.jsonl"]
    assert [row["iteration"] for row in rows(experiment, 0)] == [0, 1, 2, 3] and status(experiment, 0) is None
    assert (sweep / "out" / "walk" / "s1.0" / "config.yml").read_text().startswith("# written by cluster_work")


@pytest.mark.processes
def test_local_workers_give_the_same_results_as_sequential(sweep, tmp_path_factory, write_config):
    run_cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    parallel = tmp_path_factory.mktemp("parallel")
    (parallel / "config.yml").write_text(CONFIG)
    run_cli("Deterministic", "config.yml", "-n", "3", cwd=parallel, check_rc=0)
    assert_same_results(values(sweep / "out"), values(parallel / "out"))


def test_seeds_differ_everywhere_and_repeat_on_rerun(cli, sweep):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    first = values(sweep / "out")
    assert first.seed.is_unique  # across experiments, repetitions and iterations
    cli("Deterministic", "config.yml", "-d", cwd=sweep, check_rc=0)
    assert_same_results(first, values(sweep / "out"))


def test_results_may_hold_strings_none_and_gain_keys(cli, tmp_path, write_config):
    import pandas as pd
    write_config("name: g\nrepetitions: 1\niterations: 5\npath: out\n")
    cli("GrowingResults", "config.yml", cwd=tmp_path, check_rc=0)
    frame = values(tmp_path / "out")
    assert list(frame.iteration) == [0, 1, 2, 3, 4]
    assert list(frame.name[2:]) == ["it2", "it3", "it4"] and pd.isna(frame.name[0])
    assert pd.isna(frame.late_key[2]) and list(frame.late_key[3:]) == [3, 4]


def test_a_failing_repetition_is_isolated_and_reported(cli, sweep, write_config):
    write_config(CONFIG.replace("path: out", "path: out\nparams: {fail_at: 2, fail_rep: 1}"))
    result = cli("Deterministic", "config.yml", cwd=sweep, check_rc=1)
    assert "4 finished" in result.stderr and "2 failed" in result.stderr
    assert "RuntimeError: boom at 2 (in iterate)" in result.stderr
    frame = values(sweep / "out")
    per_rep = frame.groupby(["experiment", "rep"]).size()
    assert per_rep.xs(1, level="rep").tolist() == [2, 2]  # its saved iterations stay
    assert per_rep.xs(0, level="rep").tolist() == [4, 4]
    failed = status(sweep / "out" / "walk" / "s1.0", 1)
    assert failed["state"] == "failed" and "boom at 2" in failed["traceback"]
    assert "Traceback" in (rep_folder(sweep / "out" / "walk" / "s1.0", 1) / "rep.log").read_text()
    retry = cli("Deterministic", "config.yml", cwd=sweep, check_rc=1)
    assert "0 finished" in retry.stderr and "2 failed" in retry.stderr  # finished ones are not rerun


def test_bad_parameter_raised_by_experiment_is_a_one_line_error(cli, sweep):
    result = cli("BadParam", "config.yml", cwd=sweep, check_rc=2)
    assert "step must be below 10" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("experiment", ["Deterministic", "NoRestore"])
def test_raising_iterations_continues_to_the_same_results(cli, sweep, write_config, tmp_path_factory, experiment):
    cli(experiment, "config.yml", cwd=sweep, check_rc=0)
    write_config(CONFIG.replace("iterations: 4", "iterations: 6"))
    result = cli(experiment, "config.yml", cwd=sweep, check_rc=0)
    assert "6 finished" in result.stderr
    clean = tmp_path_factory.mktemp("clean")
    (clean / "config.yml").write_text(CONFIG.replace("iterations: 4", "iterations: 6"))
    cli(experiment, "config.yml", cwd=clean, check_rc=0)
    assert_same_results(values(sweep / "out"), values(clean / "out"))


def test_lowering_iterations_runs_and_deletes_nothing(cli, sweep, write_config):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    write_config(CONFIG.replace("iterations: 4", "iterations: 2").replace("repetitions: 3", "repetitions: 1"))
    result = cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    assert "0 jobs" in result.stderr
    assert len(load_results(sweep / "out")) == 24


def test_raising_repetitions_and_grid_runs_only_new_jobs(cli, sweep, write_config):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    write_config(CONFIG.replace("repetitions: 3", "repetitions: 4").replace("[1.0, 2.0]", "[1.0, 2.0, 3.0]"))
    listing = cli("Deterministic", "config.yml", "--list", cwd=sweep, check_rc=0).stdout
    assert "new" in listing and "partial" in listing
    result = cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    assert "6 finished" in result.stderr  # rep 3 of two old points + 4 reps of the new one


def test_restore_falls_back_to_an_earlier_state_and_drops_later_rows(cli, sweep, tmp_path_factory):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    before = values(sweep / "out")
    folder = rep_folder(sweep / "out" / "walk" / "s1.0", 2)
    for n in (2, 3):
        os.remove(folder / f"state_{n}.pkl")
    cli("Deterministic", "config.yml", "-r", "2", "-i", "4", "-e", "walk__s1.0", cwd=sweep, check_rc=0)
    log_text = (folder / "rep.log").read_text()
    assert "restored the state after iteration 1" in log_text
    assert_same_results(before, values(sweep / "out"))


def test_restart_one_repetition_from_an_iteration_touches_nothing_else(cli, sweep):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    before = values(sweep / "out")
    other = repetition_file(sweep / "out" / "walk" / "s2.0", 0)
    mtime = other.stat().st_mtime_ns
    result = cli("Deterministic", "config.yml", "-r", "1", "-i", "2", cwd=sweep, check_rc=0)
    assert "2 finished" in result.stderr and "(2 iterations" in result.stderr
    assert other.stat().st_mtime_ns == mtime
    assert_same_results(before, values(sweep / "out"))


def test_restarting_past_the_last_iteration_is_refused_before_anything_is_written(cli, sweep):
    """-i beyond the experiments' iterations would run nothing (and say nothing): one line, exit 2."""
    result = cli("Deterministic", "config.yml", "-r", "1", "-i", "7", cwd=sweep, check_rc=2)
    assert "-i/--iteration: 7 is past the last iteration" in result.stderr and "-i takes 0 to 4" in result.stderr
    assert not (sweep / "out").exists()


def test_jobs_select_by_flat_index(cli, sweep):
    cli("Deterministic", "config.yml", "-j", "0", "6", "4", cwd=sweep, check_rc=0)  # the original's slice
    frame = values(sweep / "out")
    assert sorted(set(zip(frame.experiment, frame.rep))) == [("walk__s1.0", 0), ("walk__s2.0", 1)]
    cli("Deterministic", "config.yml", "-j", "1", "3", cwd=sweep, check_rc=0)  # jobs 1 and 2
    frame = values(sweep / "out")
    assert sorted(set(zip(frame.experiment, frame.rep))) == [("walk__s1.0", 0), ("walk__s1.0", 1),
                                                             ("walk__s1.0", 2), ("walk__s2.0", 1)]
    result = cli("Deterministic", "config.yml", "-j", "6", cwd=sweep, check_rc=2)
    assert "jobs 0 to 5" in result.stderr


def test_changed_params_are_skipped_until_overwrite_or_ignore(cli, sweep, write_config):
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    write_config(CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.001}").replace("iterations: 4",
                                                                                          "iterations: 5"))
    result = cli("Deterministic", "config.yml", cwd=sweep, check_rc=2)  # nothing ran: not a success
    assert "parameters of 2 experiment(s) changed since their results were saved (walk__s1.0: sleep" in result.stderr
    assert "-o/--overwrite" in result.stderr and "-I/--ignore_config" in result.stderr
    result = cli("Deterministic", "config.yml", "-I", "-e", "walk__s1.0", cwd=sweep, check_rc=0)
    assert "3 finished" in result.stderr and "(1 iterations" in result.stderr
    result = cli("Deterministic", "config.yml", "-o", cwd=sweep, check_rc=0)
    assert "3 finished" in result.stderr  # only the still-changed experiment restarts
    assert len(load_results(sweep / "out")) == 30


def test_delete_removes_only_the_selected_experiments(cli, sweep):
    (sweep / "out").mkdir()
    (sweep / "out" / "keep.txt").write_text("mine")
    cli("Deterministic", "config.yml", cwd=sweep, check_rc=0)
    mtime = (sweep / "out" / "walk" / "s2.0" / "config.yml").stat().st_mtime_ns
    cli("Deterministic", "config.yml", "-d", "-e", "walk__s1.0", cwd=sweep, check_rc=0)
    assert (sweep / "out" / "keep.txt").read_text() == "mine"
    assert (sweep / "out" / "walk" / "s2.0" / "config.yml").stat().st_mtime_ns == mtime


@pytest.mark.parametrize("args, message", [
    pytest.param(["-e", "nope"], "unknown experiment(s) 'nope'; the config defines: walk", id="unknown-experiment"),
    pytest.param(["-i", "2"], "-i/--iteration needs -r/--repetition", id="iteration-without-repetition"),
    pytest.param(["-n", "0"], "-n/--workers must be at least 1", id="no-workers"),
])
def test_usage_errors_exit_2_and_write_nothing(cli, sweep, args, message):
    result = cli("Deterministic", "config.yml", *args, cwd=sweep, check_rc=2)
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (sweep / "out").exists()


def test_config_error_writes_nothing(cli, tmp_path, write_config):
    write_config(CONFIG + "---\nname: bad\nrepetitions: -1\n")
    result = cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=2)
    assert result.stderr.strip() == ("error: config.yml: experiment 'bad': 'repetitions': "
                                     "must be a positive integer, got -1")
    assert not (tmp_path / "out").exists()


def test_torn_last_row_is_ignored_by_readers_and_cut_by_the_writer(cli, sweep):
    cli("Deterministic", "config.yml", "-e", "walk__s1.0", cwd=sweep, check_rc=0)
    experiment = sweep / "out" / "walk" / "s1.0"
    results = repetition_file(experiment, 0)
    lines = results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:2]) + lines[2][:15])  # as if killed while writing row 2
    assert len(load_results(sweep / "out")) == 3 * 4 - 2
    cli("Deterministic", "config.yml", "-e", "walk__s1.0", cwd=sweep, check_rc=0)
    assert [json.loads(line)["iteration"] for line in results.read_text().splitlines()] == [0, 1, 2, 3]


def test_progress_and_list_read_only_what_is_on_disk(cli, sweep):
    listing = cli("Deterministic", "config.yml", "--list", cwd=sweep, check_rc=0).stdout
    assert "walk__s1.0" in listing and "0-2" in listing and "3-5" in listing
    assert not (sweep / "out").exists()
    cli("Deterministic", "config.yml", "-j", "0", cwd=sweep, check_rc=0)
    progress = cli("Deterministic", "config.yml", "-P", cwd=sweep, check_rc=0).stdout
    assert "33%" in progress and "4/4" in progress


def test_old_style_client_runs_unchanged(cli, tmp_path, write_config):
    write_config("name: old\nrepetitions: 2\niterations: 3\npath: out\nparams: {name: y}\n")
    cli("OldStyleClient", "config.yml", "--no_gui", cwd=tmp_path, check_rc=0)
    folder = rep_folder(tmp_path / "out" / "old", 1)
    seen = json.loads((folder / "it_0002" / "seen.json").read_text())
    assert seen["it"] == 2 and isinstance(seen["seed"], int)
    assert (folder / "state_2.pkl").exists()
    assert len(load_results(tmp_path / "out")) == 6


def test_jobs_with_longer_measured_iterations_run_first(cli, tmp_path, write_config, monkeypatch):
    from cluster_work.config import load_config
    from cluster_work.expansion import expand_all
    from cluster_work.planning import make_plan
    from cluster_work.selection import Policy, Selection

    write_config("name: s\nrepetitions: 2\niterations: 3\npath: out\nlist: {sleep: [0.001, 0.05]}\n")
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    write_config("name: s\nrepetitions: 2\niterations: 6\npath: out\nlist: {sleep: [0.001, 0.05]}\n")
    monkeypatch.chdir(tmp_path)
    from experiments import Deterministic
    expanded = expand_all(load_config("config.yml"), Deterministic._default_params)
    jobs = make_plan(expanded, Selection(), Policy(), "config.yml").jobs
    assert [job.experiment.name for job in jobs] == ["s__s0.05"] * 2 + ["s__s0.001"] * 2


@pytest.mark.parametrize("path", [".", "~"])
def test_delete_never_touches_anything_outside_the_experiment_folders(cli, tmp_path, write_config, path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # '~' is expanded
    (tmp_path / "precious.txt").write_text("keep")
    write_config(f"name: guard\nrepetitions: 1\niterations: 1\npath: '{path}'\n")
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    assert repetition_file(tmp_path / "guard", 0).exists()
    cli("Deterministic", "config.yml", "-d", cwd=tmp_path, check_rc=0)
    assert (tmp_path / "precious.txt").read_text() == "keep" and (tmp_path / "config.yml").exists()


def test_delete_leaves_a_folder_cluster_work_did_not_write_alone(tmp_path):
    from cluster_work.errors import StoreError
    from cluster_work.store import ExperimentStore
    (tmp_path / "data" / "log").mkdir(parents=True)
    (tmp_path / "data" / "thesis.tex").write_text("years of work")
    (tmp_path / "data" / "config.yml").write_text("mine: 1\n")
    assert ExperimentStore(str(tmp_path / "data")).delete() == ["config.yml", "log", "thesis.tex"]
    with pytest.raises(StoreError, match="refusing to delete"):
        ExperimentStore("/").delete()
    assert (tmp_path / "data" / "thesis.tex").exists() and (tmp_path / "data" / "config.yml").exists()


@pytest.mark.parametrize("first, expected", [
    pytest.param([], "6 jobs to run (2 experiments)", id="none-ran-before"),
    pytest.param(["-j", "0", "3"], "3 jobs to run (1 experiment)", id="one-experiment-finished"),
    pytest.param(["-j", "0", "5"], "1 job to run (1 experiment)", id="one-job-left"),
])
def test_the_run_counts_the_jobs_and_experiments_it_runs(cli, sweep, first, expected):
    """Only the experiments with a job to run count (a finished one has none), each noun in its number."""
    if first:
        cli("Deterministic", "config.yml", *first, cwd=sweep, check_rc=0)
    stderr = cli("Deterministic", "config.yml", cwd=sweep, check_rc=0).stderr
    assert f"cluster_work: {expected} on this process" in stderr, stderr
    jobs = int(expected.split()[0])
    assert f"Summary: {jobs} job{'s' if jobs > 1 else ''} in " in stderr, stderr

"""What a newcomer tries first, checked from the README's promises rather than from the code: `store:` set by
the DEFAULT document or by an override is checked as a document's own `store:` is, and `Sweep` refuses bad
arguments at once with one clear error."""
from __future__ import annotations

import pytest

ENSEMBLE_UNDER_COMPACT_DEFAULT = """\
name: DEFAULT
store: compact
path: out
---
name: e
repetitions: 1
iterations: 4
ensemble: {walkers: 4, coordinate: pcoord, bins: [0.5, 1.5], seed: 3}
"""

PLAIN = """\
name: walk
repetitions: 2
iterations: 3
path: out
"""


@pytest.mark.parametrize(("config", "overrides", "message"), [
    (ENSEMBLE_UNDER_COMPACT_DEFAULT, [], "'store': the compact store does not hold a weighted ensemble"),
    (PLAIN, ["++store=bogus"], "'store': must be one of folders, compact, got 'bogus'"),
    (PLAIN, ["+store=Compact"], "'store': must be one of folders, compact, got 'Compact'"),
], ids=["default-compact-under-ensemble", "override-unknown-store", "override-wrong-case"])
def test_store_from_default_or_override_is_checked(cli, write_config, tmp_path, config, overrides, message):
    """README: a weighted ensemble on the compact store is refused (one line, exit 2, nothing written), and an
    override's value is checked as the config's own; the DEFAULT document is merged under every experiment."""
    write_config(config)
    result = cli("BarrierWalk" if "ensemble" in config else "Deterministic", "config.yml", *overrides, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("options", "error", "message"), [
    ({"experiments": "walk"}, TypeError, "experiments must be a list, got the string 'walk'"),
    ({"overrides": "iterations=2"}, TypeError, "overrides must be a list, got the string 'iterations=2'"),
    ({"options": "--retry-failed"}, TypeError, "options must be a list"),
    ({"jobs": "12"}, TypeError, "jobs must be a list"),
    ({"workers": 0}, ValueError, "workers must be a positive integer, got 0"),
    ({"workers": "2"}, TypeError, "workers must be a positive integer, got '2'"),
    ({"workers": 2.5}, TypeError, "workers must be a positive integer, got 2.5"),
], ids=["experiments-str", "overrides-str", "options-str", "jobs-str", "workers-0", "workers-str", "workers-float"])
def test_sweep_refuses_bad_arguments_at_once(tmp_path, options, error, message):
    """A string where a list belongs was split into its characters (`overrides="iterations=2"` ran as the
    overrides 'i', 't', ...; `experiments="walk"` as -e w a l k); a bad `workers` surfaced only when run.
    README: bad arguments give one clear error."""
    import numpy as np
    from experiments import Deterministic

    from cluster_work import Sweep

    with pytest.raises(error, match=message):
        Sweep(Deterministic, tmp_path / "config.yml", **options)
    assert Sweep(Deterministic, tmp_path / "config.yml", workers=np.int64(2)).argv[-2:] == ["-n", "2"]


def test_refused_rerun_does_not_claim_overrides_the_last_run_did_not_have(cli, write_config, tmp_path):
    """A sweep run without overrides, rerun with one that changes its parameters, is refused (README:
    *Overrides*); the message said "the last run changed the config on the command line: (no overrides)",
    a claim and its denial in one line."""
    write_config(PLAIN)
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    refused = cli("Deterministic", "config.yml", "params.step=2.5", cwd=tmp_path, check_rc=2)
    assert "nothing to run: the parameters of 1 experiment(s) changed" in refused.stderr
    assert "the last run changed the config" not in refused.stderr
    assert "the last run changed nothing on the command line (this one: params.step=2.5)" in refused.stderr
    cli("Deterministic", "config.yml", "params.step=2.5", "-o", cwd=tmp_path, check_rc=0)
    back = cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=2)  # the README's own example
    assert "the last run changed the config on the command line: params.step=2.5" in back.stderr


COMPACT = PLAIN + "store: compact\n"


def test_export_of_a_compact_sweep_exports_its_rows_not_nothing(cli, write_config, tmp_path, capsys, monkeypatch):
    """`python -m cluster_work export tensorboard config.yml` of a finished `store: compact` sweep printed
    "0 rows exported" and exited 0 (the exporter looked for folders and files the compact store never makes),
    then was refused; now it exports every row (the comparison with the default layout: test_export_compact)."""
    from tracker_helpers import tensorboard_events

    from cluster_work.config import load_config
    from cluster_work.export.cli import main as export

    assert load_config(write_config(COMPACT + "export: {tensorboard: {}}\n"))  # the block is accepted there
    write_config(COMPACT)
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert export(["tensorboard", "config.yml"]) == 0
    assert "tensorboard: 6 rows exported" in capsys.readouterr().out
    held = tensorboard_events(tmp_path / "out" / "tensorboard")
    assert {key: [step for step, _ in tags["value"]] for key, tags in held.items()} == {
        "walk/rep_00": [0, 1, 2], "walk/rep_01": [0, 1, 2]}


@pytest.mark.parametrize(("words", "message"), [
    (["--json"], "--json goes with -p, -P or --list"),
    (["--dry-run"], "--dry-run goes with --slurm"),
    (["--submit"], "--submit goes with --slurm"),
    (["--array"], "--array goes with --slurm"),
    (["--mode", "min"], "--mode goes with --plot"),
    (["--plotter", "best_n"], "--plotter goes with --plot"),
    (["--plot-option", "n=3"], "--plot-option goes with --plot"),
    (["--filter", "walk"], "--filter goes with --plot"),
], ids=["json", "dry-run", "submit", "array", "mode", "plotter", "plot-option", "filter"])
def test_an_option_without_the_one_it_qualifies_runs_nothing(cli, write_config, tmp_path, words, message):
    """`--dry-run` without `--slurm` (or `--json` without `-p`) ran the whole sweep: a user asking to look
    got a run. Now a usage error: exit 2, nothing written."""
    write_config(PLAIN)
    result = cli("Deterministic", "config.yml", *words, cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("words", [["-p", "--json"], ["-P", "--json"], ["--list", "--json"],
                                   ["--slurm", "--dry-run"], ["--slurm", "--array", "--dry-run"]],
                         ids=["p-json", "P-json", "list-json", "slurm-dry-run", "array-dry-run"])
def test_the_options_with_their_companions_still_work(cli, write_config, tmp_path, words):
    write_config(PLAIN)
    cli("Deterministic", "config.yml", *words, cwd=tmp_path, check_rc=0)


def test_delete_on_a_compact_store_does_not_call_the_store_the_users(cli, write_config, tmp_path):
    """`-d` of a compact document without grid or list (its one point's folder holds the store) warned
    "-d/-o kept what cluster_work did not write: .cluster_work_compact": the store is cluster_work's own.
    README: no file is deleted, and what your experiment wrote stays, named in a warning."""
    write_config(COMPACT)
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    (tmp_path / "out" / "walk" / "mine.txt").write_text("the user's")
    again = cli("Deterministic", "config.yml", "-d", cwd=tmp_path, check_rc=0)
    [warning] = [line for line in again.stderr.splitlines() if "kept what cluster_work did not write" in line]
    assert "mine.txt" in warning and ".cluster_work_compact" not in warning, warning
    assert (tmp_path / "out" / "walk" / "mine.txt").read_text() == "the user's"


GRID = PLAIN + "grid: {step: [1.0, 2.0]}\n"


@pytest.mark.parametrize(("first", "then", "message"), [
    (GRID + "store: compact\n", GRID, "its results are in the compact store"),
    (GRID, GRID + "store: compact\n", "has results in the default layout"),
    (COMPACT, PLAIN, "its results are in the compact store"),
    (PLAIN, COMPACT, "has results in the default layout"),
], ids=["compact-then-folders", "folders-then-compact", "compact-then-folders-no-grid",
        "folders-then-compact-no-grid"])
def test_changing_store_of_a_sweep_with_results_is_refused(cli, write_config, tmp_path, first, then, message):
    """Neither layout reads the other's results: adding `store: compact` to a sweep with results (as a run
    suggests for a large one) or removing it ran every repetition again beside the saved ones, and
    `load_results` then gave every row twice. Now refused (exit 2, nothing written); the results stay whole."""
    from conftest import comparable

    write_config(first)
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    before = comparable(tmp_path / "out")
    write_config(then)
    refused = cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=2)
    assert "'store': " in refused.stderr and message in refused.stderr, refused.stderr
    import pandas as pd
    pd.testing.assert_frame_equal(before, comparable(tmp_path / "out"))
    write_config(first)
    assert "0 jobs to run" in cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0).stderr


def test_two_compact_sweeps_at_one_relative_path_are_read_apart(cli, write_config, tmp_path, monkeypatch):
    """A notebook (or any one Python process) that reads the compact sweep `out/` of one project, then the
    one at the same relative path of another, got the first one's rows, or both mixed: the process's catalog
    of a compact store was kept by its path as given, relative to a working folder that changed."""
    from cluster_work import load_results

    rows = {}
    for project, step in (("a", "1.0"), ("b", "100.0")):
        (tmp_path / project).mkdir()
        write_config(COMPACT, name=f"{project}/config.yml")
        cli("Deterministic", "config.yml", f"params.step={step}", cwd=tmp_path / project, check_rc=0)
        monkeypatch.chdir(tmp_path / project)
        rows[project] = load_results("config.yml")
    assert set(rows["a"]["params.step"]) == {1.0} and set(rows["b"]["params.step"]) == {100.0}
    assert len(rows["a"]) == len(rows["b"]) == 2 * 3


@pytest.mark.parametrize("words", [["--stall-timeout", "300"], ["--stall-timeout", "2.5"]], ids=["int", "float"])
def test_the_batch_script_keeps_the_stall_timeout(cli, write_config, tmp_path, words):
    """README: `--stall-timeout S` ends a silent MPI run "so that a scheduler can requeue the job"; yet
    `--slurm --stall-timeout 300` wrote a batch script whose run had no stall timeout (the options a repeat
    of the run takes left it out, so the line that resumes a run lost it too)."""
    write_config(PLAIN)
    script = cli("Deterministic", "config.yml", "--slurm", "--dry-run", *words, cwd=tmp_path, check_rc=0).stdout
    [run] = [line for line in script.splitlines() if "mpi4py" in line]
    assert f"--stall-timeout {words[1]} -c" in run, run
    assert not (tmp_path / "out").exists()


def test_the_summary_counts_add_up_after_a_store_failure(cli, write_config, tmp_path):
    """A run whose results cannot be written stops with exit status 3; its summary said "3 jobs: 0 finished,
    0 failed, 2 not finished (interrupted)": the job that met the failure was in no count."""
    import re

    write_config(COMPACT.replace("repetitions: 2", "repetitions: 3"))
    (tmp_path / "out" / "walk" / ".cluster_work_compact" / "locks").mkdir(parents=True)  # no file can be opened
    result = cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=3)
    [summary] = [line for line in result.stderr.splitlines() if line.startswith("Summary")]
    jobs, parts = re.fullmatch(r"Summary: (\d+) jobs? in [\d.]+s: (.*)", summary).groups()
    assert sum(int(part.split()[0]) for part in parts.split(", ")) == int(jobs) == 3, summary
    assert "1 not finished (results could not be written)" in summary


def test_export_with_an_expanded_name_says_it_takes_base_names(cli, write_config, tmp_path, capsys, monkeypatch):
    """`export -e walk__s1.0` (an expanded name, as `-e` of a run takes) said "no experiment to export named
    walk__s1.0", of an experiment that exists."""
    from cluster_work.export.cli import main as export

    write_config(GRID)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert export(["tensorboard", "config.yml", "-e", "walk__s1.0"]) == 2
    error = capsys.readouterr().err
    assert "-e: no document named 'walk__s1.0'; export selects documents by their base names: walk" in error


def test_help_names_the_exit_statuses(cli, tmp_path):
    """The README lists the exit statuses; `--help`, where a user looks first, did not."""
    result = cli("Deterministic", "--help", cwd=tmp_path, check_rc=0)
    text = " ".join(result.stdout.split())
    assert "exit status: 0 all done; 1 a repetition failed; 2 a usage or config error" in text
    assert "3 the results could not be written" in text and "130 interrupted" in text


@pytest.mark.parametrize(("jobs", "argv"), [
    (range(0, 9, 3), ["-j", "0", "9", "3"]), (range(4, 6), ["-j", "4", "6", "1"]), (5, ["-j", "5"]),
    ([2], ["-j", "2"]), ([0, 4], ["-j", "0", "4"]), ((), []),
], ids=["range-step", "range", "int", "one", "start-stop", "none"])
def test_sweep_jobs_as_a_range_run_the_range(tmp_path, jobs, argv):
    """`Sweep(..., jobs=range(0, 9, 3))` became `-j 0 3 6`, which -j reads as START 0, STOP 3, STEP 6: job 0
    alone ran. A range is now given to -j as its START STOP STEP; an empty one is refused (no -j runs all)."""
    from experiments import Deterministic

    from cluster_work import Sweep

    assert Sweep(Deterministic, tmp_path / "config.yml", jobs=jobs).argv[1:] == argv
    with pytest.raises(ValueError, match="holds no job"):
        Sweep(Deterministic, tmp_path / "config.yml", jobs=range(3, 3))


def test_delete_names_what_it_kept_in_a_few_lines_not_one_per_point(cli, write_config, tmp_path):
    """`-d` of a grid whose every point's folder holds a file of the user's warned once per point (81 lines
    for 81 points); now the first few by name and the rest in one line. Nothing of the user's is deleted."""
    write_config(PLAIN + "grid: {step: [1, 2, 3, 4, 5, 6, 7, 8]}\n")
    cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    folders = sorted(path for path in (tmp_path / "out" / "walk").iterdir() if path.is_dir())
    assert len(folders) == 8
    for folder in folders:
        (folder / "mine.txt").write_text("the user's")
    again = cli("Deterministic", "config.yml", "-d", cwd=tmp_path, check_rc=0)
    warnings = [line for line in again.stderr.splitlines() if "kept what cluster_work did not write" in line]
    assert len(warnings) == 6, warnings
    assert all("mine.txt" in line for line in warnings)
    assert "in 3 more experiments' folders" in warnings[-1]
    assert all((folder / "mine.txt").read_text() == "the user's" for folder in folders)

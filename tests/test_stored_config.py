"""A run that continues an experiment stores its current counts (config_refresh): config.yml of each point, a
compact store's document.json, read back by every reader of the stored config; other changes as before."""
from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import repetition_files
import yaml
from conftest import SCRIPT, run_cli, run_mpi, script_env
from kills import assert_every_file_readable, config_rewriter, kill_a_writer, kill_session
from polls import wait_for
from stored_config_helpers import (
    config_files,
    counts_readers_see,
    point_folders,
    stored_counts_on_disk,
    sweep_config,
)

from cluster_work import load_results
from cluster_work.config_refresh import REFRESHED, refreshed, stale_keys
from cluster_work.paths import CONFIG_FILE, CONFIG_TEMPORARY_PREFIX
from cluster_work.store import ExperimentStore, remove_own_temporaries

STORES = pytest.mark.parametrize("store", ["folders", "compact"])
GROWTHS = pytest.mark.parametrize("before, after", [((2, 3), (2, 5)), ((2, 3), (3, 3)), ((2, 3), (3, 5))],
                                  ids=["iterations", "repetitions", "both"])


@STORES
@GROWTHS
def test_grown_counts_are_stored_and_every_reader_sees_them(store, before, after, tmp_path, cli):
    config = tmp_path / "config.yml"
    config.write_text(sweep_config(store, *before))
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    config.write_text(sweep_config(store, *after))
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    sweep = tmp_path / "out"
    assert stored_counts_on_disk(sweep, store) == [after, after]
    for reader, counts in counts_readers_see(sweep).items():
        assert counts == [after, after], reader
    frame = load_results(str(config))
    assert frame.groupby("experiment").size().tolist() == [after[0] * after[1]] * 2
    shown = json.loads(cli("Deterministic", str(config), "-p", "--json", cwd=tmp_path, check_rc=0).stdout)
    assert [e["iterations_total"] for e in shown["experiments"]] == [after[0] * after[1]] * 2
    # a resume that finds the counts current rewrites nothing
    written = config_files(sweep, store)
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    assert config_files(sweep, store) == written


@STORES
def test_a_continued_repetition_is_partial_for_the_exporters_not_finished_at_the_old_count(store, tmp_path, cli):
    """Iterations raised, then only repetition 0 of the first point continued (-j 0): its repetition 1 is
    partial (its rows short of the new count), where the old stored count called it finished."""
    from cluster_work.export.source import Watch, read_snapshot
    from cluster_work.vocabulary import RepetitionState

    config = tmp_path / "config.yml"
    config.write_text(sweep_config(store, 2, 3))
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    config.write_text(sweep_config(store, 2, 5))
    cli("Deterministic", str(config), "-j", "0", cwd=tmp_path, check_rc=0)
    states = {(repetition.folder.rsplit("/", 1)[1], repetition.rep): read_snapshot(repetition).state
              for repetition, _ in Watch([(str(tmp_path / "out"), None)]).poll(everything=True)}
    assert states[("s1.0", 0)] is RepetitionState.FINISHED
    assert states[("s1.0", 1)] is RepetitionState.PARTIAL
    # the second point, which this run did not continue, keeps its stored config (3 iterations: finished); a
    # compact store's points share theirs (5: partial)
    untouched = RepetitionState.PARTIAL if store == "compact" else RepetitionState.FINISHED
    assert states[("s2.0", 0)] is states[("s2.0", 1)] is untouched
    # the rest continued: a config current already (the first point's; a compact store's, which the -j 0 run
    # brought up to date) is read, not rewritten
    written = config_files(tmp_path / "out", store)
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    assert stored_counts_on_disk(tmp_path / "out", store) == [(2, 5), (2, 5)]
    rewritten = config_files(tmp_path / "out", store)
    assert [rewritten[path] == stat for path, stat in written.items()] == \
        ([True] if store == "compact" else [True, False])


def test_keys_that_may_change_results_keep_todays_behaviour(tmp_path, cli):
    """Raised iterations with `plotting` newly set: the iterations are stored, `plotting` is not (it is the
    experiment's own key); changed parameters: skipped as before, the stored config untouched; -I stores the
    whole current config, as before."""
    config = tmp_path / "config.yml"
    config.write_text(sweep_config("folders", 1, 2))
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    first, second = point_folders(tmp_path / "out")
    config.write_text(sweep_config("folders", 1, 4, "plotting: false\nmax_failures: 3\n"))
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    stored = yaml.safe_load((first / CONFIG_FILE).read_text())
    assert (stored["iterations"], stored["max_failures"], "plotting" in stored) == (4, 3, False)
    before = (second / CONFIG_FILE).read_bytes()
    config.write_text(sweep_config("folders", 1, 6, "params: {sleep: 0.001}\n"))
    refused = cli("Deterministic", str(config), cwd=tmp_path, check_rc=2)
    assert "nothing to run" in refused.stderr
    assert (second / CONFIG_FILE).read_bytes() == before
    cli("Deterministic", str(config), "-I", cwd=tmp_path, check_rc=0)
    stored = yaml.safe_load((second / CONFIG_FILE).read_text())
    assert (stored["iterations"], stored["params"]["sleep"], "max_failures" in stored) == (6, 0.001, False)


def test_stale_keys_and_refreshed():
    stored = {"name": "a", "repetitions": 2, "iterations": 3, "params": {"x": math.nan}, "gui": True,
              "stall_timeout": 60, "log_path": "old"}
    current = {"name": "a", "iterations": 5, "repetitions": 2, "params": {"x": 1}, "gui": False,
               "slurm": {"time": "1:00:00"}, "log_path": "new"}
    assert stale_keys(stored, current) == ["iterations", "stall_timeout", "slurm"]
    assert stale_keys(stored, stored) == []
    assert stale_keys({"iterations": math.nan}, {"iterations": math.nan}) == []  # compared as stored
    assert refreshed(stored, current) == {"name": "a", "repetitions": 2, "iterations": 5, "params": {"x": math.nan},
                                          "gui": True, "log_path": "old", "slurm": {"time": "1:00:00"}}
    assert list(refreshed(stored, current))[:3] == ["name", "repetitions", "iterations"]  # the stored order
    assert set(REFRESHED) >= {"iterations", "repetitions"}


@pytest.mark.processes
@STORES
@pytest.mark.parametrize("launch", ["workers", pytest.param("mpi", marks=pytest.mark.slow)])
def test_grown_counts_with_workers_and_under_mpi(store, launch, tmp_path, monkeypatch):
    """-n 2 (the parent plans, each worker's job writes or brings up to date its experiment's config; a compact
    store's document config the parent alone) and MPI (rank 0 plans, the workers' jobs write): the same."""
    config = tmp_path / "config.yml"

    def run() -> None:
        if launch == "mpi":
            run_mpi(3, "Deterministic", str(config), cwd=tmp_path, check_rc=0)
        else:
            run_cli("Deterministic", str(config), "-n", "2", cwd=tmp_path, check_rc=0)

    config.write_text(sweep_config(store, 2, 3))
    run()
    config.write_text(sweep_config(store, 3, 5))
    run()
    assert stored_counts_on_disk(tmp_path / "out", store) == [(3, 5), (3, 5)]
    monkeypatch.chdir(tmp_path)  # where the stored configs' paths start
    for reader, counts in counts_readers_see(tmp_path / "out").items():
        assert counts == [(3, 5), (3, 5)], reader


@pytest.mark.processes
def test_a_run_killed_while_it_rewrites_configs_leaves_each_whole_and_the_rerun_finishes_them(tmp_path, cli):
    """kill -9 of a -n 2 resume while its jobs bring their configs' counts up to date: each config.yml is whole
    (the old counts or the new ones, never a part: written to a temporary file and renamed over it), nothing
    else is left but the temporaries of our own a kill leaves, and the rerun finishes with every count current."""
    config = tmp_path / "config.yml"
    grid = "grid: {step: [" + ", ".join(str(1.0 + k) for k in range(24)) + "]}\nparams: {sleep: 0.03}\n"
    config.write_text(sweep_config("folders", 1, 1).replace("grid: {step: [1.0, 2.0]}\n", grid))
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    config.write_text(config.read_text().replace("iterations: 1", "iterations: 3"))
    folders = sorted((tmp_path / "out" / "fit").glob("s*"))

    def counts() -> list[int]:
        return [yaml.safe_load((folder / CONFIG_FILE).read_text())["iterations"] for folder in folders]

    process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", str(config), "-n", "2"], cwd=tmp_path,
                               env=script_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: counts().count(3) >= 4, "4 configs brought up to date")
    kill_session(process)
    assert_every_file_readable(tmp_path / "out")
    left = counts()
    assert set(left) == {1, 3}, left  # killed midway: some brought up to date, some not
    assert all(ExperimentStore(str(folder)).is_ours() for folder in folders)
    # beside them at most what the kill cut short: a temporary of our own per worker, named by it, which the
    # rerun's rewrite of that (stale) config removes, its writer dead
    temporaries = [name for folder in folders for name in os.listdir(folder) if name not in (CONFIG_FILE, "log")]
    assert len(temporaries) <= 2 and all(
        re.fullmatch(rf"{re.escape(CONFIG_TEMPORARY_PREFIX)}{re.escape(socket.gethostname())}-[0-9]+-[0-9a-f]{{8}}\.tmp",
                     name) for name in temporaries), temporaries
    for folder in folders:  # a config brought up to date is durable before its first row of iteration 2
        stored = yaml.safe_load((folder / CONFIG_FILE).read_text())
        assert len(repetition_files.rows(folder, 0)) <= 1 or stored["iterations"] == 3, folder
    cli("Deterministic", str(config), cwd=tmp_path, check_rc=0)
    assert counts() == [3] * len(folders)
    assert [name for folder in folders for name in os.listdir(folder) if name not in (CONFIG_FILE, "log")] == []


@pytest.mark.processes
def test_a_rewrite_killed_at_any_instant_leaves_the_old_config_or_the_new_one(tmp_path):
    """A process bringing one config's counts up to date over and over (3 and 4 iterations in turn), killed
    at 15 random instants: the config is always whole and ours, with one count or the other; beside it at most
    temporaries of our own, of the names that -d (`remove_own_temporaries`) removes."""
    folder = tmp_path / "exp"
    store = ExperimentStore(str(folder))
    store.write_config({"name": "exp", "repetitions": 1, "iterations": 3, "path": str(folder),
                        "params": {"x": list(range(2000))}})  # a config of some size: a write takes a while
    random = np.random.default_rng(7)
    for _ in range(15):
        kill_a_writer(lambda: config_rewriter(folder), float(random.uniform(0, 0.02)))  # (it holds at any instant)
        stored = store.read_config(own=True)
        assert stored is not None and stored["iterations"] in (3, 4) and len(stored["params"]["x"]) == 2000
        assert all(name == CONFIG_FILE or name.startswith(CONFIG_TEMPORARY_PREFIX) and name.endswith(".tmp")
                   for name in os.listdir(folder))
    remove_own_temporaries(str(folder))
    assert os.listdir(folder) == [CONFIG_FILE]

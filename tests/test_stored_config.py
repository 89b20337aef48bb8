"""A run that continues an experiment stores its current counts (config_refresh): config.yml of each point, a
compact store's document.json, read back by every reader of the stored config; other changes as before."""
from __future__ import annotations

import json
import math

import pytest
import yaml
from stored_config_helpers import (
    config_files,
    counts_readers_see,
    point_folders,
    stored_counts_on_disk,
    sweep_config,
)

from cluster_work import load_results
from cluster_work.config_refresh import REFRESHED, refreshed, stale_keys
from cluster_work.paths import CONFIG_FILE

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
    # a resume that finds the counts current rewrites nothing (nor does planning read each config: the index)
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

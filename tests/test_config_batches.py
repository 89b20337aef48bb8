"""A batch of jobs of fresh experiments (an MPI leader's: see `ExperimentTask.prepare`) gets its configs
written before any of them runs, made durable with one sync for all instead of one per experiment; the jobs
then find them and write none of their own. Configs already there, and compact stores, are left alone."""
import os

import pytest
from backend_clients import Counting

from cluster_work import store
from cluster_work.expansion import expand_all
from cluster_work.runner import ExperimentTask, run_segment
from cluster_work.store import ExperimentStore
from cluster_work.vocabulary import ConfigWrite, OutcomeKind, RunSettings, Segment

SETTINGS = RunSettings(log_level="WARNING")


def grid(folder, points: int, **document):
    return list(expand_all([{"name": "g", "repetitions": 1, "iterations": 1, "path": str(folder),
                             "grid": {"gate_after": list(range(points))}, **document}], Counting._default_params))


@pytest.fixture
def syncs(monkeypatch):
    """The batches `store.write_configs` made durable (the real sync runs)."""
    made: list[set[str]] = []

    def recording(paths):
        made.append(set(paths))
        real(made[-1])

    real = store.sync_now
    monkeypatch.setattr(store, "sync_now", recording)
    return made


def test_a_batch_of_fresh_experiments_gets_its_configs_with_one_sync(tmp_path, syncs):
    experiments = grid(tmp_path, 5)
    segments = [Segment(i, e, 0, config=ConfigWrite.IF_MISSING) for i, e in enumerate(experiments)]
    ExperimentTask(Counting, SETTINGS).prepare(segments)
    configs = [ExperimentStore(e.path) for e in experiments]
    assert all(c.is_ours() for c in configs)
    assert syncs == [{c.config_file for c in configs}]
    inodes = [os.stat(c.config_file).st_ino for c in configs]
    for segment in segments:
        assert run_segment(Counting, segment, SETTINGS).kind == OutcomeKind.FINISHED
    assert [os.stat(c.config_file).st_ino for c in configs] == inodes  # no job wrote its own
    assert [c.read_config()["params"]["gate_after"] for c in configs] == list(range(5))


def test_configs_there_kept_or_replaced_and_compact_stores_are_left_to_the_jobs(tmp_path, syncs):
    there, replaced = grid(tmp_path / "there", 2)
    ExperimentStore(there.path).write_config(there.config)
    before = os.stat(ExperimentStore(there.path).config_file).st_ino
    [compact] = grid(tmp_path / "compact", 1, store="compact")
    [kept] = grid(tmp_path / "kept", 1)
    ExperimentTask(Counting, SETTINGS).prepare([
        Segment(0, there, 0, config=ConfigWrite.IF_MISSING), Segment(1, replaced, 0, config=ConfigWrite.REPLACE),
        Segment(2, compact, 0, config=ConfigWrite.IF_MISSING), Segment(3, kept, 0, config=ConfigWrite.KEEP)])
    assert syncs == []
    assert os.stat(ExperimentStore(there.path).config_file).st_ino == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["there"]  # nothing else written
    assert not ExperimentStore(replaced.path).exists()


def test_a_batch_of_continued_experiments_whose_counts_grew_gets_them_with_one_sync(tmp_path, syncs):
    """Counts raised since the configs were stored (config_refresh): the batch rewrites the configs that are
    stale, with one sync for all, and leaves a current one alone; the jobs then write none of their own."""
    experiments = grid(tmp_path, 4)
    for experiment in experiments[:3]:
        ExperimentStore(experiment.path).write_config({**experiment.config, "iterations": 0, "repetitions": 2})
    ExperimentStore(experiments[3].path).write_config(experiments[3].config)
    configs = [ExperimentStore(e.path) for e in experiments]
    current = os.stat(configs[3].config_file).st_ino
    segments = [Segment(i, e, 0, config=ConfigWrite.REFRESH) for i, e in enumerate(experiments)]
    ExperimentTask(Counting, SETTINGS).prepare(segments)
    assert syncs == [{c.config_file for c in configs[:3]}]
    assert [(c.read_config()["repetitions"], c.read_config()["iterations"]) for c in configs] == [(1, 1)] * 4
    assert os.stat(configs[3].config_file).st_ino == current
    inodes = [os.stat(c.config_file).st_ino for c in configs]
    for segment in segments:
        assert run_segment(Counting, segment, SETTINGS).kind == OutcomeKind.FINISHED
    assert [os.stat(c.config_file).st_ino for c in configs] == inodes

"""A compact store's index (compact_index.py): planning, --list and -p/-P of a compact store read it instead of
every segment, in bulk (done and new experiments as NewOrDoneRuns, finished and pending ones as
PendingOrFinishedRuns), and say exactly what reading each experiment says; the index is a cache: deleted,
damaged, stale or killed while it is written, it changes nothing."""
from __future__ import annotations

import json
import multiprocessing
import os
import random
from collections.abc import Callable

import pytest
from compact_index_helpers import everything, forget_summaries, plan_of, roots
from experiments import Deterministic
from huge_sweep_helpers import documents, expand, run_some, text
from kills import kill_a_writer

from cluster_work import compact_catalog, compact_index
from cluster_work.backends import SequentialExecutor
from cluster_work.bulk_runs import FreshRun, NewOrDoneRun
from cluster_work.compact_index import Summary, read_index, summary, write_index
from cluster_work.expansion import expand_all
from cluster_work.paths import INDEX_FILE
from cluster_work.planning import make_plan
from cluster_work.progress_figures import PendingOrFinishedRun
from cluster_work.progress_sums import progress_report
from cluster_work.reporting import print_plan, print_progress, write_progress_json
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.stopping import stop_signals_handled
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import RunSettings

TIMES = ("mean_iteration_time", "work_left_seconds")  # measured: another run of the same jobs measures others


def figures(experiments, full):
    """-p/-P --json without the measured times."""
    data = json.loads(text(write_progress_json, experiments, full))
    rows = [data["total"], *data["base_experiments"], *data["experiments"]]
    rows += [rep for row in data["experiments"] for rep in row.pop("repetition_list", [])]
    return [{key: value for key, value in row.items() if key not in TIMES} for row in rows]


def jobs_of(plan):
    return sorted((job.index, job.experiment.name, job.rep, job.restart_from) for job in plan.jobs)


RAN = {"some ran": (0, 150, 5), "most ran": (0, 140), "all ran": ()}


@pytest.mark.parametrize("ran", RAN.values(), ids=list(RAN))
def test_a_half_done_compact_sweep_plans_lists_and_sums_as_in_folders_and_as_each_experiment(tmp_path, ran):
    for store in ("folders", "compact"):
        run_some(tmp_path / store, ran or (0, 10**6), store)
    compact, folders = tmp_path / "compact", tmp_path / "folders"
    whole, each = plan_of(expand(compact, "compact")), plan_of(list(expand(compact, "compact")))
    in_folders = plan_of(expand(folders))
    assert any(isinstance(chunk, NewOrDoneRun) and chunk.found for chunk in whole.chunks())
    assert any(isinstance(chunk, (FreshRun, NewOrDoneRun)) and chunk.new for chunk in whole.chunks()) == bool(ran)
    assert vars(whole.totals) == vars(each.totals)
    assert {**vars(whole.totals), "sweep_paths": []} == {**vars(in_folders.totals), "sweep_paths": []}
    assert [vars(job) for job in whole.jobs] == [vars(job) for job in each.jobs]  # the same order, too
    assert jobs_of(whole) == jobs_of(in_folders)  # exactly the jobs left
    assert text(print_plan, whole, as_json=True) == text(print_plan, each, as_json=True)
    assert text(print_plan, whole, as_json=True) == text(print_plan, in_folders, as_json=True)
    assert text(print_plan, whole) == text(print_plan, in_folders)
    for full in (False, True):  # each experiment read from its segments (no index) says the same, bit for bit
        assert text(write_progress_json, expand(compact, "compact"), full) == text(
            write_progress_json, list(expand(compact, "compact")), full)
        assert text(print_progress, expand(compact, "compact"), full) == text(
            print_progress, list(expand(compact, "compact")), full)
        assert figures(expand(compact, "compact"), full) == figures(expand(folders), full)


def test_d_rewrites_the_experiments_a_compact_store_holds_as_in_folders_and_as_each_experiment(tmp_path):
    """-d counts (and deletes) the experiments with something stored, in either layout, planned whole or one by one:
    a new one has nothing to delete."""
    for store in ("folders", "compact"):
        run_some(tmp_path / store, (0, 150, 5), store)
    compact, folders = tmp_path / "compact", tmp_path / "folders"
    plans = [make_plan(experiments, Selection(), Policy(delete=True), "test") for experiments in (
        expand(compact, "compact"), list(expand(compact, "compact")), expand(folders), list(expand(folders)))]
    counted = {**vars(plans[0].totals), "sweep_paths": []}
    assert all({**vars(plan.totals), "sweep_paths": []} == counted for plan in plans)
    assert 0 < counted["rewrites"] == sum(os.path.isdir(e.path) for e in expand(folders)) < len(expand(folders))
    assert [item.rewrite for item in plans[0].experiments] == [os.path.isdir(e.path) for e in expand(folders)]


def test_a_changed_parameter_is_seen_through_the_index(tmp_path):
    plans = {}
    for store in ("folders", "compact"):
        run_some(tmp_path / store, (0, 40, 3), store)
        changed = documents(tmp_path / store, store)
        changed[0]["params"]["fail_rep"] = 0  # an edit of the config after the run
        plans[store] = plan_of(expand_all(changed, Deterministic._default_params, warn=lambda message: None))
    assert plans["compact"].totals.changed == plans["folders"].totals.changed == 14
    assert not any(isinstance(chunk, NewOrDoneRun) and chunk.found and chunk.document.base == "walk"
                   for chunk in plans["compact"].chunks())
    assert text(print_plan, plans["compact"]) == text(print_plan, plans["folders"])
    assert "config changed (fail_rep)" in text(print_plan, plans["compact"])


def damage(root: str, how: str) -> None:
    index = os.path.join(root, INDEX_FILE)
    if how == "deleted":
        os.unlink(index)
    elif how == "torn":  # a power loss before its rename was durable
        with open(index, "r+b") as handle:
            handle.truncate(os.path.getsize(index) // 2)
    elif how == "zeros":
        with open(index, "wb") as handle:
            handle.write(b"\0" * 4096)
    elif how == "of another store":  # covers a segment that is not there (a copy of another store's)
        data = json.loads(open(index, "rb").read())
        data["segments"]["seg-elsewhere-1-00000000.jsonl"] = 10
        with open(index, "w") as handle:
            json.dump(data, handle)


@pytest.mark.parametrize("how", ["deleted", "torn", "zeros", "of another store"])
def test_a_deleted_or_damaged_index_changes_nothing_and_is_written_again(tmp_path, how):
    run_some(tmp_path, (0, 150, 5), "compact")
    forget_summaries()
    before = everything(tmp_path)
    assert all(read_index(root) is not None for root in roots(tmp_path))  # planning wrote one
    for root in roots(tmp_path):
        damage(root, how)
    forget_summaries()
    assert everything(tmp_path) == before
    assert all(read_index(root) is not None for root in roots(tmp_path))


def run_in_a_new_process(tmp_path, jobs):
    """Run jobs in a process of its own (a new segment), as another run does."""
    child = multiprocessing.get_context("fork").Process(target=run_some, args=(tmp_path, jobs, "compact"))
    child.start()
    child.join(120)
    assert child.exitcode == 0


@pytest.mark.parametrize("later", [pytest.param("a new process", marks=pytest.mark.processes),
                                   "this process again"])
def test_an_index_older_than_the_segments_is_brought_up_to_date(tmp_path, later):
    """New segments about other experiments are added to the index, and a segment it covers that grew (its writer
    was alive then) adds its tail (compact_tails). Either way: what reading each experiment says."""
    run_some(tmp_path, (0, 60, 2), "compact")
    forget_summaries()
    plan_of(expand(tmp_path, "compact"))  # writes the index
    old = {root: read_index(root).segments for root in roots(tmp_path)}
    if later == "a new process":
        run_in_a_new_process(tmp_path, (1, 150, 2))  # other experiments than the first run's
    else:
        run_some(tmp_path, (60, 150, 3), "compact")
    forget_summaries()
    whole, each = expand(tmp_path, "compact"), list(expand(tmp_path, "compact"))
    assert text(write_progress_json, whole, True) == text(write_progress_json, each, True)
    assert [vars(job) for job in plan_of(whole).jobs] == [vars(job) for job in plan_of(each).jobs]
    new = {root: read_index(root).segments for root in roots(tmp_path)}
    assert any(new[root] != old.get(root) for root in new)  # it covers what was added


def index_writer(root: str) -> Callable[[], object]:
    """For kill_a_writer (called in the writer): `root`'s index written again and again."""
    found = summary(root, write=False)
    return lambda: write_index(root, found)


@pytest.mark.processes
def test_kill_9_while_the_index_is_written_leaves_a_whole_index_or_none(tmp_path):
    run_some(tmp_path, (0, 10**6), "compact")
    forget_summaries()
    before = everything(tmp_path)
    [root] = [root for root in roots(tmp_path) if "walk" in root]
    expected = summary(root, write=False).encode()
    instants = random.Random(25)
    for _ in range(5):
        kill_a_writer(lambda: index_writer(root), instants.uniform(0.0, 0.2))
        found = read_index(root)  # the old index or the new one, whole: never a part of one
        assert found is None or found.encode() == expected
    forget_summaries()
    assert everything(tmp_path) == before
    assert Summary.decode(open(os.path.join(root, INDEX_FILE), "rb").read()) is not None
    assert write_index(root, summary(root))  # and what the killed writers left is gone
    assert not [name for name in os.listdir(root) if name.endswith(".tmp")]


def test_the_index_is_only_a_cache_written_whole(tmp_path):
    run_some(tmp_path, (0, 40), "compact")
    forget_summaries()
    [root] = [root for root in roots(tmp_path) if "walk" in root]
    found = summary(root)
    assert write_index(root, found)
    assert read_index(root).encode() == found.encode()
    assert [name for name in os.listdir(root) if name.endswith(".tmp")] == []  # no temporary file left


def long_done_documents(root, store):
    """68 experiments of 2 repetitions; fail_at 1 makes repetition 1 of one in the middle fail (the others run
    past their 3 iterations), so runs of finished experiments are on both sides of it."""
    return [{"name": "long", "repetitions": 2, "iterations": 3, "path": str(root / "out"), "params": {"fail_rep": 1},
             "grid": {"fail_at": [*range(3, 40), 1, *range(40, 70)]}, **({"store": store} if store else {})}]


def long_done(root, store=None):
    return expand_all(long_done_documents(root, store), Deterministic._default_params, warn=lambda message: None)


def test_a_long_run_of_finished_experiments_is_summed_in_bulk_as_each_experiment(tmp_path):
    for store in ("folders", "compact"):
        plan = plan_of(long_done(tmp_path / store, store if store == "compact" else None), Selection(jobs=(0, 120)))
        with stop_signals_handled(), SequentialExecutor(ExperimentTask(Deterministic, RunSettings(sync=False))) as ex:
            run_segments(plan.jobs, ex)  # 60 of 68 experiments, one with a failed repetition
    compact, folders = tmp_path / "compact", tmp_path / "folders"
    groups, _, total = progress_report(long_done(compact, "compact"))
    runs = [(len(part), len(part.names)) for part in groups["long"] if isinstance(part, PendingOrFinishedRun)]
    assert runs == [(37, 37), (30, 22)]  # (experiments, finished ones): the 8 pending ones in the second
    assert total.states["finished"] == 119 and total.states["failed"] == 1
    for full in (False, True):  # bit for bit what each experiment read from the index or its segments says
        for write in (write_progress_json, print_progress):
            assert text(write, long_done(compact, "compact"), full) == text(write, list(long_done(compact, "compact")),
                                                                            full)
        assert figures(long_done(compact, "compact"), full) == figures(long_done(folders), full)


@pytest.mark.parametrize("catalog_before", [False, True], ids=["a launcher's", "a sequential run's"])
def test_a_refresh_writes_the_whole_index_and_keeps_none_of_what_it_read(catalog_before, tmp_path):
    """A run's launcher refreshes the index now and then and at its end (compact_index.refresh): each time the
    index is whole (what a read of every segment makes), and the process keeps no summary (the next refresh reads
    the index written, its experiments columns) and no catalog but one it had before (a sequential run's own, which
    its jobs go on reading)."""
    run_some(tmp_path, (0, 60, 2), "compact")
    for jobs in [(60, 100, 3), (100, 150)]:
        forget_summaries()
        root = roots(tmp_path)[0]
        if catalog_before:
            compact_catalog.catalog(root)
        compact_index.refresh(root)
        assert compact_index._summaries == {}
        assert (compact_catalog.loaded(root) is not None) == catalog_before
        assert read_index(root).encode() == Summary.of(compact_catalog.Catalog(root).refresh(force=True)).encode()
        run_some(tmp_path, jobs, "compact")
    forget_summaries()
    compact_index.refresh(root)  # (from the index written and the tails the runs added)
    assert compact_catalog.loaded(root) is None
    assert read_index(root).encode() == Summary.of(compact_catalog.Catalog(root).refresh(force=True)).encode()

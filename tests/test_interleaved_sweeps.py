"""A half-done compact sweep whose finished experiments alternate with new ones (issue 25 point 3, the worst case
for runs of alike experiments): planning, --list and -p/-P read it in runs that mix new and done experiments
(NewOrDoneRun) and pending and finished ones (PendingOrFinishedRun), BLOCK experiments at a time, not in runs of
one; what they say is what each experiment read one by one says, byte for byte, whatever else the sweep holds
(failed and partly done experiments, several repetitions each) and wherever the blocks end."""
from __future__ import annotations

import math

import pytest
from huge_sweep_helpers import expand, run_some, text

from cluster_work import bulk_runs, compact_index, planning
from cluster_work.bulk_runs import NewOrDoneRun
from cluster_work.planning import make_plan
from cluster_work.progress_figures import PendingOrFinishedRun
from cluster_work.progress_sums import progress_report
from cluster_work.reporting import print_plan, print_progress, write_progress_json
from cluster_work.selection import Policy, Selection

# The helpers' sweep: walk (72 experiments x 2 repetitions: jobs 0-143; repetition 1 fails where fail_at is 0,
# 1 or 2), listed (3 x 1: 144-146), solo (1 x 3: 147-149), searched (6 x 1: 150-155).
EVERY_OTHER = [(0, 144, 4), (1, 144, 4), (144, 147, 2), (150, 156, 2)]  # each repetition of every other one
MORE = {"every other experiment": [],
        "and partly done ones": [(2, 40, 8), (147, 148)],  # repetition 0 of walk's 1, 5, 9..., of solo
        "and a run of done ones": [(50, 70), (145, 146)]}  # walk's 25 - 34 all done: no new one between


def plan_of(experiments):
    return make_plan(experiments, Selection(), Policy(), "test")


def sweep(root, store, more):
    for jobs in EVERY_OTHER + MORE[more]:
        run_some(root, jobs, store)
    compact_index._summaries.clear()  # as a new process starts: nothing read yet


@pytest.mark.parametrize("jobs", ["sorted", "streamed"])  # (more than SORT_LIMIT jobs stream in config order)
@pytest.mark.parametrize("block", [4096, 5], ids=["blocks of 4096", "blocks of 5"])
@pytest.mark.parametrize("more", MORE, ids=list(MORE))
def test_an_interleaved_compact_sweep_plans_and_lists_in_runs_as_each_experiment(tmp_path, monkeypatch, block, more,
                                                                                   jobs):
    monkeypatch.setattr(bulk_runs, "BLOCK", block)
    if jobs == "streamed":
        monkeypatch.setattr(planning, "SORT_LIMIT", 10)
    for store in ("folders", "compact"):
        sweep(tmp_path / store, store, more)
    compact, folders = tmp_path / "compact", tmp_path / "folders"
    whole, each, in_folders = plan_of(expand(compact, "compact")), plan_of(list(expand(compact, "compact"))), \
        plan_of(expand(folders))
    chunks = list(whole.chunks())
    runs = [chunk for chunk in chunks if isinstance(chunk, NewOrDoneRun)]
    assert any(run.found and run.new for run in runs)  # new and done experiments in one run
    blocks = sum(math.ceil(len(document) / block) for document in expand(compact, "compact").documents)
    assert len(runs) <= len(chunks) - len(runs) + blocks  # cut only where one is planned by itself, or a block ends
    assert vars(whole.totals) == vars(each.totals)
    assert {**vars(whole.totals), "sweep_paths": []} == {**vars(in_folders.totals), "sweep_paths": []}
    assert [vars(job) for job in whole.jobs] == [vars(job) for job in each.jobs]  # the same order, too
    assert sorted(job.index for job in whole.jobs) == sorted(job.index for job in in_folders.jobs)
    assert text(print_plan, whole, as_json=True) == text(print_plan, each, as_json=True)
    assert text(print_plan, whole, as_json=True) == text(print_plan, in_folders, as_json=True)
    assert text(print_plan, whole) == text(print_plan, in_folders)  # (a list of experiments names no random block)


@pytest.mark.parametrize("block", [4096, 5], ids=["blocks of 4096", "blocks of 5"])
@pytest.mark.parametrize("more", MORE, ids=list(MORE))
def test_an_interleaved_compact_sweep_is_summed_in_runs_as_each_experiment(tmp_path, monkeypatch, block, more):
    monkeypatch.setattr(bulk_runs, "BLOCK", block)
    sweep(tmp_path, "compact", more)
    groups, _, total = progress_report(expand(tmp_path, "compact"))
    runs = [part for part in groups["walk"] if isinstance(part, PendingOrFinishedRun)]
    assert any(run.names and len(run.names) < len(run) for run in runs)  # pending and finished ones in one run
    assert total.states["failed"] and total.states["finished"] and total.states["pending"]
    for full in (False, True):  # -p, -P and their --json: bit for bit what each experiment read says
        for write in (print_progress, write_progress_json):
            assert text(write, expand(tmp_path, "compact"), full) == text(write, list(expand(tmp_path, "compact")),
                                                                          full)

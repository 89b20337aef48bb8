"""The jobs of a resume of a whole document (`Plan.jobs`, up to SORT_LIMIT of them, longest expected first): the
new experiments of its bulk runs (FreshRuns, NewOrDoneRuns) are planned only as their jobs are taken, each run
sorted as one entry, and the jobs come in exactly the order of the same experiments planned one by one (as a
list, the reference): with nothing measured, with measured iteration times on either side of the new jobs'
expectation, with a NaN measured (where each run's jobs are sorted one by one), and with only runs holding jobs
(of one document: config order without the measured times; of two with different iterations)."""
from __future__ import annotations

import os
import time

import pytest
from experiments import Deterministic
from huge_sweep_helpers import expand, run_some

from cluster_work import planning
from cluster_work.backends import SequentialExecutor
from cluster_work.expansion import expand_all
from cluster_work.planning import apply_plan, make_plan
from cluster_work.rows import encode_row
from cluster_work.runner import ExperimentTask
from cluster_work.selection import Policy, Selection
from cluster_work.stopping import stop_signals_handled
from cluster_work.store import ExperimentStore
from cluster_work.sweep import run_segments
from cluster_work.vocabulary import RunSettings


def plan_of(experiments):
    return make_plan(experiments, Selection(), Policy(), "test")


def jobs_of(jobs):
    return [(job.index, job.experiment.name, job.rep, job.restart_from, job.until, job.config) for job in jobs]


def age(root, seconds=60):
    """Every file and folder of the sweep older (a sweep whose last run ended a while ago: its index trusted)."""
    past = time.time_ns() - seconds * 10**9
    for folder, names, files in os.walk(root / "out"):
        for name in [*names, *files]:
            os.utime(os.path.join(folder, name), ns=(past, past), follow_symlinks=False)


def nothing(root):
    """A sweep nothing of which ran (its documents FreshRuns)."""


def interleaved(root, more=lambda root: None):
    """Every fourth job run, then every fourth from the second (done, failed, partial and new experiments
    alternating), `more(root)` done, its folder index written a while later (its done experiments in
    NewOrDoneRuns)."""
    run_some(root, (0, 200, 4))
    run_some(root, (1, 200, 4))
    more(root)
    age(root)
    apply_plan(plan_of(expand(root)))


def nan_row(root):
    """A new experiment given one row whose iteration time is NaN (a partial repetition: the sweep's mean, every
    new job's expectation, is NaN)."""
    experiment = next(e for e in expand(root) if not os.path.lexists(e.path))
    store = ExperimentStore(experiment.path)
    store.write_config(experiment.config)
    repetition = store.repetition(0)
    repetition.create_folder()
    with open(repetition.results_file, "xb") as handle:
        handle.write(encode_row({"iteration": 0, "x": 0.0, "iteration_time": float("nan"),
                                 "repetition_time": float("nan")}))


def with_nan(root):
    """As `interleaved`, with a NaN measured (`nan_row`)."""
    interleaved(root, nan_row)


def one_grid(root):
    """One document, a 6 x 7 grid of 2 repetitions of 3 iterations (none fails: fail_at is past them)."""
    return expand_all([grid("grid", 3, root)], Deterministic._default_params, warn=lambda message: None)


def two_grids(root):
    """Another grid of 2 iterations, then `one_grid`: their new jobs expected the sweep's mean times 2 and 3 (the
    second document's first)."""
    return expand_all([grid("short", 2, root), grid("grid", 3, root)], Deterministic._default_params,
                      warn=lambda message: None)


def grid(name, iterations, root):
    return {"name": name, "repetitions": 2, "iterations": iterations, "path": str(root / "out"),
            "grid": {"step": [0.5 * k for k in range(1, 7)], "fail_at": list(range(10, 17))}}


def every_other_done(expanded):
    """A sweep of `expanded` (`one_grid`, `two_grids`) with every other experiment finished (its jobs 0-1, 4-5,
    ...), its index written a while later: only NewOrDoneRuns have jobs."""
    def done(root):
        jobs = len(expanded(root)) * 2
        with stop_signals_handled(), SequentialExecutor(ExperimentTask(Deterministic, RunSettings(sync=False))) as \
                executor:
            for first in (0, 1):
                plan = make_plan(expanded(root), Selection(jobs=(first, jobs, 4)), Policy(), "test")
                run_segments(plan.jobs, executor)
        age(root)
        apply_plan(plan_of(expanded(root)))
    return done


@pytest.mark.parametrize("sweep, expanded", [(nothing, expand), (interleaved, expand), (with_nan, expand),
                                             (every_other_done(one_grid), one_grid),
                                             (every_other_done(two_grids), two_grids)],
                         ids=["nothing", "interleaved", "with_nan", "one grid every other done",
                              "two grids every other done"])
def test_the_jobs_come_in_the_order_of_the_experiments_planned_one_by_one(tmp_path, sweep, expanded):
    sweep(tmp_path)
    whole, each = plan_of(expanded(tmp_path)), plan_of(list(expanded(tmp_path)))
    assert vars(whole.totals) == vars(each.totals)
    jobs = whole.jobs
    assert jobs_of(jobs) == jobs_of(each.jobs)
    assert len(jobs) == len(each.jobs) == whole.totals.jobs
    assert jobs_of(jobs) == jobs_of(jobs)  # taken again: the same jobs (a run's planned again)


def test_the_first_job_of_a_resume_plans_at_most_one_new_experiment(tmp_path, monkeypatch):
    interleaved(tmp_path)
    reference = jobs_of(plan_of(list(expand(tmp_path))).jobs)
    plan = plan_of(expand(tmp_path))
    fresh: list[str] = []
    real = planning.plan_experiment

    def counted(experiment, *args, **options):
        if args[4]:  # (first index, selection, policy, picked, fresh)
            fresh.append(experiment.name)
        return real(experiment, *args, **options)

    monkeypatch.setattr(planning, "plan_experiment", counted)
    jobs = plan.jobs
    first = next(iter(jobs))
    assert len(fresh) <= 1
    assert jobs_of([first]) == reference[:1]
    fresh.clear()
    assert jobs_of(jobs) == reference
    assert len(set(fresh)) == len(fresh) > 1  # the new ones' plans made as their jobs were taken, once each

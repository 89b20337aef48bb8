"""Steered campaigns (cluster_work.steering): the decision core driven by a fake engine.

The fake engine answers every Run with the Outcome a real runner would give for a deterministic metric
(values of every iteration below the target, rows kept on its "disk" between Steering objects), in
FIFO or seeded random order: decisions must not depend on that order, and a campaign thrown away at
any point resumes from its journal to the same decisions.
"""
import json
import math
import os
import pathlib
import random
import statistics
from collections import Counter

import pytest

from cluster_work.config import merge_and_validate
from cluster_work.errors import ConfigError, StoreError
from cluster_work.expansion import expand_all
from cluster_work.planning import CampaignPlan, apply_plan, make_plan
from cluster_work.selection import Policy as RunPolicy
from cluster_work.selection import Selection
from cluster_work.steering import (
    Add,
    Finish,
    Journal,
    Policy,
    PolicyError,
    Run,
    Steering,
    SteeringError,
    Stop,
    check_steer_block,
    journal_path,
    read_added,
)
from cluster_work.steering.builtin import hyperband_brackets
from cluster_work.steering.campaign import SteeredCampaign
from cluster_work.steering.ladder import median_of_others
from cluster_work.vocabulary import Outcome, OutcomeKind, RunSettings

SOURCE = "config.yml"


def make_document(tmp_path, grid=None, iterations=81, repetitions=1, **keys):
    document = {"name": "search", "repetitions": repetitions, "iterations": iterations,
                "path": str(tmp_path / "results"), **keys}
    if grid is not None:
        document["grid"] = grid
    [experiment] = merge_and_validate([document], SOURCE, warn=lambda message: None)
    return expand_all([experiment], source=SOURCE, warn=lambda message: None).documents[0]


def steer(document, **block):
    return check_steer_block({"metric": "loss", **block}, SOURCE, "search")


class Engine:
    """A fake engine: runs each Run at once with `loss(experiment, rep, iteration)` (or fails it where
    `fails(experiment, rep)` gives an iteration), counting the iterations it computes."""

    def __init__(self, document, spec, loss, restores=True, seed=None, fails=lambda experiment, rep: None):
        self.document, self.spec, self.loss, self.restores, self.fails = document, spec, loss, restores, fails
        self.order = random.Random(seed) if seed is not None else None
        self.saved: dict[tuple[str, int], int] = {}  # the "disk": rows saved per repetition
        self.cost = 0
        self.stopped: dict[tuple[str, int | None], str] = {}
        self.finish_seen = False
        self.steering: Steering | None = None
        self.pending: list[Run] = []

    def open(self, steering=None):
        self.steering = steering or Steering(self.spec, self.document, Journal(journal_path(self.document.base_folder)))
        self.pending = []
        self.apply(self.steering.start())
        return self.steering

    def apply(self, actions):
        for action in actions:
            if isinstance(action, Run):
                self.pending.append(action)
            elif isinstance(action, Stop):
                self.stopped[(action.experiment_name, action.rep)] = action.reason
                self.pending = [run for run in self.pending if not (
                    run.experiment_name == action.experiment_name and action.rep in (None, run.rep))]
            elif isinstance(action, Finish):
                self.finish_seen = True

    def outcome(self, run: Run) -> Outcome:
        key, experiment = (run.experiment_name, run.rep), run.experiment
        saved = self.saved.get(key, 0)
        failing = self.fails(experiment, run.rep)
        until = run.until if failing is None else min(run.until, failing)
        if saved >= run.until:
            kind = OutcomeKind.ALREADY_FINISHED
        else:
            self.cost += until - (saved if self.restores else 0)
            self.saved[key] = max(saved, until)
            kind = (OutcomeKind.FAILED if until < run.until else
                    OutcomeKind.FINISHED if run.until == experiment.iterations else OutcomeKind.REACHED)
        values = [{"iteration": n, **self.row(experiment, run.rep, n)} for n in range(until)]
        return Outcome(run.job, f"{run.experiment_name} rep {run.rep}", kind, iterations_done=until, values=values)

    def row(self, experiment, rep, n):
        return {"loss": self.loss(experiment, rep, n)}

    def step(self):
        run = self.pending.pop(self.order.randrange(len(self.pending)) if self.order else 0)
        self.apply(self.steering.on_outcome(self.outcome(run)))

    def run(self, steps=None):
        if self.steering is None:
            self.open()
        while self.pending and steps != 0:
            self.step()
            steps = None if steps is None else steps - 1
        return self

    def decisions(self):
        """The journal's decisions, without job numbers (they follow the order decisions were made in)."""
        records = Journal(journal_path(self.document.base_folder)).read()
        return Counter(json.dumps({k: v for k, v in r.items() if k != "job"}, sort_keys=True)
                       for r in records if r["k"] in ("run", "stop", "add", "finish"))

    def stopped_at(self):
        return Counter(self.saved[(name, 0 if rep is None else rep)] for name, rep in self.stopped)


def c_of(experiment):
    return experiment.varied[("c",)]


def shuffled_loss(experiment, rep, n):
    return (c_of(experiment) * 37 + 11) % 81 + 1 / (n + 1)


# -- the steer block ---------------------------------------------------------------------------------------------

def test_steer_block_defaults():
    spec = check_steer_block({"policy": "successive_halving", "metric": "loss"}, SOURCE, "search")
    assert (spec.mode, spec.reduce, spec.min_iterations, spec.reduction_factor, spec.columns) == (
        "min", "mean", 1, 3, ("loss",))
    threshold = check_steer_block({"policy": "threshold", "metric": "acc", "bound": 0.9, "mode": "max"}, SOURCE, "s")
    assert threshold.bound == 0.9 and threshold.mode == "max"
    median = check_steer_block({"policy": "median_stopping", "metric": "l", "min_iterations": 4}, SOURCE, "s")
    assert median.interval == 1  # every iteration after the grace period, as Optuna's and Ray's median rules


BAD_STEER_BLOCKS = [
        ([1, 2], "'steer': must be a mapping"),
        ({"policy": "asha", "metric": "loss"}, "'steer.policy': must be one of successive_halving"),
        ({"policy": "successive_halving"}, "'steer.metric': must name a column that iterate() returns, got None"),
        ({"policy": "successive_halving", "metric": "l", "mode": "low"},
         "'steer.mode': must be one of min, max, got 'low'"),
        ({"policy": "hyperband", "metric": "l", "reduce": "sum"},
         "'steer.reduce': must be one of mean, min, max, median"),
        ({"policy": "successive_halving", "metric": "l", "min_iterations": 0}, "'steer.min_iterations': must be an "
                                                                               "integer of at least 1, got 0"),
        ({"policy": "successive_halving", "metric": "l", "reduction_factor": 1}, "'steer.reduction_factor': must be"),
        ({"policy": "successive_halving", "metric": "l", "bound": 1}, "'steer.bound': the successive_halving policy "
                                                                     "takes no 'bound'"),
        ({"policy": "threshold", "metric": "l"}, "'steer.bound': must be a finite number"),
        ({"policy": "threshold", "metric": "l", "bound": float("nan")}, "'steer.bound': must be a finite number"),
        ({"policy": "optuna", "metric": "l", "space": {"x": [1]}}, "'steer.trials': is required"),
        ({"policy": "optuna", "metric": "l", "trials": 3}, "'steer.space': must be a non-empty mapping"),
        ({"policy": "optuna", "metric": "l", "trials": 3, "space": {"x": {"uniform": [2, 1]}}},
         "'steer.space.x': uniform needs low < high"),
        ({"policy": "optuna", "metric": "l", "trials": 3, "batch": 0, "space": {"x": [1]}}, "'steer.batch': must be"),
        ({"policy": "optuna", "metric": "l", "trials": 3, "pruner": "asha", "space": {"x": [1]}}, "'steer.pruner'"),
        ({"policy": "no_such_module:Thing"}, "'steer.policy': cannot load 'no_such_module:Thing' (ModuleNotFoundError"),
        ({"policy": "json:JSONDecoder"}, "'steer.policy': 'json:JSONDecoder' must be a subclass of "
                                         "cluster_work.steering.Policy"),
        ({"policy": "test_steering:Explorer", "columns": "loss"}, "'steer.columns': must be a list of column names"),
    ]


def _short(message: str) -> str:
    return message.split("'")[1] if message.count("'") >= 2 else message[:30]


@pytest.mark.parametrize("block, expected", BAD_STEER_BLOCKS, ids=[_short(m) for _, m in BAD_STEER_BLOCKS])
def test_a_bad_steer_block_is_one_line_naming_file_experiment_and_key(block, expected):
    with pytest.raises(ConfigError) as caught:
        check_steer_block(block, SOURCE, "search")
    message = str(caught.value)
    assert message.startswith("config.yml: experiment 'search': "), message
    assert expected in message and "\n" not in message, message


# -- successive halving ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("restores, cost", [(True, 297), (False, 405)])
def test_successive_halving_on_81_points_costs_297_iterations_and_stops_54_18_6_2(tmp_path, restores, cost):
    document = make_document(tmp_path / f"restores{restores}", grid={"c": list(range(81))}, iterations=81)
    spec = steer(document, policy="successive_halving", min_iterations=1, reduction_factor=3)
    seen = []
    for seed in (None, 1, 2):  # FIFO and two random arrival orders, each a campaign of its own
        document = make_document(tmp_path / f"{restores}{seed}", grid={"c": list(range(81))}, iterations=81)
        engine = Engine(document, spec, shuffled_loss, restores=restores, seed=seed)
        steering = Steering(spec, document, Journal(journal_path(document.base_folder)))
        assert steering.planned_iterations(restores) == cost
        engine.open(steering)
        engine.run()
        assert engine.cost == cost and engine.finish_seen and steering.planned_iterations(restores) == 0
        assert engine.stopped_at() == Counter({1: 54, 3: 18, 9: 6, 27: 2})
        assert sum(1 for key in engine.saved if engine.saved[key] == 81) == 1
        assert steering.best()[0] == "search__c61"  # (61 * 37 + 11) % 81 == 0
        assert [(r["iteration"], r["entered"], r["stopped"]) for r in steering.rungs()] == [
            (1, 81, 54), (3, 27, 18), (9, 9, 6), (27, 3, 2)]
        seen.append(engine.decisions())
        if seed is None:
            reason = engine.stopped[("search__c1", None)]
            assert reason == "successive halving: loss 49 after 1 iteration ranks 49 of 81; the best 27 go on"
    assert seen[0] == seen[1] == seen[2]


def test_successive_halving_ties_go_to_the_earlier_experiment(tmp_path):
    document = make_document(tmp_path, grid={"c": list(range(9))}, iterations=9)
    spec = steer(document, policy="successive_halving")
    engine = Engine(document, spec, lambda e, rep, n: 1.0, seed=5).run()
    assert [name for name, count in engine.saved.items() if count == 9] == [("search__c0", 0)]
    assert {name for (name, _), count in engine.saved.items() if count == 3} == {"search__c1", "search__c2"}


def test_a_point_certain_to_survive_goes_on_before_its_rung_is_complete(tmp_path):
    """9 points, keep 3: once 7 are known, the best of them is in the top 3 whatever the last 2 report."""
    document = make_document(tmp_path, grid={"c": list(range(9))}, iterations=9)
    spec = steer(document, policy="successive_halving")
    engine = Engine(document, spec, lambda e, rep, n: [5, 1, 7, 3, 8, 0, 6, 2, 4][c_of(e)])
    engine.open()
    promoted = []
    for _ in range(9):
        run = engine.pending.pop(0)
        actions = engine.steering.on_outcome(engine.outcome(run))
        promoted.append([a.experiment_name for a in actions if isinstance(a, Run)])
        engine.apply(actions)
    # known after 7: values 5 1 7 3 8 0 6 -> c5 (0) is certain; after 8 (+2): c1 too; after 9: c7, and the stops
    assert promoted[:6] == [[]] * 6 and promoted[6] == ["search__c5"] and promoted[7] == ["search__c1"]
    assert promoted[8] == ["search__c7"]
    engine.run()
    assert engine.cost == 9 + 3 * 2 + 1 * 6


def test_repetitions_are_reduced_and_a_failed_repetition_drops_out(tmp_path):
    values = {0: [1.0, 5.0], 1: [2.5, 2.5], 2: [4.0, 4.0]}

    def loss(experiment, rep, n):
        return values[c_of(experiment)][rep]

    winners = {}
    for reduce in ("mean", "min", "max", "median"):
        document = make_document(tmp_path / reduce, grid={"c": [0, 1, 2]}, iterations=3, repetitions=2)
        engine = Engine(document, steer(document, policy="successive_halving", reduce=reduce), loss).run()
        winners[reduce] = sorted(name for name, count in engine.saved.items() if count == 3)
    assert winners["mean"] == winners["median"] == [("search__c1", 0), ("search__c1", 1)]
    assert winners["min"] == [("search__c0", 0), ("search__c0", 1)]
    assert winners["max"] == [("search__c1", 0), ("search__c1", 1)]
    # c1's rep 0 fails in its first iteration: c1 is ranked on rep 1 alone, c0 (mean 3) loses to it
    document = make_document(tmp_path / "fail", grid={"c": [0, 1, 2]}, iterations=3, repetitions=2)
    engine = Engine(document, steer(document, policy="successive_halving"), loss,
                    fails=lambda e, rep: 0 if (c_of(e), rep) == (1, 0) else None).run()
    assert engine.saved[("search__c1", 1)] == 3 and engine.saved[("search__c1", 0)] == 0
    assert ("search__c1", None) not in engine.stopped and engine.finish_seen


# -- hyperband, median stopping, threshold: figures derived by hand (see each test) ----------------------------

@pytest.mark.parametrize("restores, cost", [pytest.param(True, 37, id="restores"),
                                            pytest.param(False, 44, id="no-restore")])
def test_hyperband_shares_points_among_brackets_and_runs_them_all_at_once(tmp_path, restores, cost):
    """R = 9, r = 1, eta = 3: s_max = 2, Li et al.'s sizes 9, 5, 3 share 9 points as 5, 3, 1 (largest
    remainders of 81/17, 45/17, 27/17), interleaved 0 1 0 2 0 1 0 1 0. loss(c) = (4c + 3) % 9:
    bracket 2 {0,2,4,6,8} = 3,2,1,0,8: c6 goes on from rung 1 (keep 5//3 = 1) and rung 3, the rest stop
    at 1; bracket 1 {1,5,7} = 7,5,4: c7 goes on from rung 3, c1 and c5 stop at 3; bracket 0 {3}: runs
    to 9. Cost 5 + 2 + 6 + 3*3 + 6 + 9 = 37 (17 + 18 + 9 = 44 without restore)."""
    assert hyperband_brackets(9, 9, 1, 3) == [(1, [0, 2, 4, 6, 8]), (3, [1, 5, 7]), (9, [3])]
    document = make_document(tmp_path / str(restores), grid={"c": list(range(9))}, iterations=9)
    engine = Engine(document, steer(document, policy="hyperband"), lambda e, rep, n: (4 * c_of(e) + 3) % 9,
                    restores=restores, seed=3)
    engine.open()
    assert {(run.experiment_name, run.until) for run in engine.pending} == {
        *((f"search__c{c}", 1) for c in (0, 2, 4, 6, 8)), *((f"search__c{c}", 3) for c in (1, 5, 7)),
        ("search__c3", 9)}
    engine.run()
    assert engine.cost == cost and engine.finish_seen
    assert sorted(name for (name, _), n in engine.saved.items() if n == 9) == [
        "search__c3", "search__c6", "search__c7"]
    assert engine.stopped_at() == Counter({1: 4, 3: 2})
    assert engine.stopped[("search__c1", None)].startswith("hyperband bracket 1: loss 7 after 3 iterations")


def test_median_stopping_by_hand(tmp_path):
    """5 points, R = 4, checks after 1, 2, 3. After 1: values 0..4; c3 (1.5 the median of 0,1,2,4) and
    c4 stop, c2 (2, the median of 0,1,3,4) is not worse and goes on. After 2: c0 2, c1 0, c2 1: c0 stops
    (median 0.5), c2 ties its median 1. After 3: c1 5, c2 3: c1 stops. c2 runs to 4: 5 + 3 + 2 + 1 = 11."""
    table = {0: [0, 2, 9, 9], 1: [1, 0, 5, 9], 2: [2, 1, 3, 9], 3: [3, 9, 9, 9], 4: [4, 9, 9, 9]}
    for seed in (None, 4):
        document = make_document(tmp_path / str(seed), grid={"c": list(range(5))}, iterations=4)
        engine = Engine(document, steer(document, policy="median_stopping"), lambda e, rep, n: table[c_of(e)][n],
                        seed=seed).run()
        assert engine.cost == 11 and engine.finish_seen
        assert {name: engine.saved[(name, 0)] for name, _ in engine.stopped} == {
            "search__c3": 1, "search__c4": 1, "search__c0": 2, "search__c1": 3}
        assert engine.stopped[("search__c3", None)] == (
            "median stopping: loss 3 after 1 iteration is worse than the median 1.5 of the 4 others")


@pytest.mark.parametrize("block, stopped_after", [
    pytest.param({}, 3, id="default-every-iteration-after-the-grace-period"),
    pytest.param({"interval": 2}, 4, id="interval-2-checks-after-2-and-4"),
])
def test_median_stopping_checks_every_iteration_after_min_iterations_unless_told(tmp_path, block, stopped_after):
    """R = 5, min_iterations 2: c1 ties c0 after 2 iterations and is worse from its third on. Checked
    after 2, 3, 4 it stops after 3; it stopped only after 4 when `interval` defaulted to min_iterations."""
    table = {0: [0, 0, 0, 0, 0], 1: [0, 0, 9, 9, 9]}
    document = make_document(tmp_path, grid={"c": [0, 1]}, iterations=5)
    spec = steer(document, policy="median_stopping", min_iterations=2, **block)
    engine = Engine(document, spec, lambda e, rep, n: table[c_of(e)][n]).run()
    assert {name: engine.saved[(name, 0)] for name, _ in engine.stopped} == {"search__c1": stopped_after}
    assert engine.stopped[("search__c1", None)].startswith(f"median stopping: loss 9 after {stopped_after} iterations")


def test_median_bound_counts_unknown_points_as_the_best():
    assert median_of_others([1.0, 2.0, 3.0], 1.0, 0) == 2.5
    assert median_of_others([1.0, 2.0, 3.0], 3.0, 1) == 1.0  # others -inf, 1, 2
    assert median_of_others([1.0], 1.0, 0) == math.inf and median_of_others([1.0], 1.0, 2) == -math.inf


def test_threshold_by_hand(tmp_path):
    """4 points, R = 6, checks after 2 and 4, bound 0.5 on loss = c (n + 1) / 10: after 2 c3 (0.6) stops,
    after 4 c2 (0.8) stops, c0 and c1 run to 6: 2 + 4 + 6 + 6 = 18; without restore 2 + 6 + 12 + 12 = 32.
    With mode max on the same values, below 0.5 is worse: c0 (0), c1 (0.2) and c2 (0.4) stop after 2, c3
    (0.6, then 1.2) runs to 6: 2 + 2 + 2 + 6 = 12."""
    for restores, cost in ((True, 18), (False, 32)):
        document = make_document(tmp_path / str(restores), grid={"c": list(range(4))}, iterations=6)
        spec = steer(document, policy="threshold", min_iterations=2, interval=2, bound=0.5)
        engine = Engine(document, spec, lambda e, rep, n: c_of(e) * (n + 1) / 10, restores=restores, seed=9).run()
        assert engine.cost == cost
        assert {name: engine.saved[(name, 0)] for name, _ in engine.stopped} == {"search__c3": 2, "search__c2": 4}
    document = make_document(tmp_path / "max", grid={"c": list(range(4))}, iterations=6)
    spec = steer(document, policy="threshold", min_iterations=2, interval=2, bound=0.5, mode="max")
    engine = Engine(document, spec, lambda e, rep, n: c_of(e) * (n + 1) / 10).run()
    assert engine.cost == 12 and {name for name, _ in engine.stopped} == {"search__c0", "search__c1", "search__c2"}
    assert engine.stopped[("search__c1", None)] == "threshold: loss 0.2 after 2 iterations is worse than the bound 0.5"


# -- the journal: resume after a kill at any instant ------------------------------------------------------------

def reference(tmp_path, spec, loss, **grid):
    document = make_document(tmp_path / "reference", **grid)
    return Engine(document, spec, loss).run()


def kill_and_resume(tmp_path, spec, loss, name, **grid):
    """For every step k of a campaign: throw the Steering away after k outcomes (what it only buffered is
    lost), and also after it decided on outcome k+1 but before the engine acted, with the journal cut at
    every line that last write added; a torn line at the end of each. Each resumes from the journal and
    finishes with the reference's decisions, disk and cost."""
    expected = reference(tmp_path, spec, loss, **grid)
    steps = sum(1 for r in Journal(journal_path(expected.document.base_folder)).read() if r["k"] == "end")
    variants = 0
    for k in range(steps + 1):
        document = make_document(tmp_path / f"{name}{k}", **grid)
        path = journal_path(document.base_folder)
        engine = Engine(document, spec, loss).run(steps=k)
        before = open(path, "rb").read()
        crashes = [(before, dict(engine.saved), engine.cost)]
        if engine.pending:
            engine.steering.on_outcome(engine.outcome(engine.pending.pop(0)))  # decided, never acted on
            lines = open(path, "rb").read()[len(before):].splitlines(keepends=True)
            crashes += [(before + b"".join(lines[:cut]), dict(engine.saved), engine.cost)
                        for cut in range(len(lines) + 1)]
        for journal, saved, cost in crashes:
            with open(path, "wb") as handle:
                handle.write(journal + b'{"k":"run","jo')
            resumed = Engine(document, spec, loss)
            resumed.saved, resumed.cost = saved, cost
            resumed.run()
            variants += 1
            assert resumed.decisions() == expected.decisions(), (k, journal[-200:])
            assert resumed.saved == expected.saved and resumed.cost == expected.cost, (k, journal[-200:])
            assert resumed.finish_seen and resumed.stopped == expected.stopped
    return variants


def test_successive_halving_resumes_to_the_same_decisions_after_a_kill_at_any_instant(tmp_path):
    document = make_document(tmp_path / "spec", grid={"c": list(range(9))}, iterations=9, repetitions=2)
    spec = steer(document, policy="hyperband")
    variants = kill_and_resume(tmp_path, spec, lambda e, rep, n: ((4 * c_of(e) + 3) % 9) + rep / 10 + 1 / (n + 1),
                               "hb", grid={"c": list(range(9))}, iterations=9, repetitions=2)
    assert variants > 40


def test_a_changed_config_does_not_resume_a_campaign(tmp_path):
    document = make_document(tmp_path, grid={"c": list(range(9))}, iterations=9)
    spec = steer(document, policy="successive_halving")
    Engine(document, spec, shuffled_loss).run(steps=4)
    journal = Journal(journal_path(document.base_folder))
    with pytest.raises(SteeringError, match="the steer block changed since the campaign started"):
        Steering(steer(document, policy="successive_halving", reduction_factor=2), document, journal)
    with pytest.raises(SteeringError, match="grid, params, repetitions or iterations changed"):
        Steering(spec, make_document(tmp_path, grid={"c": list(range(8))}, iterations=9), journal)
    with open(journal.path, "a") as handle:  # a journal whose middle is not JSON: corrupt, named by line
        handle.write("garbage\n{}\n")
    with pytest.raises(SteeringError, match="is corrupt at line"):
        Steering(spec, document, journal)


def test_an_outcome_that_is_no_end_leaves_its_run_outstanding(tmp_path):
    document = make_document(tmp_path, grid={"c": list(range(3))}, iterations=3)
    spec = steer(document, policy="successive_halving")
    steering = Steering(spec, document, Journal(journal_path(document.base_folder)))
    runs = steering.start()
    assert all(isinstance(a, Run) for a in runs) and steering.columns == ("loss",)
    for kind in (OutcomeKind.INTERRUPTED, OutcomeKind.BUSY, OutcomeKind.STORE_FAILURE, OutcomeKind.CANCELLED):
        assert steering.on_outcome(Outcome(runs[0].job, "", kind)) == []
    assert [r.job for r in steering.outstanding()] == [r.job for r in runs]
    resumed = Steering(spec, document, Journal(journal_path(document.base_folder))).start()
    assert [(r.experiment_name, r.until) for r in resumed] == [(r.experiment_name, r.until) for r in runs]
    with pytest.raises(SteeringError, match="its results have no column 'loss'"):
        steering.on_outcome(Outcome(runs[1].job, "", OutcomeKind.REACHED, values=[{"iteration": 0, "los": 1}]))
    with pytest.raises(SteeringError, match="carries no values of iteration 0"):
        steering.on_outcome(Outcome(runs[1].job, "", OutcomeKind.REACHED, values=[]))


# -- a user's policy ---------------------------------------------------------------------------------------------

class Explorer(Policy):
    """Adds a point near the best so far for each result, up to `budget`; stops configured c2 at once,
    and every repetition 1 it has not been told yet once a point beats 0.35."""

    def __init__(self, budget=6):
        self.budget, self.best, self.calls = budget, None, []

    def start(self, campaign):
        campaign.stop("search__c2")
        campaign.add({"c": 0.5}, repetitions=2)

    def on_results(self, campaign, results):
        self.calls.append([(r.experiment, r.rep, r.iteration, r.kind) for r in results])
        for result in results:
            loss = result.row["loss"]
            if self.best is None or loss < self.best[0]:
                self.best = (loss, result.params["c"])
        if self.best[0] < 0.35 and not getattr(self, "stopped", False):
            self.stopped = True
            for experiment in list(campaign.experiments)[3:]:
                campaign.stop(experiment.name, rep=1, reason="enough")
        if self.budget:
            self.budget -= 1
            campaign.add({"c": round(self.best[1] + campaign.rng.normal(0, 0.3), 6)}, repetitions=2, iterations=3)


def policy_loss(experiment, rep, n):
    return abs(experiment.params["c"] - 1.3) + rep / 100 + 1 / (n + 1) / 10


def test_a_users_policy_is_told_results_in_job_order_whatever_order_they_end_in(tmp_path):
    spec = check_steer_block({"policy": "test_steering:Explorer", "metric": "loss", "seed": 3,
                              "options": {"budget": 5}}, SOURCE, "search")
    seen = []
    for seed in (None, 1, 2):
        document = make_document(tmp_path / str(seed), grid={"c": [0, 1, 2]}, iterations=4)
        engine = Engine(document, spec, policy_loss, seed=seed).run()
        policy = engine.steering._strategy.policy
        assert engine.finish_seen and engine.stopped[("search__c2", 0)] == "stopped by the campaign's policy"
        seen.append((policy.calls, engine.decisions()))
        added = [e.name for e in engine.steering.experiments][3:]
        assert added[0] == "search__c0.5_add0" and len(added) == 6
        assert [e.name for e in read_added(document, Journal(journal_path(document.base_folder)))] == added
        assert engine.steering.experiments[3].config["path"].endswith("/results/search/c0.5_add0")
        assert engine.steering.experiments[4].iterations == 3 and engine.steering.experiments[4].repetitions == 2
    assert seen[0] == seen[1] == seen[2]
    calls = seen[0][0]
    assert calls[0] == [("search__c0", 0, 3, "finished")]  # configured first, then start()'s point, then added
    # c1 (0.325) beats 0.35 before c0.5_add0 and c0.612276_add1 are told: their repetition 1 is stopped, and
    # never told, even where it had finished meanwhile (how far it got depends on timing; the decision not)
    assert calls[2] == [("search__c0.5_add0", 0, 3, "finished")]
    assert calls[3] == [("search__c0.612276_add1", 0, 2, "finished")] and len(calls) == 8
    assert {key for key, reason in engine.stopped.items() if reason == "enough"} == {
        ("search__c0.5_add0", 1), ("search__c0.612276_add1", 1)}


def test_a_users_policy_resumes_with_the_same_generator_and_decisions(tmp_path):
    spec = check_steer_block({"policy": "test_steering:Explorer", "metric": "loss", "options": {"budget": 3}},
                             SOURCE, "search")
    variants = kill_and_resume(tmp_path, spec, policy_loss, "policy", grid={"c": [0, 1, 2]}, iterations=4)
    assert variants > 15


class Raising(Policy):
    def on_results(self, campaign, results):
        raise ValueError("no idea")


class Flaky(Explorer):
    """Explorer that adds a point and then raises, on its fourth result, while `failing` is set."""

    failing = False

    def on_results(self, campaign, results):
        if Flaky.failing and len(self.calls) == 3:
            campaign.add({"c": 9.9})
            raise RuntimeError("a bug")
        super().on_results(campaign, results)


class Adding(Policy):
    def __init__(self, params=None):
        self.params = params or {}

    def start(self, campaign):
        campaign.add(self.params, repetitions=2)


def test_an_exception_in_a_policy_is_a_clear_error_with_its_traceback(tmp_path):
    document = make_document(tmp_path, grid={"c": [0, 1]}, iterations=2)
    spec = check_steer_block({"policy": "test_steering:Raising", "metric": "loss"}, SOURCE, "search")
    engine = Engine(document, spec, policy_loss)
    engine.open()
    with pytest.raises(PolicyError) as caught:
        engine.run()
    assert str(caught.value) == "steer.policy 'test_steering:Raising' raised in on_results: ValueError: no idea"
    assert isinstance(caught.value.__cause__, ValueError) and caught.value.__cause__.__traceback__ is not None
    spec = check_steer_block({"policy": "test_steering:Adding"}, SOURCE, "search")
    with pytest.raises(PolicyError, match="raised in start: SteeringError: a new point needs a non-empty mapping"):
        Engine(make_document(tmp_path / "b", grid={"c": [0]}, iterations=2), spec, policy_loss).open()


def test_a_campaign_whose_policy_raised_resumes_once_the_policy_is_fixed(tmp_path, monkeypatch):
    """The decisions of the step that raised were never acted on: they are dropped, and the fixed policy,
    replayed through what the campaign was told, decides afresh (as if it had never failed)."""
    spec = check_steer_block({"policy": "test_steering:Flaky", "metric": "loss", "options": {"budget": 4}},
                             SOURCE, "search")
    expected = reference(tmp_path, spec, policy_loss, grid={"c": [0, 1, 2]}, iterations=4)
    document = make_document(tmp_path / "flaky", grid={"c": [0, 1, 2]}, iterations=4)
    monkeypatch.setattr(Flaky, "failing", True)
    engine = Engine(document, spec, policy_loss)
    with pytest.raises(PolicyError, match="raised in on_results: RuntimeError: a bug"):
        engine.run()
    with pytest.raises(SteeringError, match="stopped on an error"):
        engine.steering.on_outcome(engine.outcome(engine.pending[0]))
    engine.steering.close()
    monkeypatch.setattr(Flaky, "failing", False)
    engine.steering = None
    engine.run()
    assert engine.decisions() == expected.decisions() and engine.saved == expected.saved


def test_added_points_of_a_document_without_grid(tmp_path):
    document = make_document(tmp_path, iterations=2, params={"c": 0.0, "model": {"width": 4}})
    spec = check_steer_block({"policy": "test_steering:Adding", "options": {"params": {"c": 0.5}}}, SOURCE, "search")
    steering = Steering(spec, document, Journal(journal_path(document.base_folder)))
    actions = steering.start()
    [add] = [a for a in actions if isinstance(a, Add)]
    assert add.experiment_name == "search__c0.5_add0" and add.params == ((("c",), 0.5),)
    assert add.experiment.params == {"c": 0.5, "model": {"width": 4}}
    assert add.experiment.path == str(tmp_path / "results" / "search" / "c0.5_add0")
    assert [(a.experiment_name, a.rep) for a in actions if isinstance(a, Run)] == [
        ("search", 0), ("search__c0.5_add0", 0), ("search__c0.5_add0", 1)]


# -- optuna --------------------------------------------------------------------------------------------------

OPTUNA_SPACE = {"x": {"uniform": [-3, 3]}, "k": {"randint": [1, 4]}, "act": ["a", "b"]}


def optuna_loss(experiment, rep, n):
    params = experiment.params
    return (params["x"] - 1) ** 2 + params["k"] / 10 + (0.5 if params["act"] == "b" else 0) + 1 / (n + 1) + rep / 50


def plain_loop(spec, iterations, repetitions):
    """The sequential ask/tell loop of cluster_work.steering.optuna_search's docstring."""
    from optuna.trial import TrialState

    from cluster_work.steering.optuna_search import distributions, make_study

    study, space = make_study(spec), distributions(spec)
    checkpoints = list(range(spec.min_iterations, iterations, spec.interval)) if spec.pruner != "none" else []
    asked, points, pruned = 0, [], []

    class Point:  # what optuna_loss reads of an experiment
        def __init__(self, params):
            self.params = params

    def metric(trial, step):
        return statistics.fmean(optuna_loss(Point(trial.params), rep, step) for rep in range(repetitions))

    while asked < spec.trials:
        batch = [study.ask(space) for _ in range(min(spec.batch, spec.trials - asked))]
        asked += len(batch)
        points += [trial.params for trial in batch]
        alive, previous = list(batch), 0
        for end in [*checkpoints, iterations]:
            for trial in list(alive):
                for step in range(previous, end):
                    trial.report(metric(trial, step), step)
                if end == iterations:
                    study.tell(trial, metric(trial, iterations - 1))
                elif trial.should_prune():
                    study.tell(trial, state=TrialState.PRUNED)
                    alive.remove(trial)
                    pruned.append(trial.number)
            previous = end
    return points, pruned


@pytest.mark.parametrize("pruner", ["none", "median", "successive_halving"])
def test_optuna_suggests_the_points_of_a_plain_sequential_loop(tmp_path, pruner):
    pytest.importorskip("optuna", reason="optuna steering needs the optuna extra (pip install -e '.[optuna]')")
    spec = check_steer_block({"policy": "optuna", "metric": "loss", "trials": 12, "batch": 3, "seed": 1,
                              "pruner": pruner, "space": OPTUNA_SPACE}, SOURCE, "search")
    points, pruned = plain_loop(spec, iterations=4, repetitions=2)
    assert len(set(json.dumps(p, sort_keys=True) for p in points)) == 12
    assert (pruner != "none") == bool(pruned)
    for seed in (None, 11):
        document = make_document(tmp_path / f"{pruner}{seed}", iterations=4, repetitions=2,
                                 params={"x": 0.0, "k": 1, "act": "a"})
        engine = Engine(document, spec, optuna_loss, seed=seed).run()
        added = [e for e in engine.steering.experiments][1:]
        assert [{key: e.params[key] for key in ("x", "k", "act")} for e in added] == points
        assert added[0].name.startswith("search__x") and added[0].name.endswith("_trial0")
        assert sorted(int(name.rsplit("trial", 1)[1]) for name, _ in engine.stopped) == sorted(pruned)
        # only what optuna asked ran: the document's own point is no unasked baseline
        assert {name for name, _ in engine.saved} == {e.name for e in added} and engine.finish_seen
        assert engine.steering.experiment_count() == 12


def test_optuna_resumes_to_the_same_points(tmp_path):
    pytest.importorskip("optuna", reason="optuna steering needs the optuna extra (pip install -e '.[optuna]')")
    spec = check_steer_block({"policy": "optuna", "metric": "loss", "trials": 4, "batch": 2, "pruner": "median",
                              "space": OPTUNA_SPACE}, SOURCE, "search")
    expected = reference(tmp_path, spec, optuna_loss, iterations=3, params={"x": 0.0, "k": 1, "act": "a"})
    for k in (2, 5, 9):
        document = make_document(tmp_path / str(k), iterations=3, params={"x": 0.0, "k": 1, "act": "a"})
        engine = Engine(document, spec, optuna_loss).run(steps=k)
        engine.steering = None
        engine.run()
        assert engine.decisions() == expected.decisions() and engine.cost == expected.cost


@pytest.mark.processes
def test_the_steering_benchmark_runs():
    import subprocess
    import sys

    from conftest import ROOT, script_env

    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "steering.py"), "--sizes", "30", "90",
                             "--rounds", "1"], env=script_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no-op policy" in result.stdout and "results/s" in result.stdout and "successive halving" in result.stdout


def test_a_campaign_whose_journal_cannot_be_written_says_so_in_its_step_and_leaves_the_outcome(tmp_path,
                                                                                              monkeypatch):
    """The driver's store failure reaches the campaign loop as `Step.store_failed` (which stops the run at
    once), never by rewriting the outcome."""
    document = make_document(tmp_path, grid={"c": [0, 1]}, iterations=2)
    driver = SteeredCampaign(CampaignPlan("steer", document, spec=steer(document, policy="successive_halving",
                                                                        min_iterations=1)),
                             RunSettings(sync=False))
    first, second = list(driver.start())

    def full_disk(journal):
        raise StoreError("cannot write the campaign journal: No space left on device")

    def reached(segment, loss):
        return Outcome(segment.index, segment.label, OutcomeKind.REACHED, iterations_done=1, iterations_run=1,
                       values=[{"iteration": 0, "loss": loss}])

    waiting = driver.on_outcome(reached(first, 1.0))  # the rung waits for the other
    assert list(waiting.run) == [] and (waiting.cancel, waiting.store_failed) == ((), False)
    monkeypatch.setattr(Journal, "commit", full_disk)
    came = reached(second, 2.0)
    step = driver.on_outcome(came)  # the rung is complete: its decisions cannot be made durable
    assert step.store_failed and list(step.run) == [] and step.cancel == ()
    assert came.kind is OutcomeKind.REACHED  # the outcome is left as it came
    monkeypatch.undo()
    driver.close()
    assert driver.exit_status() == 3 and "store failure: cannot write the campaign journal" in driver.summary_line()


def test_minus_d_names_what_it_kept_of_the_points_a_campaign_added_in_a_few_lines_as_of_a_plan(tmp_path):
    """-d of a campaign whose 9 added points each hold a file of the user's warned once per point; now as a plan's
    experiments: the first few by name, the rest in one line (`plan_warnings.warn_kept`). The files stay."""
    block = {"policy": "test_steering:Explorer", "metric": "loss", "seed": 3, "options": {"budget": 8}}
    spec = check_steer_block(block, SOURCE, "search")
    document = make_document(tmp_path, grid={"c": [0, 1, 2]}, iterations=4)
    engine = Engine(document, spec, policy_loss).run()
    added = list(engine.steering.experiments)[3:]
    assert len(added) == 9
    for experiment in added:
        os.makedirs(experiment.path)
        pathlib.Path(experiment.path, "mine.txt").write_text("the user's")
    [config] = merge_and_validate([{"name": "search", "repetitions": 1, "iterations": 4, "grid": {"c": [0, 1, 2]},
                                    "path": str(tmp_path / "results"), "steer": block}], SOURCE,
                                  warn=lambda message: None)
    warnings: list[str] = []
    apply_plan(make_plan(expand_all([config], source=SOURCE, warn=lambda message: None), Selection(),
                         RunPolicy(delete=True), SOURCE), warn=warnings.append)
    kept = [line for line in warnings if "kept what cluster_work did not write" in line]
    assert kept == [f"{e.name}: -d/-o kept what cluster_work did not write: mine.txt" for e in added[:5]] + [
        "-d/-o kept what cluster_work did not write in 4 more experiments' folders too (mine.txt)"]
    assert not os.path.exists(journal_path(document.base_folder))
    assert all(pathlib.Path(e.path, "mine.txt").read_text() == "the user's" for e in added)

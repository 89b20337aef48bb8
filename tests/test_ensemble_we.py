"""Weighted ensembles (issue 18): the `ensemble:` block, Huber-Kim resampling, the driver and its store,
reproducibility (block sizes, workers, outcome order, crashes), and the flux of a chain with a known answer.

The driver runs in-process here: a tiny loop hands its blocks to `run_walker_block` directly."""
import math
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import ROOT, script_env

from cluster_work import ClusterWork
from cluster_work.backends.base import TaskContext
from cluster_work.config import merge_and_validate, parse_documents
from cluster_work.ensemble import (
    EnsembleBusy,
    EnsembleStore,
    HuberKim,
    NextWalker,
    Walker,
    WalkerBlock,
    WeightedEnsemble,
    check_ensemble_block,
    ensemble_flux,
    ensemble_progress,
    load_ensemble,
    read_records,
    run_walker_block,
)
from cluster_work.ensemble.resampling import resample_group, rng_for
from cluster_work.ensemble.store import FILE_HEADER, delete_ensemble, encode, ensemble_file, last_record
from cluster_work.ensemble.worker import walker_seed
from cluster_work.errors import ConfigError, StoreError
from cluster_work.expansion import expand_all
from cluster_work.vocabulary import OutcomeKind

TESTS = os.path.dirname(os.path.abspath(__file__))


class Chain(ClusterWork):
    """A walk on 0..N: up with probability `up`, else down (staying at 0); one step per segment."""

    _default_params = {"up": 0.25, "fail_at": None}

    def reset(self, config, rep):
        self.x = 0

    def iterate(self, config, rep, n):
        if self._params["fail_at"] == [n, rep]:
            raise ValueError("boom")
        self.x = max(0, self.x + (1 if random.random() < self._params["up"] else -1))
        return {"pcoord": self.x, "nested": {"rep": rep}}

    def get_state(self):
        return self.x

    def set_state(self, state):
        self.x = state


class KeepAll:
    """A user resampler: no splitting, no merging (the ensemble just propagates)."""

    def __init__(self, spec):
        self.spec = spec

    def resample(self, walkers, rng):
        return [(w.walker, w.weight) for w in walkers]


class Inflating(KeepAll):
    def resample(self, walkers, rng):
        return [(w.walker, w.weight * 1.5) for w in walkers]


def chain_ensemble(tmp_path, iterations, name="chain", params=None, **block):
    block = {"walkers": 4, "coordinate": "pcoord", "bins": [i + 0.5 for i in range(11)], "walkers_per_bin": 4,
             "recycle": {"at_least": 12}, "seed": 1, **block}
    [experiment] = expand_all([{"name": name, "repetitions": 1, "iterations": iterations, "path": str(tmp_path),
                                "params": params or {}}], Chain._default_params)
    return check_ensemble_block(block, "c.yml", name), experiment


def drive(spec, experiment, workers=1, order=None, stop_after=None, experiment_class=Chain, context=TaskContext()):
    """Run the ensemble in this process; `order(outcomes)` permutes each iteration's outcomes before they
    reach the driver; `stop_after=k` abandons the driver (as a kill would) once iteration k is committed."""
    driver = WeightedEnsemble(spec, experiment, EnsembleStore(experiment.path, sync=False), workers=workers)
    blocks = driver.start()
    while blocks:
        outcomes = [run_walker_block(experiment_class, block, context) for block in blocks]
        blocks = []
        for outcome in order(outcomes) if order else outcomes:
            blocks += driver.on_outcome(outcome)
        if stop_after is not None and driver.iteration > stop_after:
            driver.close()  # the next iteration's blocks were handed out, then the process died
            break
    return driver


def comparable(experiment):
    frame = load_ensemble(experiment.path).drop(columns=["iteration_time"])
    states = [record.states for record in read_records(experiment.path, with_states=True)]
    return frame, states


def assert_same_ensembles(a, b):
    (frame_a, states_a), (frame_b, states_b) = comparable(a), comparable(b)
    assert frame_a.equals(frame_b)
    assert states_a == states_b


# ---------------------------------------------------------------------------------------------- config

def test_a_valid_block_becomes_a_spec():
    spec = check_ensemble_block({"walkers": 10, "coordinate": "pcoord", "bins": {"uniform": [0, 1, 4]},
                                 "walkers_per_bin": 5, "recycle": {"at_most": -0.5}, "seed": 3,
                                 "resampler": "test_ensemble_we:KeepAll"}, "c.yml", "we")
    assert spec.edges == (0.0, 0.25, 0.5, 0.75, 1.0) and spec.recycle == ("at_most", -0.5)
    assert [spec.bin_of(x) for x in (-1, 0, 0.3, 1.0, 7)] == [0, 1, 2, 5, 5]
    assert spec.reaches_target(-0.5) and not spec.reaches_target(-0.4)
    default = check_ensemble_block({"walkers": 1, "coordinate": "x", "bins": [1], "walkers_per_bin": 1}, "c", "we")
    assert default.recycle is None and default.resampler == "huber_kim"
    assert default.seed == check_ensemble_block({"walkers": 2, "coordinate": "y", "bins": [2], "walkers_per_bin": 3},
                                                "c", "we").seed  # derived from the name: stable


@pytest.mark.parametrize("change, key, words", [
    ({"walkers": 0}, "walkers", "must be an integer from 1"),
    ({"walkers": True}, "walkers", "must be an integer from 1"),
    ({"coordinate": ""}, "coordinate", "must name a column"),
    ({"bins": [1, 1]}, "bins", "edges must increase, but edge 1 (1) follows 1"),
    ({"bins": []}, "bins", "must be a list of 1"),
    ({"bins": [0, float("nan")]}, "bins", "finite numbers"),
    ({"bins": {"uniform": [1, 0, 3]}}, "bins.uniform", "low < high"),
    ({"bins": {"uniformly": [0, 1, 3]}}, "bins", "must be {uniform: [low, high, count]}"),
    ({"walkers_per_bin": 2.5}, "walkers_per_bin", "must be an integer"),
    ({"recycle": {"at_least": 1, "at_most": 0}}, "recycle", "must be {at_least: x} or {at_most: x}"),
    ({"recycle": {"above": 1}}, "recycle", "must be {at_least: x}"),
    ({"seed": -1}, "seed", "non-negative integer"),
    ({"resampler": "westpa"}, "resampler", "must be 'huber_kim' or a class"),
    ({"resampler": "no_such_module_xyz:Thing"}, "resampler", "cannot load"),
    ({"resampler": "test_ensemble_we:Chain.reset"}, "resampler", "must be a class with a method resample"),
    ({"spliting": 3}, "spliting", "unknown key"),
])
def test_a_bad_block_is_one_line_naming_the_key(change, key, words):
    block = {"walkers": 10, "coordinate": "pcoord", "bins": [0.5, 1.5], "walkers_per_bin": 5, **change}
    with pytest.raises(ConfigError) as caught:
        check_ensemble_block(block, "c.yml", "chain")
    message = str(caught.value)
    assert message.startswith(f"c.yml: experiment 'chain': 'ensemble.{key}': ") and "\n" not in message
    assert words in message


def test_a_block_that_is_not_a_mapping_or_lacks_a_key_is_refused():
    with pytest.raises(ConfigError, match=r"^c.yml: experiment 'chain': 'ensemble': must be a mapping"):
        check_ensemble_block([1], "c.yml", "chain")
    with pytest.raises(ConfigError, match=r"'ensemble.bins': required key is missing"):
        check_ensemble_block({"walkers": 1, "coordinate": "x", "walkers_per_bin": 1}, "c.yml", "chain")


ENSEMBLE_DOCUMENT = ("name: chain\niterations: 3\npath: out\nensemble: {walkers: 4, coordinate: pcoord, bins: [0.5], "
                     "walkers_per_bin: 4}\n")


@pytest.mark.parametrize("text", [
    pytest.param(ENSEMBLE_DOCUMENT, id="no-repetitions-anywhere"),
    pytest.param("name: DEFAULT\nrepetitions: 5\n---\nname: plain\niterations: 1\npath: out\n---\n" + ENSEMBLE_DOCUMENT,
                 id="the-DEFAULTs-repetitions-are-the-plain-experiments"),
    pytest.param(ENSEMBLE_DOCUMENT + "repetitions: 1\n", id="given"),
])
def test_an_ensemble_document_has_one_repetition_without_saying_so(text):
    experiments = merge_and_validate(parse_documents(text, "c.yml"), "c.yml", lambda message: None)
    assert {e["name"]: e["repetitions"] for e in experiments} == {"chain": 1, **(
        {"plain": 5} if "plain" in text else {})}


def test_an_ensemble_document_that_asks_for_more_repetitions_is_refused():
    with pytest.raises(ConfigError, match="'repetitions': must be 1 for a weighted ensemble"):
        merge_and_validate(parse_documents(ENSEMBLE_DOCUMENT + "repetitions: 2\n", "c.yml"), "c.yml")


# ------------------------------------------------------------------------------------------ resampling

def test_huber_kim_conserves_the_total_weight_and_fills_every_bin_to_its_target():
    generator = random.Random(5)
    for case in range(300):
        count = generator.randint(1, 40)
        weights = [10 ** generator.uniform(-30, 0) for _ in range(count)]
        total = math.fsum(weights)
        walkers = [Walker(i, w / total, 0.0, generator.randint(0, 4), generator.random() < 0.1, {})
                   for i, w in enumerate(weights)]
        target = generator.randint(1, 12)
        spec = check_ensemble_block({"walkers": 1, "coordinate": "x", "bins": [1], "walkers_per_bin": target},
                                    "c", "w")
        children = HuberKim(spec).resample(walkers, rng_for(case, 0))
        assert abs(math.fsum(c.weight for c in children) - 1.0) <= 1e-12
        groups = {-1 if w.recycled else w.bin for w in walkers}
        assert len(children) == target * len(groups)
        for group in groups:  # weight never moves between bins (nor into or out of the recycled group)
            members = [w for w in walkers if (-1 if w.recycled else w.bin) == group]
            ids = {w.walker for w in members}
            kept = [c.weight for c in children if c.parent in ids]
            assert len(kept) == target
            assert abs(math.fsum(kept) - math.fsum(w.weight for w in members)) <= 1e-12


def test_merging_keeps_a_walker_with_probability_proportional_to_its_weight():
    """In expectation every walker's weight is preserved: E[weight of its children] = its weight. A merge
    that kept the heaviest walker (or a uniformly chosen one) fails this by far more than the tolerance."""
    weights = [0.5, 0.2, 0.15, 0.1, 0.04, 0.01]
    trials = 4000
    inherited = np.zeros(len(weights))
    for trial in range(trials):
        for child in resample_group([NextWalker(i, w) for i, w in enumerate(weights)], 2, rng_for(7, trial)):
            inherited[child.parent] += child.weight
    assert np.abs(inherited / trials - weights).max() < 0.025, inherited / trials


def test_the_generator_depends_on_seed_and_iteration_only():
    assert rng_for(1, 5).random() == rng_for(1, 5).random()
    assert len({rng_for(1, 5).random(), rng_for(1, 6).random(), rng_for(2, 5).random()}) == 3


# ------------------------------------------------------------------------------------------------ worker

class SeedEcho(Chain):
    def iterate(self, config, rep, n):
        return {"pcoord": self.x, "seed": self._seed, "it": self._it, "name": self._name}


def test_a_block_runs_each_walker_from_its_state_with_its_own_seed_and_says_how_far_it_got(tmp_path):
    spec, experiment = chain_ensemble(tmp_path, 3, params={"fail_at": [2, 1]})
    block = WalkerBlock(7, experiment, 2, 0, ((0, None), (1, pickle.dumps(5)), (2, pickle.dumps(3))), seed=9)
    echo = run_walker_block(SeedEcho, block)
    assert echo.kind is OutcomeKind.FINISHED and echo.walkers == (0, 1, 2) and echo.index == 7
    assert [row["pcoord"] for row in echo.rows] == [0, 5, 3]  # reset for the basis state, set_state for the others
    assert [row["seed"] for row in echo.rows] == [walker_seed(experiment.name, 9, w, 2) for w in range(3)]
    assert {row["it"] for row in echo.rows} == {2} and {row["name"] for row in echo.rows} == {experiment.name}
    assert [pickle.loads(state) for state in echo.states] == [0, 5, 3]
    failing = run_walker_block(Chain, block)
    assert failing.kind is OutcomeKind.FAILED and failing.walkers == (0,) and len(failing.rows) == 1
    assert failing.error == "walker 1 of iteration 2: ValueError: boom (in iterate)"
    answers = iter([False, True])
    stopped = run_walker_block(SeedEcho, block, TaskContext(stop_requested=lambda: next(answers, True)))
    assert stopped.kind is OutcomeKind.INTERRUPTED and stopped.walkers == (0,)
    assert stopped.rows[0]["seed"] == echo.rows[0]["seed"] and len(stopped.rows) == 1
    cancelled = run_walker_block(SeedEcho, block, TaskContext(cancelled=lambda: True))
    assert cancelled.kind is OutcomeKind.CANCELLED and cancelled.walkers == () and cancelled.iterations_run == 0


# ------------------------------------------------------------------------------- driver and reproducibility

def test_the_ensemble_conserves_weight_and_records_every_walker(tmp_path):
    spec, experiment = chain_ensemble(tmp_path, 40)
    driver = drive(spec, experiment)
    assert driver.finished and driver.done and driver.error is None
    frame = load_ensemble(experiment.path)
    assert list(frame.columns[:6]) == ["iteration", "walker", "parent", "weight", "recycled", "bin"]
    assert {"pcoord", "nested_rep", "iteration_time"} <= set(frame.columns)
    assert (frame.groupby("iteration")["weight"].sum() - 1.0).abs().max() <= 1e-12
    assert sorted(frame["iteration"].unique()) == list(range(40))
    first = frame[frame["iteration"] == 0]
    assert list(first["parent"]) == [-1] * 4 and list(first["weight"]) == [0.25] * 4
    assert (frame["nested_rep"] == frame["walker"]).all()  # rep = the walker's slot
    assert frame["bin"].equals(frame["pcoord"].clip(upper=11).astype("int64"))  # edges 0.5 .. 10.5
    for iteration in range(39):  # walkers_per_bin in every group: each occupied bin, and the recycled ones
        before = frame[frame["iteration"] == iteration]
        groups = set(before["bin"].where(~before["recycled"], -1))
        assert (frame["iteration"] == iteration + 1).sum() == 4 * len(groups)
    last = frame[frame["iteration"] == 39]
    progress = ensemble_progress(experiment.path)
    assert progress["iterations_done"] == 40 and progress["occupied_bins"] == last["bin"].nunique()
    assert driver.start() == [] and driver.finished  # a rerun of a finished ensemble hands out nothing
    driver.close()


@pytest.mark.parametrize("workers, order", [
    (3, None), (7, lambda outcomes: outcomes[::-1]), (40, lambda outcomes: random.Random(len(outcomes)).sample(
        outcomes, len(outcomes)))])
def test_ensembles_do_not_depend_on_blocks_workers_or_outcome_order(tmp_path, workers, order):
    reference = chain_ensemble(tmp_path / "one", 60)
    drive(*reference)
    other = chain_ensemble(tmp_path / "other", 60)
    driver = drive(*other, workers=workers, order=order)
    assert driver.finished
    assert_same_ensembles(reference[1], other[1])


def test_a_different_seed_gives_a_different_ensemble(tmp_path):
    one, two = chain_ensemble(tmp_path / "one", 30), chain_ensemble(tmp_path / "two", 30, seed=2)
    drive(*one), drive(*two)
    assert not comparable(one[1])[0].equals(comparable(two[1])[0])


def test_a_resumed_ensemble_equals_an_uninterrupted_one_even_with_a_torn_commit(tmp_path):
    reference = chain_ensemble(tmp_path / "whole", 50)
    drive(*reference)
    resumed = chain_ensemble(tmp_path / "resumed", 50)
    crashed = drive(*resumed, workers=3, stop_after=20)
    assert not crashed.finished and last_record(resumed[1].path).iteration == 20
    with open(ensemble_file(resumed[1].path), "ab") as handle:  # a kill during the commit of iteration 21
        handle.write(b"CWR1" + b"\x00" * 30)
    driver = drive(*resumed, workers=2)
    assert driver.finished
    assert_same_ensembles(reference[1], resumed[1])
    # raising `iterations` continues a finished ensemble where it ended, exactly as a longer run would
    longer, extended = chain_ensemble(tmp_path / "longer", 60), chain_ensemble(tmp_path / "whole", 60)
    drive(*longer), drive(*extended)
    assert_same_ensembles(longer[1], extended[1])


def test_a_stop_interrupts_the_iteration_and_a_rerun_continues_it(tmp_path):
    spec, experiment = chain_ensemble(tmp_path, 10)
    driver = drive(spec, experiment, context=TaskContext(stop_requested=lambda: True))
    assert driver.stopped and driver.done and not driver.finished and last_record(experiment.path) is None
    assert drive(spec, experiment).finished


def test_a_failing_walker_fails_its_iteration_and_a_rerun_retries_it(tmp_path):
    spec, experiment = chain_ensemble(tmp_path, 8, params={"fail_at": [5, 2]})
    driver = drive(spec, experiment, workers=2)
    assert driver.error.startswith("walker 2 of iteration 5: ValueError: boom (in iterate)") and driver.done
    assert last_record(experiment.path).iteration == 4  # iterations 0..4 committed, nothing of 5
    fixed = chain_ensemble(tmp_path, 8)[1]  # same folder, the bug fixed
    assert drive(spec, fixed).finished and last_record(experiment.path).iteration == 7


def test_a_missing_coordinate_or_state_hook_or_a_bad_resampler_is_an_error(tmp_path):
    spec, experiment = chain_ensemble(tmp_path / "a", 3, coordinate="x")
    assert "walker 0's row has no finite number in 'x'" in drive(spec, experiment).error

    class Stateless(ClusterWork):
        def reset(self, config, rep):
            pass

        def iterate(self, config, rep, n):
            return {"pcoord": 0}

    spec, experiment = chain_ensemble(tmp_path / "b", 3)
    assert "Stateless needs get_state and set_state" in drive(spec, experiment, experiment_class=Stateless).error
    spec, experiment = chain_ensemble(tmp_path / "c", 3, resampler="test_ensemble_we:Inflating")
    error = drive(spec, experiment).error
    assert "iteration 0: changed the total weight from 1.0 to 1.5" in error
    assert last_record(experiment.path) is None


def test_a_user_resampler_decides_the_next_walkers(tmp_path):
    spec, experiment = chain_ensemble(tmp_path, 20, resampler="test_ensemble_we:KeepAll", recycle={"at_least": 2})
    assert drive(spec, experiment).finished
    frame = load_ensemble(experiment.path)
    assert (frame.groupby("iteration").size() == 4).all()  # never split nor merged
    recycled = frame[frame["recycled"]]
    assert len(recycled) and (recycled["pcoord"] >= 2).all()
    successors = frame.set_index(["iteration", "walker"])["parent"]
    assert all(successors[(i + 1, w)] == -1 for i, w in zip(recycled["iteration"], recycled["walker"]) if i < 19)
    flux = ensemble_flux(frame)
    assert list(flux.index) == list(range(20)) and math.isclose(flux.sum(), recycled["weight"].sum())


# ------------------------------------------------------------------------------------------------ store

def test_the_store_drops_a_torn_or_corrupt_tail_and_touches_no_foreign_file(tmp_path):
    spec, experiment = chain_ensemble(tmp_path, 5)
    drive(spec, experiment)
    path = ensemble_file(experiment.path)
    whole = open(path, "rb").read()
    ends = [len(whole)]
    for cut in (1, 17, 100):  # inside the last frame's header or payload
        with open(path, "wb") as handle:
            handle.write(whole[:-cut])
        assert [r.iteration for r in read_records(experiment.path)] == [0, 1, 2, 3]
        assert last_record(experiment.path).iteration == 3
    corrupt = bytearray(whole)
    corrupt[-3] ^= 0xFF  # a flipped byte in the last payload: its checksum fails
    with open(path, "wb") as handle:
        handle.write(corrupt)
    assert last_record(experiment.path).iteration == 3 and len(list(read_records(experiment.path))) == 4
    store = EnsembleStore(experiment.path)
    assert store.open().iteration == 3  # the writer cuts the bad frame off
    assert os.path.getsize(path) < ends[0]
    store.close()
    records = list(read_records(experiment.path, with_states=True))
    middle = len(FILE_HEADER) + len(encode(records[0])) + len(encode(records[1])) + 40  # inside frame 2
    corrupt = bytearray(open(path, "rb").read())
    corrupt[middle] ^= 0xFF
    with open(path, "wb") as handle:
        handle.write(corrupt)
    assert [r.iteration for r in read_records(experiment.path)] == [0, 1]
    store = EnsembleStore(experiment.path)
    assert store.open().iteration == 1  # nothing is appended after a damaged frame
    assert os.path.getsize(path) == middle - 40
    with pytest.raises(EnsembleBusy):  # one writer at a time
        EnsembleStore(experiment.path).open()
    store.close()
    with open(path, "wb") as handle:
        handle.write(b"my own notes\n")
    with pytest.raises(StoreError, match="was not written by cluster_work"):
        EnsembleStore(experiment.path).open()
    assert open(path, "rb").read() == b"my own notes\n"
    assert list(read_records(experiment.path)) == [] and load_ensemble(experiment.path).empty
    delete_ensemble(experiment.path)  # -d: not ours, so it stays
    assert open(path, "rb").read() == b"my own notes\n"
    os.remove(path)
    drive(spec, experiment)
    delete_ensemble(experiment.path)
    assert not os.path.exists(os.path.dirname(path))


@pytest.mark.processes
def test_a_kill_9_at_any_instant_resumes_to_the_uninterrupted_ensemble(tmp_path):
    """A real kill of a process that runs an ensemble (large enough that the kill lands inside some
    iteration or commit), then a resume in this process: identical to an uninterrupted run."""
    script = tmp_path / "run.py"
    script.write_text(textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        from test_ensemble_we import chain_ensemble, drive
        from pathlib import Path
        from cluster_work.ensemble.store import last_record
        spec, experiment = chain_ensemble(Path(sys.argv[1]), 400, walkers=16, walkers_per_bin=16)
        class Reporting:
            def __init__(self): self.seen = -1
            def __call__(self, outcomes):
                record = last_record(experiment.path)
                if record is not None and record.iteration != self.seen:
                    self.seen = record.iteration
                    print("committed", record.iteration, flush=True)
                return outcomes
        drive(spec, experiment, order=Reporting())
    """))
    process = subprocess.Popen([sys.executable, str(script), str(tmp_path / "killed")], env=script_env(),
                               stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.startswith("committed 3"):
            break
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    killed = chain_ensemble(tmp_path / "killed", 30, walkers=16, walkers_per_bin=16)
    assert 3 <= last_record(killed[1].path).iteration < 30
    drive(*killed)
    reference = chain_ensemble(tmp_path / "whole", 30, walkers=16, walkers_per_bin=16)
    drive(*reference)
    assert_same_ensembles(reference[1], killed[1])


# ---------------------------------------------------------------------------------- the known answer

def chain_matrix(states, up):
    """Transitions of the walk on 0..N (= states - 1) where N, the target, is recycled: it moves like 0."""
    top = states - 1
    matrix = np.zeros((states, states))
    for x in range(states):
        start = 0 if x == top else x
        matrix[x, min(start + 1, top)] += up
        matrix[x, max(start - 1, 0)] += 1 - up
    return matrix


def test_the_flux_over_a_barrier_matches_the_exact_answer_that_brute_force_never_sees(tmp_path):
    """A walk on 0..14 that goes up with probability 1/4: the steady-state flux into 14 (the weight at 14
    after a step, recycled to 0) is pi[14] of the recycled chain (7e-8), solved exactly. WE estimates it
    within a factor of 2; brute force with the same number of walker-iterations sees an event with
    probability < 1% (0.4%)."""
    states, up, burn_in = 15, 0.25, 100
    matrix = chain_matrix(states, up)
    equations = matrix.T - np.eye(states)
    equations[-1, :] = 1.0  # the probabilities sum to 1
    exact = np.linalg.solve(equations, np.eye(states)[-1])[-1]
    spec, experiment = chain_ensemble(tmp_path, 500, params={"up": up}, walkers_per_bin=8,
                                      bins=[i + 0.5 for i in range(states - 2)], recycle={"at_least": states - 1})
    assert drive(spec, experiment).finished
    frame = load_ensemble(experiment.path)
    estimate = ensemble_flux(frame).iloc[burn_in:].mean()
    assert exact / 2 < estimate < exact * 2, (estimate, exact)
    # brute force: spec.walkers walkers from 0, as many steps in all as WE ran; the chance that any ever
    # reaches 14 is 1 - P(one walker never does in its steps) ** walkers, from the absorbing chain
    steps = len(frame) // spec.walkers
    absorbing = matrix[:-1, :-1]  # without state 14: the mass that stays below it
    never = np.linalg.matrix_power(absorbing, steps)[0].sum()
    seen = 1 - never ** spec.walkers
    assert seen < 0.01, seen
    assert 40000 < len(frame) < 80000  # the budget the statement is about


@pytest.mark.processes
def test_the_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "weighted_ensemble.py"), "--walkers", "40",
                             "--iterations", "5", "--rounds", "1"], env=script_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "per walker-iteration" in result.stdout and "2 local worker processes (-n 2)" in result.stdout


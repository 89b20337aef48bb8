"""The global generators of a weighted ensemble's walkers are seeded lazily (issue 25): a segment that draws
from `random` or numpy's global generator sees exactly what an always-seeded run gives it, whatever it draws
and wherever in the block; a class that never draws is not seeded per walker."""
import pickle
import random

import numpy as np
import pytest

from cluster_work import ClusterWork
from cluster_work.ensemble import WalkerBlock, run_walker_block
from cluster_work.ensemble.worker import walker_seed
from cluster_work.expansion import expand_all
from cluster_work.seeding import LazySeeding
from cluster_work.vocabulary import OutcomeKind

DRAWS = {  # what a segment draws from the global generators, and the same from a generator seeded with `seed`
    "random": (lambda: random.random(), lambda seed: random.Random(seed).random()),
    "random-gauss": (lambda: random.gauss(0, 1), lambda seed: random.Random(seed).gauss(0, 1)),
    "numpy": (lambda: float(np.random.rand()), lambda seed: float(np.random.RandomState(seed).rand())),
    "numpy-normal": (lambda: float(np.random.normal()), lambda seed: float(np.random.RandomState(seed).normal())),
}


def walker_class(draw, draws_when):
    """A new class (so no earlier test taught this process that it draws), drawing with `draw` in the
    segments where `draws_when(walker, iteration)` holds, and in `reset` where it says so for iteration -1."""

    class Walkers(ClusterWork):
        def reset(self, config, rep):
            self.x = draw() if draws_when(rep, -1) else 0.0

        def iterate(self, config, rep, n):
            return {"pcoord": self.x, "drawn": draw() if draws_when(rep, n) else None}

        def get_state(self):
            return self.x

        def set_state(self, state):
            self.x = state

    return Walkers


def block_of(tmp_path, iteration, walkers):
    [experiment] = expand_all([{"name": "lazy", "repetitions": 1, "iterations": 5, "path": str(tmp_path)}])
    return WalkerBlock(0, experiment, iteration, 0, tuple(walkers), seed=3)


WHEN = {
    "every walker": lambda walker, n: n >= 0,
    "the third walker only": lambda walker, n: walker == 2,
    "the last walker only": lambda walker, n: walker == 5,
    "reset only": lambda walker, n: n == -1,
}


@pytest.mark.parametrize("when", WHEN, ids=list(WHEN))
@pytest.mark.parametrize("kind", DRAWS, ids=list(DRAWS))
def test_a_segment_that_draws_sees_exactly_the_seeded_generators(tmp_path, kind, when):
    draw, expected = DRAWS[kind]
    random.gauss(0, 1), np.random.normal()  # a cached Gaussian left over must not reach a walker either
    walkers = [(0, None), (1, pickle.dumps(0.5)), (2, pickle.dumps(1.5)), (3, None), (4, pickle.dumps(2.5)),
               (5, pickle.dumps(3.5))]
    block = block_of(tmp_path, 2, walkers)
    outcome = run_walker_block(walker_class(draw, WHEN[when]), block)
    assert outcome.kind is OutcomeKind.FINISHED and outcome.walkers == tuple(range(6))
    name = block.experiment.name
    for (walker, state), row in zip(walkers, outcome.rows):
        basis = walker_seed(name, 3, walker, 2, basis=True)
        reset_value = expected(basis) if WHEN[when](walker, -1) else 0.0
        assert row["pcoord"] == (reset_value if state is None or walker == 0 else pickle.loads(state)), walker
        drawn = expected(walker_seed(name, 3, walker, 2)) if WHEN[when](walker, 2) else None
        assert row["drawn"] == drawn, walker


def test_a_class_that_never_draws_is_seeded_once_per_block(tmp_path):
    block = block_of(tmp_path, 1, [(walker, pickle.dumps(1.0)) for walker in range(5)])
    quiet = walker_class(lambda: 0.0, lambda walker, n: False)
    assert not LazySeeding(quiet).eager
    outcome = run_walker_block(quiet, block)
    assert outcome.kind is OutcomeKind.FINISHED and len(outcome.rows) == 5
    first = walker_seed(block.experiment.name, 3, 0, 1, basis=True)  # the first walker's reset, and no other
    assert random.getstate() == random.Random(first).getstate()
    assert np.array_equal(np.random.get_state()[1], np.random.RandomState(first).get_state()[1])


def test_a_class_seen_drawing_and_a_group_member_are_seeded_eagerly(tmp_path):
    drawing = walker_class(random.random, lambda walker, n: walker == 1)
    assert not LazySeeding(drawing).eager
    run_walker_block(drawing, block_of(tmp_path, 0, [(0, None), (1, None)]))
    assert LazySeeding(drawing).eager  # from then on, in this process
    assert LazySeeding(walker_class(random.random, lambda walker, n: False), allowed=False).eager

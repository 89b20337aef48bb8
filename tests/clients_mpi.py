"""Clients written the way users of the original ClusterWork write them, for the MPI tests; also runnable
as scripts: `mpiexec -n 3 python -m mpi4py tests/clients_mpi.py NAME config.yml -c -g 1`."""
from __future__ import annotations

import sys
import time

import numpy as np
from mpi4py import MPI

from cluster_work import ClusterWork


class DataParallelLearner(ClusterWork):
    """An RL-style learner that spreads its rollouts over the ranks of `self._COMM` (run with `-g 1`): each
    rank samples its own episodes, the gradients are summed with `Allreduce`, every rank takes the same step.
    It records what it saw of its communicator, so the tests can check it."""

    _default_params = {"episodes": 16, "learning_rate": 0.5, "expect_ranks": 0}

    def reset(self, config, rep):
        self.theta = np.zeros(2)
        if self._params["expect_ranks"]:
            assert self._COMM.size == self._params["expect_ranks"], f"_COMM has {self._COMM.size} ranks"

    def iterate(self, config, rep, n):
        rng = np.random.RandomState(self._seed + 1000 * self._COMM.rank)  # every rank its own episodes
        returns = rng.normal(loc=[1.0, -2.0], size=(self._params["episodes"], 2))
        local = (self.theta - returns).mean(axis=0)
        gradient = np.empty_like(local)
        self._COMM.Allreduce(local, gradient, op=MPI.SUM)
        self.theta -= self._params["learning_rate"] * gradient / self._COMM.size
        return {"theta": {"x": self.theta[0], "y": self.theta[1]}, "comm_size": self._COMM.size,
                "comm_name": self._COMM.name, "rank_sum": self._COMM.allreduce(self._COMM.rank),
                "same_step": all(np.array_equal(t, self.theta) for t in self._COMM.allgather(self.theta)),
                "distinct_seeds": len(set(self._COMM.allgather(self._seed))) == self._COMM.size,
                "no_gui": self._no_gui}


class ChattyWalk(ClusterWork):
    """A random walk that prints a progress line every iteration, as most research code does."""

    _default_params = {"sleep": 0.0}

    def reset(self, config, rep):
        self.value = 0.0

    def iterate(self, config, rep, n):
        time.sleep(self._params["sleep"])
        self.value += float(np.random.rand())
        print(f"{self._name} rep {rep} iteration {n}: value {self.value:.4f}")
        return {"value": self.value}


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

"""The experiment of the plot tests; runnable as `python tests/plot_experiments.py Fit config.yml ...`.

`Fit` stands for a training run whose final loss is known from its parameters alone: after iteration n,
loss = 10 learning_rate + ridge + samples / 1000 + 1 / (n + 1) + 0.01 rep (features change nothing), so
every point of the tests' grids ends at its own value and the best and worst points are known.
"""
from __future__ import annotations

import sys

from cluster_work import ClusterWork


class Fit(ClusterWork):
    _default_params = {"optimizer": {"learning_rate": 0.01}, "ridge": 0.0, "data": {"samples": 200, "features": 10}}

    def reset(self, config, rep):
        params = self._params
        self.target = (10 * params["optimizer"]["learning_rate"] + params["ridge"] + params["data"]["samples"] / 1000
                       + 0.01 * rep)

    def iterate(self, config, rep, n):
        loss = self.target + 1 / (n + 1)
        return {"loss": loss, "accuracy": 1 / (1 + loss)}


def final_loss(params: dict, rep: int, iterations: int) -> float:
    """What `Fit` reports at its last iteration."""
    return (10 * params["learning_rate"] + params.get("ridge", 0.0) + params.get("samples", 200) / 1000 + 0.01 * rep
            + 1 / iterations)


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

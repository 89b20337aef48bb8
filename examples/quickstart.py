"""The README's quick start: a noisy counter, three repetitions of a small grid."""
import numpy as np

from cluster_work import ClusterWork


class Counter(ClusterWork):
    _default_params = {"step": 1.0, "noise": 0.1}

    def reset(self, config, rep):
        self.rng = np.random.default_rng(self._seed)
        self.value = 0.0

    def iterate(self, config, rep, n):
        self.value += self._params["step"] + self._params["noise"] * self.rng.standard_normal()
        return {"value": self.value}


if __name__ == "__main__":
    Counter.run()

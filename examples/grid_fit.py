"""A realistic sweep: ridge regression fitted by mini-batch gradient descent over a grid of hyper-parameters.

Each repetition draws its own data set from `self._seed`, trains for `iterations` epochs and reports the
training loss, the held-out loss and the weight error. It supports restarts: the weights are saved after
every epoch into the repetition's folder, so an interrupted sweep continues where it stopped.
"""
import os

import numpy as np

from cluster_work import ClusterWork, InvalidParameterArgument


class RidgeFit(ClusterWork):
    _restore_supported = True
    _default_params = {
        "data": {"samples": 400, "features": 20, "noise": 0.5},
        "optimizer": {"learning_rate": 0.01, "batch_size": 32},
        "ridge": 0.0,
    }

    def reset(self, config, rep):
        data, opt = self._params["data"], self._params["optimizer"]
        if opt["learning_rate"] <= 0:
            raise InvalidParameterArgument(f"optimizer.learning_rate must be positive, got {opt['learning_rate']}")
        rng = np.random.default_rng(self._seed)
        self.true_w = rng.standard_normal(data["features"])
        x = rng.standard_normal((data["samples"], data["features"]))
        y = x @ self.true_w + data["noise"] * rng.standard_normal(data["samples"])
        split = int(0.8 * data["samples"])
        self.train, self.test = (x[:split], y[:split]), (x[split:], y[split:])
        self.w = np.zeros(data["features"])

    def _loss(self, x, y):
        return float(np.mean((x @ self.w - y) ** 2))

    def iterate(self, config, rep, n):
        opt, ridge = self._params["optimizer"], self._params["ridge"]
        x, y = self.train
        rng = np.random.default_rng(self._seed)
        order = rng.permutation(len(y))
        for start in range(0, len(y), opt["batch_size"]):
            batch = order[start:start + opt["batch_size"]]
            grad = 2 * x[batch].T @ (x[batch] @ self.w - y[batch]) / len(batch) + 2 * ridge * self.w
            self.w -= opt["learning_rate"] * grad
        return {"loss": {"train": self._loss(*self.train), "test": self._loss(*self.test)},
                "weight_error": float(np.linalg.norm(self.w - self.true_w))}

    def _state_file(self, n):
        return os.path.join(self._log_path_rep, f"weights_{n:04d}.npy")

    def save_state(self, config, rep, n):
        np.save(self._state_file(n), self.w)
        old = self._state_file(n - 1)
        if os.path.exists(old):
            os.remove(old)  # keep one state file per repetition

    def restore_state(self, config, rep, n):
        if not os.path.exists(self._state_file(n)):
            return False
        self.w = np.load(self._state_file(n))
        return True


if __name__ == "__main__":
    RidgeFit.run()

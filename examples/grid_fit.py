"""A realistic sweep: ridge regression fitted by mini-batch gradient descent over a grid of hyper-parameters.

Each repetition draws its own data set from `self._seed`, trains for `iterations` epochs and reports the
training loss, the held-out loss and the weight error. It supports restarts: after every epoch the weights
of all epochs so far are saved into one file in the repetition's folder (replaced atomically), so an
interrupted sweep continues where it stopped, and PlotWork can restore the model of any epoch.
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

    def _state_file(self):
        return os.path.join(self._log_path_rep, "weights.npy")

    def save_state(self, config, rep, n):
        history = self._weights_history()[:n]
        temporary = self._state_file() + ".tmp.npy"
        np.save(temporary, np.vstack([history, self.w[None, :]]) if len(history) else self.w[None, :])
        os.replace(temporary, self._state_file())  # a kill never leaves half a file

    def _weights_history(self):
        try:
            return np.load(self._state_file())
        except (FileNotFoundError, ValueError):
            return np.zeros((0, len(self.w)))

    def restore_state(self, config, rep, n):
        history = self._weights_history()
        if len(history) <= n:
            return False
        self.w = history[n].copy()
        return True


if __name__ == "__main__":
    RidgeFit.run()

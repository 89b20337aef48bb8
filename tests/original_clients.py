"""Clients written the way users of the original ClusterWork wrote them (a kilobot-style learner with a
custom YAML tag, list-valued rewards, checkpoints in save_state without restore support, file names
appended to `_log_path_rep`). Run as `python tests/original_clients.py NAME config.yml ...`."""
from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import yaml

from cluster_work import ClusterWork


class EvalEnv(yaml.YAMLObject):
    """A tag the experiment's own code declares, as the kilobot project's `!EvalEnv`."""

    yaml_tag = "!EvalEnv"

    def reward(self, rng):
        return [float(rng.random()) * self.scale for _ in range(self.agents)]


class EnvLearner(ClusterWork):
    _default_params = {"env": None, "tau": 0.1, "learning_rate": 0.01, "odd": 0.0, "kinds": []}

    def reset(self, config, rep):
        self.rng = np.random.default_rng(self._seed)
        self.policy = 0.0
        seen = {key: config[key] for key in ("name", "experiment_name", "path", "log_path", "_config_path",
                                              "_experiment_path")}
        seen.update(no_gui=self._no_gui, plotting=self._plotting, log_path_rep=self._log_path_rep,
                    env_type=type(self._params["env"]).__name__, repetitions=self._repetitions)
        with open(self._log_path_rep + "seen.json", "w") as handle:  # the original's folders end in '/'
            json.dump(seen, handle)

    def iterate(self, config, rep, n):
        rewards = self._params["env"].reward(self.rng)
        self.policy += self._params["learning_rate"] * sum(rewards)
        return {"rwrd": rewards, "policy": {"value": self.policy, "tau": self._params["tau"]}}

    def save_state(self, config, rep, n):  # called although restore is not supported, as the original did
        with open(self._log_path_rep + f"checkpoint_{n}.pkl", "wb") as handle:
            pickle.dump(self.policy, handle)


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

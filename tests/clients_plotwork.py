"""Clients for the tests of the original's class API and PlotWork dialect; also runnable as scripts:
`python tests/clients_plotwork.py NAME config.yml ...`.

`Walker` is the client that wrote `tests/data/original_sweep/out` with the ORIGINAL ClusterWork (see
make_original_sweep.py there), ported to cluster_work unchanged but for its base class.
"""
from __future__ import annotations

import os
import pickle
import sys

import numpy as np

from cluster_work import ClusterWork


class Rewards(ClusterWork):
    """List-valued rewards (columns rwrd_0, rwrd_1), checkpoints to restore from, and a plot_results hook."""

    _restore_supported = True
    _default_params = {"gain": 1.0}

    def reset(self, config, rep):
        self.rng = np.random.RandomState(self._seed)
        self.total = 0.0

    def iterate(self, config, rep, n):
        self.total += self._params["gain"] * self.rng.rand()
        return {"rwrd": [self.total, 2 * self.total], "loss": 1.0 / (1.0 + self.total)}

    def save_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}.pkl"), "wb") as handle:
            pickle.dump(self.total, handle)

    def restore_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}.pkl"), "rb") as handle:
            self.total = pickle.load(handle)
        return True

    @classmethod
    def plot_results(cls, configs_results):
        """What the original's bare --plot called: one line per (config, results) into plot_hook.txt."""
        with open("plot_hook.txt", "w") as handle:
            for config, results in configs_results:
                handle.write(f"{config['name']} {config['experiment_name']} {len(results)} "
                             f"{','.join(results.columns)} {','.join(results.index.names)}\n")


class RaggedLists(ClusterWork):
    """List-valued results of every shape a results file holds: lists that grow (columns v_0, v_1, v_2 appear
    late), nested and empty lists, numpy arrays, dicts inside lists, None then a list, an int beyond 64 bits,
    and a repetition with a column of its own."""

    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        row = {"v": list(range(n % 3 + 1)), "m": [[n, rep], [1.5, 2]], "e": [], "a": np.arange(2) * 0.5 * n,
               "d": [{"x": n}], "s": ["a", "b"] if n else None, "big": 2 ** 70 if n == 2 else n}
        if rep == 1:
            row["late"] = [True, n > 1]
        return row


class Walker(ClusterWork):
    _restore_supported = True
    _default_params = {"step": 1.0, "die": False}

    def reset(self, config, rep):
        self.rng = np.random.RandomState(self._seed)
        self.position = 0.0

    def iterate(self, config, rep, n):
        self.position += self._params["step"] * self.rng.rand()
        return {"rwrd": [self.position, -self.position], "pos": self.position, "info": {"rep": rep}}

    def save_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}.pkl"), "wb") as handle:
            pickle.dump(self.position, handle)

    def restore_state(self, config, rep, n):
        with open(os.path.join(self._log_path_rep, f"state_{n}.pkl"), "rb") as handle:
            self.position = pickle.load(handle)
        return True


if __name__ == "__main__":
    globals()[sys.argv.pop(1)].run()

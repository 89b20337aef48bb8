"""Regenerates this folder's `out/` by running the ORIGINAL ClusterWork (github gregorgebhardt/cluster_work,
commit 6acbb6d) on today's Python, PyYAML and pandas:

    rm -rf out && python make_original_sweep.py /path/to/original/cluster_work.py config.yml

Only Python-version shims are applied (collections ABCs, yaml.load's Loader); what the original writes is
untouched. In `walk__s2.0` rep 1 iteration 1 returns None (the original writes no row for it, and NaN into
results.csv); `single` dies at rep 1 iteration 1 like a `kill -9`: no results.csv, a partial rep_1.csv.
"""
import collections
import collections.abc
import functools
import importlib.util
import os
import pickle
import sys

import numpy as np
import yaml

for _name in ("Mapping", "MutableMapping", "MutableSequence"):
    setattr(collections, _name, getattr(collections.abc, _name))
yaml.load = functools.partial(yaml.load, Loader=yaml.FullLoader)
yaml.load_all = functools.partial(yaml.load_all, Loader=yaml.FullLoader)
_spec = importlib.util.spec_from_file_location("cluster_work", sys.argv.pop(1))
cw = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cw)


class Walker(cw.ClusterWork):
    _restore_supported = True
    _default_params = {"step": 1.0, "die": False}

    def reset(self, config, rep):
        self.rng = np.random.RandomState(self._seed)
        self.position = 0.0

    def iterate(self, config, rep, n):
        if rep == 1 and n == 1 and self._params["step"] == 2.0:
            return None  # the original saves no row: rep_1.csv lacks i=1, results.csv holds NaN there
        if rep == 1 and n == 1 and self._params["die"]:
            sys.stdout.flush()
            os._exit(9)
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
    Walker.run()

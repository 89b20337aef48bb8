"""The Deterministic walk, with what Slurm showed each repetition's process in every row (its task, its
GPUs): `python env_probe_exp.py config.yml ...`, as the batch scripts of the real-Slurm tests run it."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from experiments import Deterministic  # noqa: E402


class EnvironmentProbe(Deterministic):
    def iterate(self, config, rep, n):
        seen = {name: os.environ.get(name, "") for name in ("CUDA_VISIBLE_DEVICES", "SLURM_PROCID", "SLURM_STEP_ID")}
        return {**super().iterate(config, rep, n), **seen}


if __name__ == "__main__":
    EnvironmentProbe.run()

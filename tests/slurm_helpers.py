"""What the Slurm tests share: the experiment script, a config with a slurm: block, and running it."""
import subprocess
import sys

from conftest import ROOT, script_env

EXPERIMENT = str(ROOT / "tests" / "deterministic_exp.py")


CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 4
path: out
slurm: {time: "00:30:00", job_name: sweep, setup: ["echo set up"]}
---
name: walk
grid: {step: [1.0, 2.0]}
"""


def cli(*args, cwd, env=None, check_rc=0):
    result = subprocess.run([sys.executable, EXPERIMENT, *args], cwd=cwd, capture_output=True, text=True,
                            env={**script_env(), **(env or {})}, timeout=120)
    assert result.returncode == check_rc, result.stdout + result.stderr
    return result

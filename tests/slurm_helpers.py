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


def run_script(*args, cwd, env=None, check_rc=0) -> subprocess.CompletedProcess:
    """`python tests/deterministic_exp.py ARGS` in `cwd`, as a user runs it; its exit status must be `check_rc`."""
    return finish(start_script(*args, cwd=cwd, env=env), check_rc)


def start_script(*args, cwd, env=None) -> subprocess.Popen:
    """The experiment's command line started, not waited for (a reference run beside a Slurm job): `finish` it."""
    return subprocess.Popen([sys.executable, EXPERIMENT, *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**script_env(), **(env or {})})


def finish(process: subprocess.Popen, check_rc=0) -> subprocess.CompletedProcess:
    try:
        stdout, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise
    assert process.returncode == check_rc, stdout + stderr
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)

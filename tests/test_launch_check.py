"""A launcher's exit 0 is believed only when the run recorded its end (`cluster_work.launch_check`).

Across hosts Open MPI's launcher exits 0 when a whole host is killed, although rank 0 died of
MPI_ERRORS_ARE_FATAL (tests/test_multihost.py shows it with real hosts). Here: the pure judgement over a
folder's runs, and the generated Slurm script run as Slurm would run it, through a launcher that reports 0
whatever happened (the real mpiexec, whose status a wrapper drops, as Open MPI's does with a host lost)."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import MPI_ENV, descendants, mpiexec, script_env
from experiments import NO_SLEEP
from polls import saved_rows, wait_for
from slurm_helpers import CONFIG, EXPERIMENT

from cluster_work.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_RUN_DIED, EXIT_USAGE
from cluster_work.launch_check import launch_status
from cluster_work.provenance import LAUNCH_VARIABLE
from cluster_work.slurm import SlurmSettings, build_script


def _run(run: str, launch: str | None, ended: bool, status: int = 0) -> dict:
    """A run as `provenance.read_runs` merges it."""
    record = {"run": run, "event": "started", "time": 0.0, "host": "node1", "launch": launch}
    return {**record, "ended": 1.0, "exit_status": status} if ended else record


@pytest.mark.parametrize("runs, status", [
    pytest.param([_run("a", "L", True)], EXIT_OK, id="clean-run"),
    pytest.param([], EXIT_OK, id="no-run-started"),
    pytest.param([_run("a", "L", False)], EXIT_RUN_DIED, id="died"),
    pytest.param([_run("old", "K", False), _run("old2", None, False), _run("a", "L", True)], EXIT_OK,
                 id="older-runs-killed-long-ago"),
    pytest.param([_run("a", "L", True), _run("beside", "M", False)], EXIT_OK, id="another-launch-still-on"),
    pytest.param([_run("a", "L", True, EXIT_FAILED)], EXIT_FAILED, id="ended-with-a-failure"),
    pytest.param([_run("a", "L", True, EXIT_FAILED), _run("b", "L", False)], EXIT_RUN_DIED, id="died-wins"),
])
def test_a_launch_is_judged_by_its_own_runs_only(runs, status):
    judged, lines = launch_status(runs, "L")
    assert judged == status
    assert len(lines) == sum(run["launch"] == "L" and (run.get("ended") is None or run.get("exit_status") != 0)
                             for run in runs)


def _rank_zero(root: int) -> int:
    """The process of MPI rank 0 among the descendants of `root`."""
    for pid in descendants(root):
        try:
            environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK=0" in environment and b"python" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("no rank 0 found")


@pytest.mark.processes
def test_the_mpi_batch_script_fails_when_its_run_died_although_the_launcher_said_0(tmp_path):
    """Rank 0 is killed mid-run and the launcher reports 0: the script exits EXIT_RUN_DIED, naming the run.
    The same script run again in the same folder (the dead run's record still there) resumes, finishes and
    exits 0, and so does a third launch with nothing left to run."""
    (tmp_path / "config.yml").write_text(CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.2}"))
    says_zero = tmp_path / "mpiexec"
    says_zero.write_text(f'#!/bin/bash\n"{mpiexec()}" "$@"\nexit 0\n')
    says_zero.chmod(0o755)
    (tmp_path / "out").mkdir()  # where `--slurm` writes the script and Slurm its output
    script = tmp_path / "job.sbatch"
    script.write_text(build_script("mpi", SlurmSettings(), sys.executable, EXPERIMENT, ["config.yml"],
                                   str(tmp_path / "out"), str(tmp_path), mpiexec=str(says_zero)))
    env = {**script_env(), **MPI_ENV, "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost",
           "SLURM_TASKS_PER_NODE": "3"}

    job = subprocess.Popen(["bash", str(script)], cwd="/", env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    try:
        wait_for(lambda: saved_rows(tmp_path / "out") >= 2 or job.poll() is not None, "rows saved")
        assert job.poll() is None, job.communicate()[0]
        os.kill(_rank_zero(job.pid), signal.SIGKILL)
        output, _ = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == EXIT_RUN_DIED, output
    assert "recorded no end: it died as a whole" in output, output

    for _ in range(2):  # the resume, then nothing left to run: both clean (their pace matters no more)
        again = subprocess.run(["bash", str(script)], cwd="/", env={**env, NO_SLEEP: "1"}, capture_output=True,
                               text=True, timeout=180)
        assert again.returncode == EXIT_OK, again.stdout + again.stderr
    assert saved_rows(tmp_path / "out") == 24


@pytest.mark.processes
@pytest.mark.parametrize("arguments, environment, message", [
    pytest.param(["{folder}/nowhere"], {LAUNCH_VARIABLE: "L"}, "nowhere: no such folder", id="no-such-folder"),
    pytest.param(["{folder}"], {}, f"no launch token: set {LAUNCH_VARIABLE}", id="no-token"),
])
def test_a_check_without_a_token_or_a_folder_is_a_usage_error(tmp_path, arguments, environment, message):
    env = {name: value for name, value in script_env().items() if name != LAUNCH_VARIABLE}
    result = subprocess.run([sys.executable, "-m", "cluster_work.launch_check",
                             *(a.format(folder=tmp_path) for a in arguments)],
                            env={**env, **environment}, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_USAGE and message in result.stderr and len(result.stderr.splitlines()) == 1

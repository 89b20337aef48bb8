"""The generated batch scripts under a real single-node Slurm: array, MPI (through the bundled mpiexec and
through srun --mpi=pmix), GPUs per task, and a requeue before the time limit. Skipped (with the reason)
where Slurm is not installed or the tests do not run as root; .ci/run installs it."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MPI_ENV, ROOT, comparable, mpiexec, script_env
from experiments import NO_SLEEP
from polls import saved_rows, wait_for
from slurm_cluster import SlurmCluster, unavailable_reason
from slurm_helpers import CONFIG, EXPERIMENT, finish, run_script, start_script

from cluster_work import load_results
from cluster_work.provenance import LAUNCH_VARIABLE
from cluster_work.slurm import SlurmSettings, build_script

pytestmark = [pytest.mark.slow, pytest.mark.skipif(unavailable_reason() is not None,
                                                   reason=unavailable_reason() or "")]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"), gpus=3)
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    (folder / "config.yml").write_text(CONFIG)
    run_script("config.yml", cwd=folder)
    return comparable(folder / "out")


def submit(slurm, folder, *args):
    result = run_script("config.yml", "--slurm", "--submit", *args, cwd=folder,
                        env={**MPI_ENV, "SLURM_CONF": str(slurm.conf)})
    return result.stdout.split("submitted job ")[1].strip()


def test_array_script_runs_every_job_under_slurm(slurm, clean, tmp_path):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG)
    job = submit(slurm, tmp_path, "--array")
    slurm.wait(job)
    pd.testing.assert_frame_equal(clean, comparable(tmp_path / "out"))
    assert len(list((tmp_path / "out").glob("slurm-*_*.out"))) == 6


def test_mpi_script_runs_the_sweep_in_one_allocation(slurm, clean, tmp_path):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG)
    job = submit(slurm, tmp_path, "--ntasks", "3")
    slurm.wait(job)
    assert "ExitCode=0:0" in slurm.job_state(job)
    pd.testing.assert_frame_equal(clean, comparable(tmp_path / "out"))
    log = (tmp_path / "out" / f"slurm-{job}.out").read_text()
    assert "2 MPI workers (3 ranks)" in log


@pytest.mark.processes
def test_warning_before_the_time_limit_stops_requeues_and_resumes(slurm, tmp_path, tmp_path_factory):
    import pandas as pd
    config = CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.3, count_calls: true}")
    (tmp_path / "config.yml").write_text(config)
    job = submit(slurm, tmp_path, "--ntasks", "3", "--requeue")
    reference, uninterrupted = start_reference(config, tmp_path_factory)  # meanwhile
    deadline = time.time() + 60
    while len(load_results(tmp_path / "out")) < 4 and time.time() < deadline:
        time.sleep(0.2)
    # what --signal=B:USR1@120 does two minutes before the limit
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm.env, check=True)
    slurm.wait(job, timeout=300)
    log = (tmp_path / "out" / f"slurm-{job}.out").read_text()
    assert "Slurm asked to stop" in log
    assert "Restarts=1" in slurm.job_state(job) and "ExitCode=0:0" in slurm.job_state(job)
    calls = sum(p.stat().st_size for p in (tmp_path / "out").rglob("calls"))
    assert calls == 24  # stopped after whole iterations: nothing redone
    finish(reference)
    pd.testing.assert_frame_equal(comparable(uninterrupted / "out"), comparable(tmp_path / "out"))


def rank_zero_of(job: str) -> int | None:
    """The pid of MPI rank 0 of the first launch of Slurm job `job` (its launch token in the environment), or
    None while there is none: slurmd starts the job, so the ranks are no descendants of the test."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            environment = set(Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"))
        except OSError:
            continue
        if b"OMPI_COMM_WORLD_RANK=0" in environment and any(
                entry.startswith(f"{LAUNCH_VARIABLE}={job}.0.".encode()) for entry in environment):
            return int(pid)
    return None


@pytest.mark.processes
def test_a_run_that_died_although_its_launcher_said_0_requeues_and_resumes(slurm, tmp_path):
    """With --requeue, rank 0 killed mid-run under a launcher that still exits 0 (as Open MPI's does when a
    host is lost): the batch script's check finds the run dead (exit 6), requeues the job, and the job's
    second start resumes the sweep to its end: the job ends with exit 0, every row saved."""
    (tmp_path / "config.yml").write_text(CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.2}"))
    says_zero = tmp_path / "mpiexec"
    says_zero.write_text(f'#!/bin/bash\n"{mpiexec()}" "$@"\nexit 0\n')
    says_zero.chmod(0o755)
    (tmp_path / "out").mkdir()
    script = tmp_path / "job.sbatch"
    script.write_text(build_script("mpi", SlurmSettings(job_name="died", ntasks=3, requeue=True), sys.executable,
                                   EXPERIMENT, ["config.yml"], str(tmp_path / "out"), str(tmp_path),
                                   mpiexec=str(says_zero)))
    submitted = subprocess.run(["sbatch", "--parsable", str(script)], cwd=tmp_path, capture_output=True, text=True,
                               env={**script_env(), **MPI_ENV, "SLURM_CONF": str(slurm.conf)}, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip().split(";")[0]
    wait_for(lambda: saved_rows(tmp_path / "out") >= 2, "rows saved by the job's first start", 120)
    os.kill(wait_for(lambda: rank_zero_of(job), "rank 0 of the first launch"), signal.SIGKILL)
    slurm.wait(job, timeout=300)
    log = (tmp_path / "out" / f"slurm-{job}.out").read_text()
    assert "recorded no end: it died as a whole" in log and "requeueing to resume it" in log, log
    assert "Restarts=1" in slurm.job_state(job) and "ExitCode=0:0" in slurm.job_state(job), log
    assert saved_rows(tmp_path / "out") == 24


def start_reference(config, tmp_path_factory):
    """The sweep of `config` run sequentially in a folder of its own, started now (to overlap the Slurm job it
    is compared with): the process, to `finish`, and the folder whose `out` then holds the results."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "config.yml").write_text(config)
    return start_script("config.yml", cwd=folder, env={NO_SLEEP: "1"}), folder  # (its pace matters to no one)


PROBE = str(ROOT / "tests" / "env_probe_exp.py")  # rows that say which Slurm task and GPUs their process had
PROBED = ["CUDA_VISIBLE_DEVICES", "SLURM_PROCID", "SLURM_STEP_ID"]


def submit_probe(slurm, folder, *args):
    result = subprocess.run([sys.executable, PROBE, "config.yml", "--slurm", "--submit", *args], cwd=folder,
                            capture_output=True, text=True, timeout=120,
                            env={**script_env(), **MPI_ENV, "SLURM_CONF": str(slurm.conf)})
    assert result.returncode == 0, result.stderr
    return result.stdout.split("submitted job ")[1].strip()


@pytest.fixture(scope="module")
def pmix(slurm):
    reason = slurm.pmix_unavailable()
    if reason:
        pytest.skip(reason)


@pytest.mark.processes
def test_srun_launcher_gives_each_rank_its_own_gpu(slurm, pmix, clean, tmp_path):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG)
    job = submit_probe(slurm, tmp_path, "--launcher", "srun", "--ntasks", "3", "--gpus-per-task", "1",
                       "--mem", "500M", "--qos", "normal")
    slurm.wait(job)
    assert "ExitCode=0:0" in slurm.job_state(job)
    assert "2 MPI workers (3 ranks)" in (tmp_path / "out" / f"slurm-{job}.out").read_text()
    frame = comparable(tmp_path / "out")
    pd.testing.assert_frame_equal(clean, frame.drop(columns=PROBED))
    # each worker rank is a Slurm task of the srun step (not the batch step) with its own GPU: Slurm numbers
    # the job's GPUs 0..2 and gives task i the GPU i; rank 0 plans and runs no repetition
    assert set(frame["SLURM_STEP_ID"]) == {"0"} and set(frame["SLURM_PROCID"]) <= {"1", "2"}
    assert (frame["CUDA_VISIBLE_DEVICES"] == frame["SLURM_PROCID"]).all()


@pytest.mark.processes
def test_mpiexec_launcher_ranks_see_every_gpu_of_the_job(slurm, clean, tmp_path):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG)
    job = submit_probe(slurm, tmp_path, "--ntasks", "3", "--gpus", "2")
    slurm.wait(job)
    assert "ExitCode=0:0" in slurm.job_state(job)
    frame = comparable(tmp_path / "out")
    pd.testing.assert_frame_equal(clean, frame.drop(columns=PROBED))
    # mpiexec's ranks are processes of the batch step: each sees all the job's GPUs (and is task 0)
    assert set(frame["CUDA_VISIBLE_DEVICES"]) == {"0,1"} and set(frame["SLURM_PROCID"]) == {"0"}


@pytest.mark.processes
def test_srun_launcher_stops_on_the_warning_requeues_and_resumes(slurm, pmix, tmp_path, tmp_path_factory):
    import pandas as pd
    config = CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.3, count_calls: true}")
    (tmp_path / "config.yml").write_text(config)
    job = submit(slurm, tmp_path, "--ntasks", "3", "--requeue", "--launcher", "srun")
    reference, uninterrupted = start_reference(config, tmp_path_factory)  # meanwhile
    deadline = time.time() + 60
    while len(load_results(tmp_path / "out")) < 4 and time.time() < deadline:
        time.sleep(0.2)
    subprocess.run(["scancel", "--batch", "--signal=USR1", job], env=slurm.env, check=True)  # through srun
    slurm.wait(job, timeout=300)
    log = (tmp_path / "out" / f"slurm-{job}.out").read_text()
    assert "Slurm asked to stop" in log and "task 0: Exited with exit code 130" in log  # srun passed the stop on
    assert "Restarts=1" in slurm.job_state(job) and "ExitCode=0:0" in slurm.job_state(job)
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("calls")) == 24  # nothing redone
    finish(reference)
    pd.testing.assert_frame_equal(comparable(uninterrupted / "out"), comparable(tmp_path / "out"))

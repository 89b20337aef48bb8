"""The generated batch scripts under a real single-node Slurm: array, MPI, and a requeue before the
time limit. Skipped (with the reason) where Slurm is not installed or the tests do not run as root;
.ci/run installs it."""
import subprocess
import time

import pandas as pd
import pytest
from conftest import MPI_ENV, comparable
from slurm_cluster import SlurmCluster, unavailable_reason
from test_slurm import CONFIG, cli

from cluster_work import load_results

pytestmark = [pytest.mark.slow, pytest.mark.skipif(unavailable_reason() is not None,
                                                   reason=unavailable_reason() or "")]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clean")
    (folder / "config.yml").write_text(CONFIG)
    cli("config.yml", cwd=folder)
    return comparable(folder / "out")


def submit(slurm, folder, *args):
    result = cli("config.yml", "--slurm", "--submit", *args, cwd=folder, env={**MPI_ENV, "SLURM_CONF": str(slurm.conf)})
    return result.stdout.split("submitted job ")[1].strip()


def test_array_script_runs_every_job_under_slurm(slurm, clean, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    job = submit(slurm, tmp_path, "--array")
    slurm.wait(job)
    pd.testing.assert_frame_equal(clean, comparable(tmp_path / "out"))
    assert len(list((tmp_path / "out").glob("slurm-*_*.out"))) == 6


def test_mpi_script_runs_the_sweep_in_one_allocation(slurm, clean, tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    job = submit(slurm, tmp_path, "--ntasks", "3")
    slurm.wait(job)
    assert "ExitCode=0:0" in slurm.job_state(job)
    pd.testing.assert_frame_equal(clean, comparable(tmp_path / "out"))
    log = (tmp_path / "out" / f"slurm-{job}.out").read_text()
    assert "2 MPI workers (3 ranks)" in log


def test_warning_before_the_time_limit_stops_requeues_and_resumes(slurm, tmp_path, tmp_path_factory):
    config = CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.3, count_calls: true}")
    (tmp_path / "config.yml").write_text(config)
    job = submit(slurm, tmp_path, "--ntasks", "3", "--requeue")
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
    reference = tmp_path_factory.mktemp("reference")
    (reference / "config.yml").write_text(config)
    cli("config.yml", cwd=reference)
    pd.testing.assert_frame_equal(comparable(reference / "out"), comparable(tmp_path / "out"))

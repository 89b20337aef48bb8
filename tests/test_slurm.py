"""Slurm batch scripts: built by pure functions, and run as Slurm would run them (its variables set)."""
import os
import subprocess
import sys

import pytest
from conftest import MPI_ENV, comparable, script_env
from slurm_helpers import CONFIG, finish, run_script, start_script

from cluster_work import load_results
from cluster_work.errors import ConfigError
from cluster_work.slurm import SlurmSettings, build_script, compress_indices, settings_from


@pytest.fixture
def sweep(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    return tmp_path


def test_settings_merge_config_block_and_command_line():
    block = {"time": "1:00:00", "nodes": 2, "mem-per-cpu": "2G"}
    settings = settings_from(block, {"nodes": 4, "requeue": True}, "c.yml")
    assert (settings.time, settings.nodes, settings.mem_per_cpu, settings.requeue) == ("1:00:00", 4, "2G", True)


@pytest.mark.parametrize("block, message", [
    ({"tiem": "1:00"}, "'slurm.tiem': unknown setting"),
    ({"time": "an hour"}, "'time' must look like"),
    ({"nodes": 0}, "'nodes' must be a positive integer"),
    ({"job_name": "a b"}, "'job_name' may hold"),
])
def test_bad_slurm_settings_are_config_errors(block, message):
    with pytest.raises(ConfigError, match=message):
        settings_from(block, {}, "c.yml")


def test_compress_indices():
    assert compress_indices([8, 0, 1, 2, 5, 7]) == "0-2,5,7-8"
    assert compress_indices([3]) == "3"


def test_mpi_script_has_the_allocation_the_hostfile_and_the_requeue_trap():
    settings = SlurmSettings(job_name="s", nodes=2, ntasks_per_node=16, time="04:00:00", partition="p",
                             account="a", requeue=True, extra=["--qos=long"])
    text = build_script("mpi", settings, "python3", "/x/my_exp.py", ["c.yml", "-e", "fit"], "/res", "/work")
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=16", "#SBATCH --time=04:00:00",
                 "#SBATCH --partition=p", "#SBATCH --account=a", "#SBATCH --requeue",
                 "#SBATCH --signal=B:USR1@120", "#SBATCH --qos=long", "#SBATCH --output=/res/slurm-%j.out",
                 "python3 -m cluster_work.hostfile -o \"$hostfile\"", "scontrol requeue \"$SLURM_JOB_ID\"",
                 "trap stop_and_requeue USR1 TERM", "cd /work"):
        assert line in text, line
    assert 'mpiexec -hostfile "$hostfile" python3 -m mpi4py /x/my_exp.py c.yml -e fit -c' in text
    assert "#SBATCH --open-mode=append" in text


def test_user_template_replaces_the_built_in_one(tmp_path):
    template = tmp_path / "t.sh"
    template.write_text("#!/bin/bash\n{{sbatch}}\nmodule load mpi\n{{command}}\n")
    text = build_script("array", SlurmSettings(template=str(template)), "py", "e.py", ["c.yml"], "/r", "/w", 6)
    assert "module load mpi" in text and "#SBATCH --array=0-5" in text and "-j $SLURM_ARRAY_TASK_ID" in text
    template.write_text("{{nope}}")
    with pytest.raises(ConfigError, match="unknown placeholder"):
        build_script("array", SlurmSettings(template=str(template)), "py", "e.py", ["c.yml"], "/r", "/w", 6)


@pytest.mark.processes
def test_dry_run_prints_and_writes_nothing(sweep):
    result = run_script("config.yml", "--slurm", "--dry-run", "--nodes", "2", cwd=sweep)
    assert "#SBATCH --job-name=sweep" in result.stdout and "#SBATCH --time=00:30:00" in result.stdout
    assert "echo set up" in result.stdout and "#SBATCH --nodes=2" in result.stdout
    assert not (sweep / "out").exists()
    result = run_script("config.yml", "--slurm", "-d", cwd=sweep, check_rc=2)
    assert "does not take -d/--delete" in result.stderr


@pytest.mark.processes
def test_generated_mpi_script_runs_with_the_variables_slurm_sets(sweep, tmp_path_factory):
    import pandas as pd
    run_script("config.yml", "--slurm", cwd=sweep)
    clean = tmp_path_factory.mktemp("clean")
    (clean / "config.yml").write_text(CONFIG)
    reference = start_script("config.yml", cwd=clean)  # the sequential run to compare with, meanwhile
    script = sweep / "out" / "cluster_work_mpi.sbatch"
    env = {**MPI_ENV, "SLURM_JOB_ID": "4242", "SLURM_JOB_NODELIST": "localhost", "SLURM_TASKS_PER_NODE": "4",
           "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])}
    result = subprocess.run(["bash", str(script)], cwd="/", env={**script_env(), **env}, capture_output=True,
                            text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (sweep / "out" / "hostfile.4242").read_text() == "localhost slots=4\n"
    assert "3 MPI workers (4 ranks)" in result.stderr
    finish(reference)
    pd.testing.assert_frame_equal(comparable(clean / "out"), comparable(sweep / "out"))


@pytest.mark.processes
def test_generated_array_script_runs_one_job_per_task(sweep):
    run_script("config.yml", "-j", "1", cwd=sweep)  # one job done before: the array covers the other five
    run_script("config.yml", "--slurm", "--array", cwd=sweep)
    script = sweep / "out" / "cluster_work_array.sbatch"
    assert "#SBATCH --array=0,2-5" in script.read_text()
    tasks = [subprocess.Popen(["bash", str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**script_env(), "SLURM_ARRAY_JOB_ID": "7", "SLURM_ARRAY_TASK_ID": str(task)})
             for task in (0, 2, 3, 4, 5)]  # all at once, as Slurm starts an array's tasks
    for run in tasks:
        _, stderr = run.communicate(timeout=120)
        assert run.returncode == 0, stderr
    assert len(load_results(sweep / "out")) == 24
    assert "nothing left to run" in run_script("config.yml", "--slurm", "--array", cwd=sweep).stdout

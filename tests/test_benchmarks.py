"""The benchmarks run (tiny sizes); their figures are read by people, never asserted here."""
import subprocess
import sys

import pytest
from conftest import ROOT, mpiexec, run_mpiexec, script_env

pytestmark = pytest.mark.processes  # every test here starts real processes


def test_persistence_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "persistence.py"), "--rounds", "1",
                             "--sizes", "10", "20"], env=script_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ms/it" in result.stdout and "files per repetition" in result.stdout


def test_scheduling_benchmark_runs():
    result = run_mpiexec([mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py",
                          str(ROOT / "benchmarks" / "scheduling.py"), "--jobs", "20", "--rounds", "1"])
    assert result.returncode == 0, result.stderr
    assert "mpi4py.futures" in result.stdout and "cluster_work, empty tasks" in result.stdout


def test_planning_scale_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "planning_scale.py"), "--grid", "5",
                             "--repetitions", "3", "--experiments", "2", "--iterations", "4", "--huge", "4",
                             "--resume", "2", "--compact-resume", "2", "--jobs", "2000", "--rounds", "1",
                             "--baseline", str(ROOT)],
                            env=script_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "load_results of 6 repetitions x 4 iterations" in result.stdout
    assert "--list --json  baseline" in result.stdout and "rank 0 over a sweep of 2000 jobs" in result.stdout
    assert "the same in a compact store" in result.stdout
    assert "its index stale by a tail" in result.stdout
    assert "this      its index" in result.stdout  # the default layout's resume through its folder index
    assert "load_results of a finished compact sweep: 200 one-row repetitions" in result.stdout


def test_load_balance_benchmark_runs():
    result = run_mpiexec([mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py",
                          str(ROOT / "benchmarks" / "load_balance.py"), "--jobs", "6", "--iterations", "2",
                          "--mean", "0.005"])
    assert result.returncode == 0, result.stderr
    assert "efficiency" in result.stdout


def test_steering_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "steering.py"), "--sizes", "30",
                             "--rounds", "1"], env=script_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "results/s" in result.stdout, result.stdout


def test_attempts_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "attempts.py"), "--jobs", "20", "--rounds", "1",
                             "--processes", "3", "--read-jobs", "30"], env=script_env(), capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "us per job" in result.stdout and "dead journals" in result.stdout


def test_local_workers_benchmark_runs():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "local_workers.py"), "--jobs", "20",
                             "--rounds", "1", "--deaths", "1"], env=script_env(), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "ProcessPoolExecutor" in result.stdout and "death to the next item" in result.stdout, result.stdout


def test_files_per_job_benchmark_runs(tmp_path):
    result = run_mpiexec([mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py",
                          str(ROOT / "benchmarks" / "files_per_job.py"), "--jobs", "16", "--rounds", "1",
                          "--folder", str(tmp_path)])
    assert result.returncode == 0, result.stderr
    assert "mpi4py.futures" in result.stdout and "compact" in result.stdout and "files+folders" in result.stdout
    assert list(tmp_path.iterdir()) == []  # each round's sweep folder removed

import subprocess
import sys

import pytest
from conftest import script_env

from cluster_work.hostfile import expand_counts, expand_nodelist, hostfile_text


@pytest.mark.parametrize("nodelist, hosts", [
    ("node01", ["node01"]),
    ("node[01-03,07]", ["node01", "node02", "node03", "node07"]),
    ("gpu[1-2],cpu5", ["gpu1", "gpu2", "cpu5"]),
    ("r[1-2]-n[08-09]", ["r1-n08", "r1-n09", "r2-n08", "r2-n09"]),
    ("a[9-10]", ["a9", "a10"]),
])
def test_nodelist_expands_like_scontrol(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_task_counts_expand():
    assert expand_counts("2(x3),1") == [2, 2, 2, 1]
    assert expand_counts("16") == [16]


def test_hostfile_formats():
    assert hostfile_text(["a", "b"], [4]) == "a slots=4\nb slots=4\n"
    assert hostfile_text(["a", "b"], [1, 2], "mpich") == "a:1\nb:2\n"
    with pytest.raises(ValueError):
        hostfile_text(["a", "b"], [1, 2, 3])


@pytest.mark.processes
def test_command_reads_the_slurm_environment(tmp_path):
    env = {**script_env(), "SLURM_JOB_NODELIST": "n[1-3]", "SLURM_TASKS_PER_NODE": "4(x2),2"}
    out = subprocess.run([sys.executable, "-m", "cluster_work.hostfile"], env=env, capture_output=True,
                         text=True, check=True).stdout
    assert out == "n1 slots=4\nn2 slots=4\nn3 slots=2\n"
    env.pop("SLURM_JOB_NODELIST")
    result = subprocess.run([sys.executable, "-m", "cluster_work.hostfile"], env=env, capture_output=True, text=True)
    assert result.returncode == 2 and "no node list" in result.stderr

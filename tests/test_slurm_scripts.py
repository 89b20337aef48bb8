"""Slurm batch scripts as clusters use them (GPUs, memory, constraints, QOS, srun or mpiexec): the pure
builder against golden files, the settings' checks, and the command line's flags.

The golden files are the scripts as they are meant to be; after a deliberate change, rewrite them with
`CW_UPDATE_GOLDEN=1 python -m pytest tests/test_slurm_scripts.py` and read the diff."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, script_env

from cluster_work.errors import ConfigError
from cluster_work.slurm import SlurmSettings, build_script, settings_from

GOLDEN = Path(__file__).parent / "data" / "slurm_scripts"
ARGUMENTS = ["config.yml", "params.lr=0.1", "grid.bs=[1,2]", "-e", "fit"]


@pytest.mark.parametrize("name, kind, settings, array_size", [
    pytest.param("mpi_mpiexec", "mpi", SlurmSettings(job_name="sweep", ntasks=4, time="01:00:00"), None,
                 id="mpi-mpiexec"),
    pytest.param("mpi_mpiexec_gpus_requeue", "mpi",
                 SlurmSettings(nodes=2, ntasks_per_node=4, gpus_per_node="a100:4", mem="64G", constraint="a100&ib",
                               qos="long", partition="gpu", requeue=True, setup=["module load cuda"]), None,
                 id="mpi-mpiexec-gpus-per-node-requeue"),
    pytest.param("mpi_srun_gpus_per_task", "mpi",
                 SlurmSettings(launcher="srun", ntasks=4, cpus_per_task=8, gpus_per_task="1", mem_per_cpu="4G",
                               qos="normal", time="2-00:00:00"), None, id="mpi-srun-gpus-per-task"),
    pytest.param("mpi_srun_pmi2_gres", "mpi",
                 SlurmSettings(launcher="srun", srun_mpi="pmi2", ntasks=8, gres="gpu:v100:2", account="proj"), None,
                 id="mpi-srun-pmi2-gres"),
    pytest.param("array_gpus", "array",
                 SlurmSettings(gpus=1, mem="16G", array_parallel=10, constraint="v100|a100", qos="short"), 6,
                 id="array-one-gpu-each"),
])
def test_generated_script_matches_its_golden_file(name, kind, settings, array_size):
    text = build_script(kind, settings, "/opt/venv/bin/python", "/home/u/exp.py", ARGUMENTS, "/home/u/results",
                        "/home/u", array_size, mpiexec="/opt/venv/bin/mpiexec")
    golden = GOLDEN / f"{name}.sbatch"
    if os.environ.get("CW_UPDATE_GOLDEN"):
        golden.write_text(text)
    assert text == golden.read_text()


@pytest.mark.parametrize("block, message", [
    pytest.param({"mem": "16 GB"}, "'mem' must be a size such as 4000, 16G or 500M", id="mem-with-space"),
    pytest.param({"mem_per_cpu": "2GB"}, "'mem_per_cpu' must be a size", id="mem-per-cpu-unit"),
    pytest.param({"mem": "16G", "mem_per_cpu": "2G"}, "'mem' (per node) and 'mem_per_cpu' exclude each other",
                 id="mem-and-mem-per-cpu"),
    pytest.param({"gpus": 0}, "'gpus' must be a count, or type:count", id="zero-gpus"),
    pytest.param({"gpus_per_task": "a100:"}, "'gpus_per_task' must be a count", id="gpu-type-without-count"),
    pytest.param({"gpus": True}, "'gpus' must be a count", id="gpus-bool"),
    pytest.param({"gres": "gpu 2"}, "'gres' must be name[:type]:count", id="gres-with-space"),
    pytest.param({"constraint": "a100 && ib"}, "'constraint' must be node features", id="constraint-with-spaces"),
    pytest.param({"qos": "long;rm"}, "'qos' must be a QOS name", id="qos-shell"),
    pytest.param({"launcher": "mpirun"}, "'launcher' must be mpiexec or srun", id="unknown-launcher"),
    pytest.param({"srun_mpi": "pmix v4"}, "'srun_mpi' must be an MPI plugin", id="srun-mpi-space"),
    pytest.param({"gpu": 1}, "'slurm.gpu': unknown setting", id="unknown-key"),
])
def test_bad_cluster_settings_are_one_line_config_errors(block, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        settings_from(block, {}, "c.yml")


def test_good_cluster_settings_pass():
    settings = settings_from({"gpus-per-task": 1, "mem": "16g", "gres": "gpu:a100:2,shard:1", "launcher": "srun",
                              "constraint": "[rack1|rack2]&ib", "qos": "high"}, {"gpus_per_task": "a100:1"}, "c.yml")
    assert (settings.gpus_per_task, settings.mem, settings.launcher) == ("a100:1", "16g", "srun")


CONFIG = """\
name: DEFAULT
repetitions: 1
iterations: 2
path: out
slurm: {launcher: srun, gpus_per_task: 1, qos: normal}
---
name: walk
"""


@pytest.mark.processes
def test_command_line_flags_override_the_config_block(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    command = [sys.executable, str(ROOT / "tests" / "deterministic_exp.py"), "config.yml", "--slurm", "--dry-run",
               "--ntasks", "3", "--gpus-per-task", "a100:2", "--mem", "32G", "--constraint", "a100", "--qos", "long",
               "--gres", "nvme:1", "--launcher", "mpiexec"]
    text = subprocess.run(command, cwd=tmp_path, env=script_env(), capture_output=True, text=True, check=True,
                          timeout=120).stdout
    for line in ("#SBATCH --ntasks=3", "#SBATCH --gpus-per-task=a100:2", "#SBATCH --mem=32G",
                 "#SBATCH --constraint=a100", "#SBATCH --qos=long", "#SBATCH --gres=nvme:1"):
        assert line in text.splitlines(), line
    assert " -hostfile " in text and "srun" not in text
    bad = subprocess.run(command[:4] + ["--gpus", "two"], cwd=tmp_path, env=script_env(), capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr == ("error: config.yml: slurm 'gpus' must be a count, or type:count "
                                                  "(a100:2), got 'two'\n")
    assert os.listdir(tmp_path) == ["config.yml"]

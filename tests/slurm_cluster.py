"""A real single-node Slurm for tests: slurmctld + slurmd started as root in a temporary folder.

Facts it relies on: SlurmctldHost must be `hostname -s`, the node has NodeAddr=127.0.0.1, no cgroups or
accounting, auth/none, and every client needs SLURM_CONF. `gpus=N` gives the node N GPUs (GRES) whose
device files are character devices made here (Slurm refuses anything else; they are /dev/null's), so that
Slurm hands them out and sets CUDA_VISIBLE_DEVICES as on a GPU node. `srun --mpi=pmix` needs Debian's
libpmix-dev (the plugin opens the unversioned libpmix.so); `pmix_unavailable()` says why it cannot run.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

CONF = """\
ClusterName=cwtest
SlurmctldHost={host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/none
AuthInfo=cred_expire=5
CredType=cred/none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MpiDefault=none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=bf_interval=1,sched_interval=1
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
MinJobAge=300
KillWait=5
InactiveLimit=0
MaxArraySize=1001
SlurmdParameters=config_overrides
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} RealMemory=1000 State=UNKNOWN
PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
"""


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "a test Slurm needs root"
    for program in ("slurmctld", "slurmd", "sbatch", "squeue", "scontrol"):
        if shutil.which(program) is None:
            return f"{program} not installed (apt-get install slurm-wlm)"
    return None


class SlurmCluster:
    def __init__(self, root: Path, gpus: int = 0):
        self.root = root
        self.conf = root / "slurm.conf"
        self.env = {**os.environ, "SLURM_CONF": str(self.conf)}
        self.gpus = gpus

    def start(self) -> None:
        for folder in ("state", "spool"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        host = socket.gethostname().split(".")[0]
        conf = CONF.format(host=host, root=self.root, cpus=8, ctld_port=6817, d_port=6818)
        if self.gpus:
            for index in range(self.gpus):
                os.mknod(self.root / f"gpu{index}", stat.S_IFCHR | 0o666, os.makedev(1, 3))
            (self.root / "gres.conf").write_text(f"Name=gpu File={self.root}/gpu[0-{self.gpus - 1}]\n")
            conf = conf.replace("NodeName=", "GresTypes=gpu\nNodeName=").replace(
                "RealMemory=1000", f"RealMemory=1000 Gres=gpu:{self.gpus}")
        self.conf.write_text(conf)
        subprocess.run(["slurmctld", "-c", "-f", str(self.conf)], env=self.env, check=True, timeout=30)
        subprocess.run(["slurmd", "-f", str(self.conf)], env=self.env, check=True, timeout=30)
        deadline = time.time() + 30
        while time.time() < deadline:
            state = subprocess.run(["sinfo", "-h", "-o", "%T"], env=self.env, capture_output=True, text=True)
            if state.stdout.strip() in ("idle", "mixed"):
                return
            time.sleep(0.2)
        raise RuntimeError(f"slurm did not come up: {state.stdout} {state.stderr}\n"
                           + (self.root / "slurmctld.log").read_text()[-2000:])

    def stop(self) -> None:
        for name in ("slurmd.pid", "slurmctld.pid"):
            try:
                os.kill(int((self.root / name).read_text()), signal.SIGTERM)
            except (FileNotFoundError, ValueError, ProcessLookupError):
                pass
        time.sleep(1)

    def wait(self, job: str, timeout: float = 240) -> None:
        """Until the job (all of an array's tasks) has left the queue."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            queue = subprocess.run(["squeue", "-h", "-j", job], env=self.env, capture_output=True, text=True)
            if not queue.stdout.strip():
                return
            time.sleep(0.2)
        raise TimeoutError(f"job {job} still queued: {queue.stdout}")

    def pmix_unavailable(self) -> str | None:
        """Why `srun --mpi=pmix` cannot start a step here, or None."""
        probe = subprocess.run(["srun", "--mpi=pmix", "-n", "1", "true"], env=self.env, capture_output=True,
                               text=True, timeout=120)
        if probe.returncode == 0:
            return None
        return f"srun --mpi=pmix fails (apt-get install libpmix-dev): {probe.stderr.strip().splitlines()[-1:]}"

    def job_state(self, job: str) -> str:
        return subprocess.run(["scontrol", "show", "job", job], env=self.env, capture_output=True,
                              text=True).stdout

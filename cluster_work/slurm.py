"""Slurm batch scripts for a sweep: built by pure functions, written, printed or submitted.

Two kinds. The MPI script runs the whole sweep over MPI inside one allocation:

    python my_exp.py config.yml --slurm --nodes 2 --ntasks-per-node 16 --time 04:00:00 --requeue --submit

The array script runs each (experiment, repetition) job as one array task, without MPI:

    python my_exp.py config.yml --slurm --array --time 01:00:00 --submit

Defaults come from a `slurm:` block in the config (e.g. in the DEFAULT document), then the command line.
The MPI script starts its ranks with the bundled `mpiexec` from a hostfile of the allocation (the
default, `launcher: mpiexec`), or with `srun --mpi=pmix` (`launcher: srun`: the cluster's own MPI
integration; each rank is a Slurm task, so `--gpus-per-task` gives each its own GPU in
`CUDA_VISIBLE_DEVICES`). GPUs (`gpus`, `gpus_per_node`, `gpus_per_task`, `gres`), memory (`mem` per
node or `mem_per_cpu`), `constraint` and `qos` become #SBATCH lines, checked before anything is written.

With `requeue`, Slurm's warning signal before the time limit (`--signal=B:USR1@120`) or a preemption's
SIGTERM makes the run stop cleanly after the iterations in flight, and the job requeues itself; the
requeued job resumes the sweep. So does an MPI run that died although its launcher exited 0 (a host lost:
`launch_check`'s EXIT_RUN_DIED). A user template (`template:`) with `{{placeholders}}` may replace the
built-in one (placeholders: the keys of `script_fields`).
"""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from .errors import ClusterWorkError, ConfigError
from .exit_codes import EXIT_RUN_DIED
from .launch import mpiexec
from .paths import SweepPaths
from .provenance import LAUNCH_VARIABLE
from .vocabulary import ConfigSource

DEFAULT_SIGNAL_SECONDS = 120


@dataclass
class SlurmSettings:
    """What goes into the #SBATCH lines; None leaves Slurm's (or the cluster's) default."""

    job_name: str = "cluster_work"
    nodes: int | None = None
    ntasks_per_node: int | None = None
    ntasks: int | None = None
    cpus_per_task: int | None = None
    time: str | None = None
    partition: str | None = None
    account: str | None = None
    mem_per_cpu: str | None = None
    mem: str | None = None  # per node; not with mem_per_cpu
    gpus: str | None = None  # [type:]count, for the whole job
    gpus_per_node: str | None = None
    gpus_per_task: str | None = None
    gres: str | None = None  # e.g. "gpu:a100:2"
    constraint: str | None = None  # node features, e.g. "a100&ib"
    qos: str | None = None
    launcher: str = "mpiexec"  # how the MPI script starts its ranks: mpiexec (a hostfile) or srun
    srun_mpi: str = "pmix"  # srun's --mpi= plugin, with launcher srun
    requeue: bool = False
    signal_seconds: int = DEFAULT_SIGNAL_SECONDS
    array_parallel: int | None = None  # at most this many array tasks at once (%N)
    extra: list[str] = field(default_factory=list)  # more #SBATCH options, e.g. "--qos=long"
    template: str | None = None
    setup: list[str] = field(default_factory=list)  # shell lines before the run (module load, venv...)


_TIME = re.compile(r"^(\d+-)?\d{1,2}(:\d{2}){0,2}$|^\d+$")
LAUNCHERS = ("mpiexec", "srun")
# the text each setting may be (it goes into an #SBATCH line or the srun line: no white space, no quotes)
_PATTERNS = {
    "mem": (r"\d+[KMGT]?", "a size such as 4000, 16G or 500M"),
    "mem_per_cpu": (r"\d+[KMGT]?", "a size such as 4000, 2G or 500M"),
    "gpus": (r"([A-Za-z0-9_.-]+:)?[1-9]\d*", "a count, or type:count (a100:2)"),
    "gpus_per_node": (r"([A-Za-z0-9_.-]+:)?[1-9]\d*", "a count, or type:count (a100:2)"),
    "gpus_per_task": (r"([A-Za-z0-9_.-]+:)?[1-9]\d*", "a count, or type:count (a100:1)"),
    "gres": (r"[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*(,[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*)*", "name[:type]:count,..."),
    "constraint": (r"[A-Za-z0-9_.&|:,*()\[\]-]+", "node features joined by & | , (no spaces)"),
    "qos": (r"[A-Za-z0-9_.-]+", "a QOS name"),
    "partition": (r"[A-Za-z0-9_.,-]+", "a partition name (or several, comma-separated)"),
    "account": (r"[A-Za-z0-9_.-]+", "an account name"),
    "srun_mpi": (r"[A-Za-z0-9_]+", "an MPI plugin of srun (srun --mpi=list): pmix, pmi2, none..."),
}


def settings_from(config_block: Mapping[str, Any] | None, overrides: Mapping[str, Any],
                  source: ConfigSource | str) -> SlurmSettings:
    """Merge the config's `slurm:` block and the command line's options into validated settings."""
    known = {f.name for f in fields(SlurmSettings)}
    merged: dict[str, Any] = {}
    for key, value in (config_block or {}).items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise ConfigError(f"{source}: 'slurm.{key}': unknown setting (known: {', '.join(sorted(known))})")
        merged[name] = value
    merged.update({k: v for k, v in overrides.items() if v is not None and v != [] and v is not False})
    settings = SlurmSettings(**merged)
    for name in ("nodes", "ntasks_per_node", "ntasks", "cpus_per_task", "array_parallel", "signal_seconds"):
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{source}: slurm '{name}' must be a positive integer, got {value!r}")
    if settings.time is not None and not _TIME.match(str(settings.time)):
        raise ConfigError(f"{source}: slurm 'time' must look like MM, HH:MM:SS or D-HH:MM:SS, got {settings.time!r}")
    if not re.match(r"^[A-Za-z0-9._-]+$", settings.job_name):
        raise ConfigError(f"{source}: slurm 'job_name' may hold letters, digits and . _ - only")
    for name, (pattern, meaning) in _PATTERNS.items():
        value = getattr(settings, name)
        if value is not None and (isinstance(value, bool) or not re.fullmatch(pattern, str(value), re.I)):
            raise ConfigError(f"{source}: slurm '{name}' must be {meaning}, got {value!r}")
    if settings.mem is not None and settings.mem_per_cpu is not None:
        raise ConfigError(f"{source}: slurm 'mem' (per node) and 'mem_per_cpu' exclude each other: give one")
    if settings.launcher not in LAUNCHERS:
        raise ConfigError(f"{source}: slurm 'launcher' must be {' or '.join(LAUNCHERS)}, got {settings.launcher!r}")
    return settings


def sbatch_lines(settings: SlurmSettings, output: str, array_size: int | None = None) -> list[str]:
    options = [f"--job-name={settings.job_name}", f"--output={output}"]
    for name in ("nodes", "ntasks_per_node", "ntasks", "cpus_per_task", "time", "partition", "account",
                 "mem_per_cpu", "mem", "gpus", "gpus_per_node", "gpus_per_task", "gres", "constraint", "qos"):
        value = getattr(settings, name)
        if value is not None:
            options.append(f"--{name.replace('_', '-')}={value}")
    if array_size is not None:
        limit = f"%{settings.array_parallel}" if settings.array_parallel else ""
        options.append(f"--array=0-{array_size - 1}{limit}")
    if settings.requeue:  # the requeued job appends to the same output file
        options += ["--requeue", f"--signal=B:USR1@{settings.signal_seconds}", "--open-mode=append"]
    options += settings.extra
    return [f"#SBATCH {option}" for option in options]


_MPI_BODY = """\
hostfile="{{hostfile}}"
{{python}} -m cluster_work.hostfile -o "$hostfile"
"""

_TEMPLATE = """\
#!/bin/bash
{{sbatch}}
# Written by cluster_work: {{description}}
set -uo pipefail
cd {{cwd}}
{{setup}}
{{prepare}}
{{command}} &
run=$!
{{trap}}
wait "$run"
status=$?
{{check}}exit $status
"""

# Open MPI's launcher can exit 0 although the run died (a host lost, rank 0 killed by MPI_ERRORS_ARE_FATAL):
# the runs of this launch, marked by a token that rank 0 inherits, must have recorded their end (launch_check)
_LAUNCH = f'export {LAUNCH_VARIABLE}="$SLURM_JOB_ID.${{SLURM_RESTART_COUNT:-0}}.$$"'
_CHECK = """\
if [ "$status" -eq 0 ]; then  # the launcher's 0 is believed only if the run recorded its end
    {{python}} -m cluster_work.launch_check {{sweep_path}} || status=$?
fi
"""

# With requeue, a run that died (EXIT_RUN_DIED: a host lost) resumes in the job started again, as after a
# time limit. No count bounds it, as none bounds those: a repetition that ends run after run is quarantined
# after two (see quarantine), so a requeue does not start the same death again and again.
_REQUEUE_DIED = f"""\
if [ "$status" -eq {EXIT_RUN_DIED} ]; then
    echo "cluster_work: the run died although its launcher said it succeeded; requeueing to resume it"
    trap '' USR1 TERM  # the requeue's own SIGTERM to this script must not start stop_and_requeue
    scontrol requeue "{{{{requeue_id}}}}" && exit 0
fi
"""

_TRAP_REQUEUE = """\
stop_and_requeue() {
    echo "cluster_work: Slurm asked to stop; finishing the iterations in flight, then requeueing"
    kill -USR1 "$run" 2>/dev/null
    wait "$run"
    scontrol requeue "{{requeue_id}}"
    exit 0
}
trap stop_and_requeue USR1 TERM"""

_TRAP_STOP = """\
trap 'kill -USR1 "$run" 2>/dev/null; wait "$run"' TERM"""


def script_fields(kind: str, settings: SlurmSettings, python: str, script: str, arguments: Sequence[str],
                  sweep_path: str, cwd: str, array_size: int | None = None, mpiexec: str = "mpiexec",
                  ) -> dict[str, str]:
    """The values of the template's placeholders for an 'mpi' or an 'array' script."""
    run_arguments = " ".join(shlex.quote(a) for a in arguments)
    if kind == "mpi":
        run = f"{python} -m mpi4py {shlex.quote(script)} {run_arguments} -c --report_every 300"
        if settings.launcher == "srun":  # one Slurm task per rank; srun takes no --cpus-per-task from sbatch
            cpus = f" --cpus-per-task={settings.cpus_per_task}" if settings.cpus_per_task else ""
            command, prepare = f"srun --mpi={settings.srun_mpi}{cpus} {run}", _LAUNCH
        else:
            hostfile = SweepPaths(sweep_path).hostfile
            command = f'{mpiexec} -hostfile "$hostfile" {run}'
            prepare = _LAUNCH + "\n" + _MPI_BODY.replace("{{hostfile}}", hostfile).replace("{{python}}", python)
        check = _CHECK.replace("{{python}}", python).replace("{{sweep_path}}", shlex.quote(sweep_path))
        output = SweepPaths(sweep_path).slurm_output(array=False)
        requeue_id = "$SLURM_JOB_ID"
        description = "the whole sweep over MPI in one allocation"
    elif kind == "array":
        command = f"{python} {shlex.quote(script)} {run_arguments} -j $SLURM_ARRAY_TASK_ID --report_every 300"
        prepare = check = ""  # each task's exit status is its Python's own: nothing to check
        output = SweepPaths(sweep_path).slurm_output(array=True)
        requeue_id = "${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
        description = "one (experiment, repetition) job per array task"
    else:
        raise ValueError(f"kind must be 'mpi' or 'array', got {kind!r}")
    if settings.requeue:
        trap = _TRAP_REQUEUE.replace("{{requeue_id}}", requeue_id)
        check += _REQUEUE_DIED.replace("{{requeue_id}}", requeue_id) if check else ""
    else:
        trap = _TRAP_STOP
    return {"sbatch": "\n".join(sbatch_lines(settings, output, array_size if kind == "array" else None)),
            "description": description, "cwd": shlex.quote(cwd), "setup": "\n".join(settings.setup),
            "prepare": prepare, "command": command, "trap": trap, "check": check, "python": python,
            "script": script, "arguments": run_arguments, "job_name": settings.job_name, "sweep_path": sweep_path}


def render(template: str, values: Mapping[str, str]) -> str:
    """Fill `{{name}}` placeholders; an unknown placeholder is an error, not a silent blank."""
    unknown = sorted(set(re.findall(r"{{(\w+)}}", template)) - set(values))
    if unknown:
        raise ConfigError(f"slurm template: unknown placeholder(s) {', '.join(unknown)} "
                          f"(known: {', '.join(sorted(values))})")
    return re.sub(r"{{(\w+)}}", lambda m: values[m.group(1)], template)


def build_script(kind: str, settings: SlurmSettings, python: str, script: str, arguments: Sequence[str],
                 sweep_path: str, cwd: str, array_size: int | None = None, mpiexec: str = "mpiexec") -> str:
    """The whole batch script as text (a pure function of its arguments and the template file: checked
    against golden files in tests, printed by --dry-run)."""
    template = _TEMPLATE
    if settings.template:
        try:
            with open(settings.template, encoding="utf-8") as handle:
                template = handle.read()
        except OSError as exc:
            raise ConfigError(f"slurm template {settings.template}: {exc.strerror}") from None
    values = script_fields(kind, settings, python, script, arguments, sweep_path, cwd, array_size, mpiexec)
    text = render(template, values)
    return re.sub(r"\n{3,}", "\n\n", text)


def submit(path: str) -> str:
    """Submit a batch script with sbatch; return the job id."""
    try:
        result = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise ClusterWorkError("--submit: sbatch not found (is this a Slurm login node?)") from None
    if result.returncode != 0:
        raise ClusterWorkError(f"sbatch failed: {result.stderr.strip() or result.stdout.strip()}")
    return result.stdout.strip().split(";")[0]


def compress_indices(indices: Sequence[int]) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0-2,5,7-8' (Slurm's --array syntax)."""
    ordered, parts, first = sorted(indices), [], 0
    while first < len(ordered):
        last = first
        while last + 1 < len(ordered) and ordered[last + 1] == ordered[last] + 1:
            last += 1
        parts.append(str(ordered[first]) if first == last else f"{ordered[first]}-{ordered[last]}")
        first = last + 1
    return ",".join(parts)


def mpiexec_command() -> str:
    return shlex.quote(mpiexec())


def python_command() -> str:
    return shlex.quote(sys.executable)

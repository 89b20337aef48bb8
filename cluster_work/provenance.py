"""Where results came from: one JSON line per run start and end, appended to `<path>/runs.jsonl` (and
one whenever the set of stalled MPI workers changes, for `-p` to show).

A resumed sweep keeps its whole history: command line, times, hosts, MPI size, Python and package
versions, and the git commit of the experiment's code (and whether its tree had uncommitted changes).
"""
from __future__ import annotations

import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

from .liveness import Silence
from .paths import SweepPaths
from .version import __version__

# a token naming one launch (one mpiexec of a batch script), recorded in its runs' 'started' records: see launch_check
LAUNCH_VARIABLE = "CLUSTER_WORK_LAUNCH"
PACKAGES = ("cluster_work", "numpy", "pandas", "mpi4py", "cloudpickle", "pyyaml")


def _version(package: str) -> str | None:
    if package == "cluster_work":
        return __version__
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def git_state(folder: str) -> dict[str, Any] | None:
    """The commit of the git checkout holding `folder` and whether it has uncommitted changes."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", folder, *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain"))}
    except (OSError, subprocess.SubprocessError):
        return None


def run_started(sweep_paths: Iterable[str], argv: Sequence[str], backend: str, hosts: Sequence[str],
                mpi_size: int | None) -> str:
    """Append a 'started' record to every sweep path; return the run's id for `run_ended`."""
    run_id = uuid.uuid4().hex[:12]
    script = os.path.dirname(os.path.abspath(argv[0])) if argv else os.getcwd()
    record = {"run": run_id, "event": "started", "time": time.time(), "command": list(argv),
              "cwd": os.getcwd(), "user": os.environ.get("USER"), "host": socket.gethostname(),
              "hosts": sorted(set(hosts)), "mpi_size": mpi_size, "backend": backend,
              "python": platform.python_version(), "platform": platform.platform(),
              "packages": {name: _version(name) for name in PACKAGES}, "git": git_state(script),
              "slurm_job": os.environ.get("SLURM_JOB_ID"), "launch": os.environ.get(LAUNCH_VARIABLE)}
    _append(sweep_paths, record)
    return run_id


def run_stalled(sweep_paths: Iterable[str], run_id: str, silences: Sequence[Silence]) -> None:
    """Record which workers are stalled now (none: all are heard from again), for `-p` to show while the
    run is on (or after it was killed)."""
    now = time.time()
    _append(sweep_paths, {"run": run_id, "event": "stalled", "time": now,
                          "workers": [{"rank": s.worker, "host": s.host, "silent_since": now - s.silent_for,
                                       "typical": s.typical} for s in silences]})


def stall_lines(runs: Sequence[dict[str, Any]], now: float | None = None) -> list[str]:
    """For `-p`: one line per worker stalled in the last run, if it has not ended, as its rank 0 last
    recorded (an older run without an end was killed: its stalls are history)."""
    moment = time.time() if now is None else now
    run = runs[-1] if runs else {}
    if run.get("ended") is not None:
        return []
    return [f"stalled in run {run.get('run')}: "
            + Silence(worker["rank"], worker["host"], moment - worker["silent_since"], worker["typical"]).describe()
            for worker in run.get("stalled") or []]


def run_ended(sweep_paths: Iterable[str], run_id: str, exit_status: int, counts: dict[str, int]) -> None:
    _append(sweep_paths, {"run": run_id, "event": "ended", "time": time.time(), "exit_status": exit_status,
                          "jobs": counts})


def _append(sweep_paths: Iterable[str], record: dict[str, Any]) -> None:
    line = json.dumps(record) + "\n"
    for folder in dict.fromkeys(sweep_paths):
        try:
            os.makedirs(folder, exist_ok=True)
            with open(SweepPaths(folder).runs_file, "a", encoding="utf-8") as handle:
                handle.write(line)
        except OSError:
            pass  # provenance must never stop a sweep (a full disk is reported by the store)


def read_runs(sweep_path: str, last: int | None = 5) -> list[dict[str, Any]]:
    """The last `last` runs (None: all), each 'started' record merged with its 'ended' record (if it ended)."""
    runs: dict[str, dict[str, Any]] = {}
    try:
        with open(SweepPaths(sweep_path).runs_file, encoding="utf-8") as handle:
            for line in handle:
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                run = runs.setdefault(record.get("run", "?"), {})
                if record.get("event") == "ended":
                    run.update(ended=record.get("time"), exit_status=record.get("exit_status"),
                               jobs=record.get("jobs"))
                elif record.get("event") == "stalled":
                    run.update(stalled=record.get("workers"))
                else:
                    run.update(record)
    except FileNotFoundError:
        return []
    return list(runs.values())[-last:] if last else list(runs.values())


def ended_runs(sweep_path: str) -> set[str]:
    """The ids of the runs that recorded their end in `sweep_path` (a run killed as a whole never does)."""
    ended = set()
    try:
        with open(SweepPaths(sweep_path).runs_file, encoding="utf-8") as handle:
            for line in handle:
                if '"ended"' not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                if record.get("event") == "ended":
                    ended.add(str(record.get("run")))
    except FileNotFoundError:
        pass
    return ended


def describe_runs(runs: Sequence[dict[str, Any]]) -> list[str]:
    lines = []
    for run in runs:
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(run.get("time", 0)))
        ended = ("running or killed" if run.get("ended") is None else
                 f"exit {run.get('exit_status')} after {run['ended'] - run.get('time', run['ended']):.0f}s")
        git = run.get("git") or {}
        commit = f"git {git['commit'][:10]}{'+dirty' if git.get('dirty') else ''}" if git.get("commit") else "no git"
        lines.append(f"{started}  {ended:<22} {run.get('backend', '?')} on {', '.join(run.get('hosts') or [])}  "
                     f"{commit}  {' '.join(run.get('command', []))}")
    return lines

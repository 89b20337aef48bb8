"""What the quarantine tests share: journals written by hand, a run started, watched and killed as a whole."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from conftest import MPI_ENV, descendants, mpi_command, script_env

CLIENTS = str(Path(__file__).resolve().parent / "quarantine_clients.py")


def journal(sweep: Path, run: str, pid: int, *lines: str, torn: str = "") -> Path:
    """A journal file of process `pid` in run `run`, with these lines (and a torn last one, without newline)."""
    folder = sweep / ".cluster_work_attempts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run}.host.{pid}"
    path.write_text("".join(f"{line}\n" for line in lines) + torn)
    return path


def begin(name: str, rep: int, saved: int, when: float) -> str:
    return f"begin {when:.3f} {rep} {saved} {json.dumps(name)}"


def end(name: str, rep: int, when: float) -> str:
    return f"end {when:.3f} {rep} {json.dumps(name)}"


def ended(sweep: Path, *runs: str) -> None:
    """Record these runs as ended in the sweep's runs.jsonl (as provenance.run_ended does)."""
    with open(sweep / "runs.jsonl", "a") as handle:
        for run in runs:
            handle.write(json.dumps({"run": run, "event": "ended", "exit_status": 0}) + "\n")


def start_run(cwd: Path, *args: str, mpi_ranks: int = 0, env: dict | None = None) -> subprocess.Popen:
    """Start the Crashing client on `config.yml` (under mpiexec with `mpi_ranks` ranks), in a session of its own."""
    command = (mpi_command(mpi_ranks, "Crashing", "config.yml", *args, script=CLIENTS) if mpi_ranks
               else [sys.executable, CLIENTS, "Crashing", "config.yml", *args])
    return subprocess.Popen(command, cwd=cwd, env={**script_env(), **MPI_ENV, **(env or {})},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def kill_all(process: subprocess.Popen) -> None:
    """kill -9 of the run and every process below it at once (a node failure), and wait until all are gone."""
    pids = [process.pid, *descendants(process.pid)]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.communicate(timeout=30)
    deadline = time.monotonic() + 30
    while any(os.path.exists(f"/proc/{pid}") and _alive(pid) for pid in pids):
        assert time.monotonic() < deadline, "processes outlived kill -9"
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def wait_for(condition, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def rows(sweep: Path, name: str, rep: int = 0) -> int:
    path = sweep / "walk" / name.split("__", 1)[1] / "log" / f"rep_{rep:02d}" / "results.jsonl"
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0

"""What the quarantine tests share: journals written by hand, and a run started (kills.kill_session ends it)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import repetition_files
from conftest import MPI_ENV, mpi_command, script_env

CLIENTS = str(Path(__file__).resolve().parent / "quarantine_clients.py")


def journal(sweep: Path, run: str, pid: int, *lines: str, torn: str = "") -> Path:
    """A journal file of process `pid` in run `run`, with these lines (and a torn last one, without newline)."""
    folder = sweep / ".cluster_work_attempts"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{run}.host.{pid}"
    path.write_text("".join(f"{line}\n" for line in lines) + torn)
    return path


def begin(name: str, rep: int, saved: int, when: float, log: str = "", log_offset: int = 0) -> str:
    """A begin line; with `log` (relative to the sweep folder) as a journal names the repetition's log."""
    where = f" {log_offset} {json.dumps(log)}" if log else ""
    return f"begin {when:.3f} {rep} {saved} {json.dumps(name)}{where}"


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


def rows(sweep: Path, name: str, rep: int = 0) -> int:
    return len(repetition_files.rows(sweep / "walk" / name.split("__", 1)[1], rep))

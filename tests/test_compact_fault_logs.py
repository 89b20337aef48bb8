"""A compact store's per-process fault logs (`fault-<host>-<pid>-<token>.log` in `.cluster_work_compact/`): one a
killed process left empty is removed at a later run's start, as the default layout's in its attempts folder
(`remove_dead_empty_fault_logs`); a log with a stack (the quarantine reads it), a live process's (locked), a fresh
one (maybe not locked yet) and a user's file stay."""
from __future__ import annotations

import fcntl
import os
import socket

import pytest
from conftest import run_cli

from cluster_work.paths import COMPACT_FOLDER, fault_log_name

CONFIG = "name: walk\nrepetitions: 2\niterations: {iterations}\npath: out\nstore: compact\nparams: {{x: 1}}\n"


@pytest.mark.processes  # the command line, as a user runs it
def test_a_runs_start_removes_only_the_empty_fault_logs_of_dead_processes_of_a_compact_store(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG.format(iterations=1))
    run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    root = tmp_path / "out" / "walk" / COMPACT_FOLDER
    assert not list(root.glob("fault-*"))  # (a process that ends removes its own, empty)
    host = socket.gethostname()
    dead, stack, live, fresh = (root / fault_log_name(host, pid, "0a1b2c3d") for pid in (1, 2, 3, 4))
    for path in (dead, live, fresh):
        path.write_text("")
    stack.write_text("Fatal Python error: Segmentation fault\n")
    for path in (dead, stack, live):
        os.utime(path, (1, 1))  # older than a process's start
    users = root / "fault-notes.txt"
    users.write_text("")
    os.utime(users, (1, 1))
    held = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a live process holds its log
        (tmp_path / "config.yml").write_text(CONFIG.format(iterations=2))
        run_cli("Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    finally:
        os.close(held)
    assert sorted(path.name for path in root.glob("fault-*")) == sorted(
        path.name for path in (stack, live, fresh, users))

"""A newcomer's combinations that start real processes: the compact store with a native crash (`-n 2`, sequential)."""
from __future__ import annotations

import os
import re
import signal

import pytest
from conftest import ROOT, run_cli

from cluster_work.attempts import lost_attempt_signal
from cluster_work.paths import COMPACT_FOLDER

CRASH_SCRIPT = str(ROOT / "tests" / "crash_clients.py")


@pytest.mark.processes
def test_a_native_crash_on_the_compact_store_leaves_its_python_stack_in_the_file_the_summary_names(tmp_path):
    """README: for SIGSEGV "the Python stack of the crash is in the repetition's rep.log (faulthandler ...,
    on every backend)"; a compact store's repetition has no folder, so the stack goes to its process's fault
    log in the store (one per process, opened once: no file per repetition), which the summary names; the
    workers that did not crash leave none behind."""
    (tmp_path / "config.yml").write_text("name: c\nrepetitions: 3\niterations: 3\npath: out\nstore: compact\n"
                                         "params: {crash: '1:null', crash_at: 1}\n")
    result = run_cli("Crashing", "config.yml", "-n", "2", cwd=tmp_path, script=CRASH_SCRIPT, check_rc=1)
    assert "killed by SIGSEGV (segmentation fault) in iteration 1" in result.stderr
    named = re.search(r"traceback in (\S+/\.cluster_work_compact/fault-\S+\.log)", result.stderr)
    assert named, result.stderr
    stack = (tmp_path / named.group(1)).read_text()
    assert "Fatal Python error: Segmentation fault" in stack, stack
    assert " in iterate" in stack and " in run_segment" in stack
    assert [path.name for path in (tmp_path / "out" / "c" / COMPACT_FOLDER).glob("fault-*")] == [
        os.path.basename(named.group(1))]


@pytest.mark.processes
def test_a_compact_store_s_dead_attempt_names_the_signal_its_fault_log_shows(tmp_path):
    """A process that dies natively under a compact store's repetition (here a sequential run: nobody sees it
    die) leaves the signal where the next reader of its attempts finds it (`lost_attempt_signal`: how a rank
    that ULFM reports only as gone, and the run a requeue finds dead, name the culprit): its fault log."""
    (tmp_path / "config.yml").write_text("name: c\nrepetitions: 3\niterations: 3\npath: out\nstore: compact\n"
                                         "params: {crash: '1:null', crash_at: 1}\n")
    result = run_cli("Crashing", "config.yml", cwd=tmp_path, script=CRASH_SCRIPT)
    assert result.returncode == -signal.SIGSEGV, result.stderr
    assert lost_attempt_signal(str(tmp_path / "out"), ("c", 1)) == "SIGSEGV"
    assert lost_attempt_signal(str(tmp_path / "out"), ("c", 0)) is None  # closed: it finished

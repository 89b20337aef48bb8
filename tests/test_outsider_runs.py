"""A newcomer's combinations that start real processes: the compact store with a native crash under `-n 2`."""
from __future__ import annotations

import pytest
from conftest import ROOT, run_cli

CRASH_SCRIPT = str(ROOT / "tests" / "crash_clients.py")


@pytest.mark.processes
def test_a_native_crash_on_the_compact_store_leaves_its_python_stack_on_the_console(tmp_path):
    """README: for SIGSEGV "the Python stack of the crash is in the repetition's rep.log (faulthandler ...,
    on every backend)". A compact store's repetition has no folder when it starts, so faulthandler had no
    file and the stack went nowhere; now it goes to the worker's stderr, the console."""
    (tmp_path / "config.yml").write_text("name: c\nrepetitions: 3\niterations: 3\npath: out\nstore: compact\n"
                                         "params: {crash: '1:null', crash_at: 1}\n")
    result = run_cli("Crashing", "config.yml", "-n", "2", cwd=tmp_path, script=CRASH_SCRIPT, check_rc=1)
    assert "killed by SIGSEGV (segmentation fault) in iteration 1" in result.stderr
    assert "Fatal Python error: Segmentation fault" in result.stderr, result.stderr
    assert "crash_clients.py" in result.stderr and " in iterate" in result.stderr

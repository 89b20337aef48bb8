"""The command line as people expect it: a closed pipe, --version, --help's usage and lists, --list -v."""
import subprocess
import sys

import pytest
from conftest import SCRIPT, script_env

CONFIG = """\
name: walk
repetitions: 40
iterations: 2
path: out
grid:
  step: [1.0, 2.0, 3.0]
"""


@pytest.mark.parametrize("options", [
    pytest.param(["--list", "--json"], id="list-json"),
    pytest.param(["--list"], id="list"),
    pytest.param(["-P"], id="full-progress"),
    pytest.param(["-p", "--json"], id="progress-json"),
])
def test_a_reader_that_closed_the_pipe_ends_the_listing_quietly_with_status_0(tmp_path, write_config, options):
    """`... | head -1`, made certain: the read end is closed before the tool writes anything, so every write
    meets a closed pipe."""
    write_config(CONFIG)
    process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", *options], cwd=tmp_path,
                               env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    process.stdout.close()
    stderr = process.stderr.read()
    assert process.wait(timeout=60) == 0, stderr
    assert stderr == ""


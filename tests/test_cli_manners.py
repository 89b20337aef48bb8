"""The command line as people expect it: a closed pipe, --version, --help's usage and lists, --list -v."""
import re
import shlex
import subprocess
import sys

import pytest
from conftest import ROOT, SCRIPT, run_cli, script_env
from repetition_files import results_files

import cluster_work
from cluster_work.cli import build_parser

CONFIG = """\
name: walk
repetitions: 40
iterations: 2
path: out
grid:
  step: [1.0, 2.0, 3.0]
"""


@pytest.mark.processes
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


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"cluster_work {cluster_work.__version__}"


@pytest.mark.processes
def test_help_of_python_m_cluster_work_names_it_as_typed(tmp_path):
    result = subprocess.run([sys.executable, "-m", "cluster_work", "-h"], cwd=tmp_path, env=script_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: python -m cluster_work "), result.stdout[:200]


def test_help_lists_every_registered_plotter():
    from plotwork.plotters import PLOTTERS

    text = " ".join(build_parser().format_help().split())
    listed = re.search(r"--plotter PLOTTER with --plot: one of ([^(]+)\(default", text)
    assert listed, text
    assert sorted(name.strip() for name in listed.group(1).split(",")) == sorted(PLOTTERS)


@pytest.mark.processes
def test_starting_a_run_does_not_import_the_plotters():
    code = "import sys; from cluster_work.cli import build_parser; build_parser(); print('pandas' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=script_env(), capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "False", result.stdout + result.stderr


@pytest.mark.processes
def test_list_v_prints_the_launch_line_without_its_own_v_and_it_runs_as_printed(tmp_path, write_config):
    write_config("name: walk\nrepetitions: 2\niterations: 2\npath: out\n")
    listing = run_cli("Deterministic", "config.yml", "--list", "-v", "-n", "2", cwd=tmp_path, check_rc=0).stdout
    line = listing.split("launch:\n", 1)[1].strip()
    words = shlex.split(line)
    assert "-v" not in words and "--list" not in words and words[-2:] == ["-n", "2"], line
    result = subprocess.run(words, cwd=tmp_path, env=script_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(results_files(tmp_path / "out")) == 2

"""The line that says how to resume a run: it never carries what deletes or restarts, and it runs as printed.

An interrupted `python slow.py slow.yml -n 2 -d` once printed "to resume or retry: slow.py slow.yml -n 2 -d";
following it deleted the sweep. Each test here follows the printed line as a user would (shell-split, in
the same folder) and checks that every row saved before it is still there, byte for byte: a rerun that
deleted them writes them again with other timings.
"""
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
from conftest import SCRIPT, run_cli, run_mpi, run_mpiexec, script_env
from experiments import NO_SLEEP
from polls import stops_noted, wait_for
from repetition_files import is_status, repetition_key, results_files

from cluster_work.cli import build_parser
from cluster_work.launch import program, resume_command

CONFIG = """\
name: walk
repetitions: 2
iterations: 4
path: out
params: {fail_rep: 1, fail_at: 2}
"""
PREFIX = ["python", "slow.py"]


def saved(out):
    """Every repetition's rows, by its path."""
    return {repetition_key(path, out): "".join(line for line in path.read_text().splitlines(keepends=True)
                                               if not is_status(line)) for path in results_files(out)}


def assert_kept(before, out):
    """Every row saved before is still there, unchanged (later rows may have been added)."""
    after = saved(out)
    for path, text in before.items():
        assert after.get(path, "").startswith(text), f"{path} was rewritten:\n{text}\n---\n{after.get(path)}"


def hint(stderr, lead="to resume or retry: "):
    found = re.findall(re.escape(lead) + r"(.+)$", stderr, flags=re.MULTILINE)
    assert len(found) == 1, stderr
    return found[0].strip()


def follow(line, cwd, env=None):
    """Run a printed command line as a shell would split it."""
    return subprocess.run(shlex.split(line), cwd=cwd, env=env or script_env(), capture_output=True, text=True,
                          timeout=120)


@pytest.mark.parametrize("typed", [
    pytest.param("-d", id="-d"),
    pytest.param("--delete", id="--delete"),
    pytest.param("--del", id="abbreviated"),
    pytest.param("-dv", id="bundled-dv"),
    pytest.param("-vd", id="bundled-vd"),
    pytest.param("-o", id="-o"),
    pytest.param("--overwrite", id="--overwrite"),
    pytest.param("-r 1", id="-r"),
    pytest.param("-r1", id="-r-attached"),
    pytest.param("--repetition=1 --iteration=2", id="long-equals"),
    pytest.param("-r 1 -i 2 -d -o", id="all-of-them"),
])
def test_the_resume_line_drops_what_deletes_or_restarts_and_keeps_the_rest(typed):
    words = ["cfg.yml", *shlex.split(typed), "-n", "3", "-e", "walk", "-I", "--no-sync", "-l", "debug",
             "--max-failures", "2"]
    args = build_parser().parse_args(words)
    line = resume_command(args, world_size=None, prefix=PREFIX)
    assert shlex.split(line)[:2] == PREFIX
    again = build_parser().parse_args(shlex.split(line)[2:])
    assert (again.delete, again.overwrite, again.repetition, again.iteration) == (False, False, None, None), line
    keep = ("config", "workers", "experiments", "ignore_config", "sync", "log_level", "verbose", "max_failures")
    assert {k: getattr(again, k) for k in keep} == {k: getattr(args, k) for k in keep}, line


def test_an_mpi_run_resumes_under_mpiexec_with_as_many_ranks_through_mpi4py():
    args = build_parser().parse_args(["cfg.yml", "-c", "-d"])
    words = shlex.split(resume_command(args, world_size=5, prefix=PREFIX, script="slow.py"))
    assert os.path.basename(words[0]) == "mpiexec" and words[1:3] == ["-n", "5"]
    assert words[3:] == ["python", "-m", "mpi4py", "slow.py", "cfg.yml", "-c"]


@pytest.mark.parametrize("orig_argv, argv, expected", [
    pytest.param(["python", "slow.py", "cfg.yml", "-d"], ["slow.py", "cfg.yml", "-d"], ["python", "slow.py"],
                 id="script"),
    pytest.param(["python3", "-u", "-X", "dev", "slow.py", "cfg.yml"], ["slow.py", "cfg.yml"],
                 ["python3", "-u", "-X", "dev", "slow.py"], id="interpreter-options"),
    pytest.param(["python", "-m", "cluster_work", "cfg.yml"], ["/lib/cluster_work/__main__.py", "cfg.yml"],
                 ["python", "-m", "cluster_work"], id="python-m"),
    pytest.param(["python", "-m", "mpi4py", "slow.py", "cfg.yml", "-c"], ["slow.py", "cfg.yml", "-c"],
                 ["python", "-m", "mpi4py", "slow.py"], id="mpi4py"),
    pytest.param(["python", "exps.py", "Walk", "cfg.yml"], ["exps.py", "cfg.yml"], ["python", "exps.py", "Walk"],
                 id="script-that-took-its-own-argument"),
])
def test_the_program_is_what_the_user_typed_before_the_arguments(orig_argv, argv, expected):
    assert program(argv, orig_argv) == expected


@pytest.mark.processes
@pytest.mark.parametrize("options", [
    pytest.param(["-d"], id="-d"),
    pytest.param(["--delete", "-v"], id="--delete"),
    pytest.param(["-n", "2", "-dv"], id="-n-2-dv"),
])
def test_following_the_printed_line_after_a_failure_keeps_every_saved_row(tmp_path, write_config, options):
    write_config(CONFIG)
    first = run_cli("Deterministic", "config.yml", *options, cwd=tmp_path, check_rc=1)
    line = hint(first.stderr)
    before = saved(tmp_path / "out")
    assert len(before) == 2
    again = follow(line, tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr  # rep 1 fails again, as it must
    assert_kept(before, tmp_path / "out")


@pytest.mark.processes
@pytest.mark.slow
def test_ctrl_c_of_a_delete_run_then_the_printed_line_resumes_it(tmp_path, write_config):
    """The report's scenario: `python slow.py slow.yml -n 2 -d`, Ctrl-C, then the line it printed."""
    write_config("name: slow\nrepetitions: 4\niterations: 30\npath: out\nparams: {sleep: 0.05}\n")
    env = {**script_env(), "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]])}
    process = subprocess.Popen(["python", SCRIPT, "Deterministic", "config.yml", "-n", "2", "-d"], cwd=tmp_path,
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.time() + 60
    while sum(text.count("\n") for text in saved(tmp_path / "out").values()) < 6 and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    line = hint(stderr)
    assert shlex.split(line)[:2] == ["python", SCRIPT], line  # the interpreter as typed: it runs as printed
    before = saved(tmp_path / "out")
    again = follow(line, tmp_path, {**env, NO_SLEEP: "1"})  # (the resume's pace matters to no one)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_kept(before, tmp_path / "out")
    assert all(text.count("\n") == 30 for text in saved(tmp_path / "out").values())


@pytest.mark.processes
@pytest.mark.slow
def test_the_line_after_a_second_ctrl_c_resumes_too(tmp_path, write_config):
    write_config("name: slow\nrepetitions: 1\niterations: 4\npath: out\nparams: {sleep: 0.5}\n")
    process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", "--delete"], cwd=tmp_path,
                               env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    deadline = time.time() + 60
    while not any(saved(tmp_path / "out").values()) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    wait_for(lambda: stops_noted(tmp_path / "out", process.pid) >= 1, "the first Ctrl-C to be handled")  # (or merged)
    os.killpg(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    line = hint(stderr, "To resume: ")
    assert "--delete" not in shlex.split(line) and "-d" not in shlex.split(line), line
    before = saved(tmp_path / "out")
    again = follow(line, tmp_path, {**script_env(), NO_SLEEP: "1"})  # (the resume's pace matters to no one)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_kept(before, tmp_path / "out")


@pytest.mark.processes
@pytest.mark.slow
def test_following_the_printed_line_of_an_mpi_run_resumes_it_under_mpiexec(tmp_path, write_config):
    write_config(CONFIG)
    first = run_mpi(3, "Deterministic", "config.yml", "-d", cwd=tmp_path, check_rc=1)
    line = hint(first.stdout + first.stderr)
    words = shlex.split(line)
    assert os.path.basename(words[0]) == "mpiexec" and words[1:3] == ["-n", "3"], line
    assert words[4:6] == ["-m", "mpi4py"] and words[-1] == "-c" and "-d" not in words, line
    before = saved(tmp_path / "out")
    again = run_mpiexec(words, cwd=tmp_path)
    assert again.returncode == 1, again.stdout + again.stderr
    assert_kept(before, tmp_path / "out")

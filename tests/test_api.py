"""The Python API (`cluster_work.Sweep`): in a real Jupyter kernel with a class defined in the notebook, from
a script, and what becomes of a sweep whose starter dies."""
import json
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from conftest import ROOT, requires, script_env
from notebook_helpers import run_cells
from repetition_files import results_files

from cluster_work import Sweep, load_results

pytestmark = pytest.mark.processes  # every test here starts real processes

CONFIG = """\
name: DEFAULT
repetitions: 2
iterations: 5
path: out
---
name: walk
grid: {step: [1.0, 2.0]}
"""
TOTAL = 2 * 2 * 5  # grid points x repetitions x iterations

# defined in the notebook, so it reaches the sweep's process by value (cloudpickle)
NOTEBOOK_CLASS = """\
import json, os, time
from cluster_work import ClusterWork, Sweep

class Steps(ClusterWork):
    _restore_supported = True
    _default_params = {"step": 1.0, "sleep": 0.0}

    def reset(self, config, rep):
        pass

    def iterate(self, config, rep, n):
        time.sleep(self._params["sleep"])
        with open(os.path.join(self._log_path_rep, "calls"), "a") as handle:  # one byte per call
            handle.write(".")
        return {"value": self._params["step"] * (n + 1) + 100 * rep}

    def restore_state(self, config, rep, n):
        return True  # the state is a function of n
"""


def rows_of(frame_json: str) -> list[tuple]:
    return sorted(tuple(row) for row in json.loads(frame_json))


def expected_rows() -> list[tuple]:
    return sorted((f"walk__s{step}", rep, n, step, step * (n + 1) + 100 * rep)
                  for step in (1.0, 2.0) for rep in (0, 1) for n in range(5))


RESULTS_CELL = """\
frame = sweep.results()
print(frame[["experiment", "rep", "iteration", "params.step", "value"]].to_json(orient="values"))
"""


def calls_per_repetition(out):
    return sorted(len(path.read_text()) for path in out.rglob("calls"))


@pytest.mark.processes
@pytest.mark.slow
@requires("nbclient", "nbformat", "ipykernel")
def test_start_poll_and_results_in_a_real_kernel(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    poll = """\
sweep = Sweep(Steps, "config.yml", workers=2, overrides=["params.sleep=0.02"]).start()
seen, deadline = [], time.monotonic() + 120
while sweep.running and time.monotonic() < deadline:
    seen.append(sweep.progress()["total"]["iterations_done"])
    time.sleep(0.05)
status = sweep.wait(timeout=60)
print(json.dumps({"status": status, "seen": seen, "final": sweep.progress()["total"]}))
"""
    _, polled, results = run_cells(tmp_path, [NOTEBOOK_CLASS, poll, RESULTS_CELL])
    figures = json.loads(polled)
    assert figures["status"] == 0
    assert figures["seen"] == sorted(figures["seen"]) and figures["seen"][-1] <= TOTAL  # polled while it ran
    final = figures["final"]
    assert (final["iterations_done"], final["iterations_total"], final["finished"]) == (TOTAL, TOTAL, 4)
    assert rows_of(results) == expected_rows()
    assert calls_per_repetition(tmp_path / "out") == [5] * 4


@pytest.mark.processes
@pytest.mark.slow
@requires("nbclient", "nbformat", "ipykernel")
def test_stop_in_a_real_kernel_leaves_the_sweep_resumable(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    stop = """\
sweep = Sweep(Steps, "config.yml", workers=2, overrides=["params.sleep=0.2"]).start()
deadline = time.monotonic() + 120
while sweep.progress()["total"]["iterations_done"] < 3 and time.monotonic() < deadline:
    time.sleep(0.05)
sweep.stop()
status = sweep.wait(timeout=60)
print(json.dumps({"status": status, "after": sweep.progress()["total"]}))
"""
    resume = """\
sweep = Sweep(Steps, "config.yml", workers=2, overrides=["params.sleep=0.2"])
print("status", sweep.run())
"""
    _, stopped, resumed, results = run_cells(tmp_path, [NOTEBOOK_CLASS, stop, resume, RESULTS_CELL])
    figures = json.loads(stopped)
    assert figures["status"] == 130  # the command line's status for a stop
    assert 3 <= figures["after"]["iterations_done"] < TOTAL
    assert "Summary:" in resumed and resumed.rstrip().endswith("status 0")  # run() printed the run's output
    assert rows_of(results) == expected_rows()  # every row once: nothing lost, nothing saved twice
    assert calls_per_repetition(tmp_path / "out") == [5] * 4  # nothing redone: the stop was clean


@pytest.mark.processes
@pytest.mark.slow
def test_the_sweep_stops_cleanly_when_its_starter_is_killed(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG)
    starter = textwrap.dedent("""\
        import sys, time
        from cluster_work import Sweep
        from experiments import Deterministic
        sweep = Sweep(Deterministic, "config.yml", overrides=["params.sleep=0.2", "params.count_calls=true"])
        sweep.start()
        print(sweep.pid, sweep.log_file, flush=True)
        time.sleep(600)
        """)
    parent = subprocess.Popen([sys.executable, "-c", starter], cwd=tmp_path, stdout=subprocess.PIPE, text=True,
                              env={**script_env(), "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    pid, log_file = parent.stdout.readline().split()
    deadline = time.monotonic() + 60
    while len(load_results(tmp_path / "out") if (tmp_path / "out").exists() else ()) < 2:
        assert time.monotonic() < deadline, "no rows were saved"
        time.sleep(0.1)
    parent.kill()  # kill -9: the sweep's process is left behind, and must stop as on SIGTERM
    parent.wait()
    while "Summary:" not in open(log_file).read():
        assert time.monotonic() < deadline + 60, open(log_file).read()
        time.sleep(0.1)
    log = open(log_file).read()
    # the interpreter as a shell would find it: `python` where PATH leads to this one, else its path
    hint = re.search(r"to resume or retry: (\S*python\S*) (-m cluster_work.api .*)", log)
    assert "not finished (interrupted)" in log and hint is not None, log
    assert hint.group(2) == "-m cluster_work.api experiments:Deterministic config.yml params.sleep=0.2 " \
        "params.count_calls=true"
    saved = len(load_results(tmp_path / "out"))
    assert 2 <= saved < TOTAL and sum(calls_per_repetition(tmp_path / "out")) == saved
    # the line it printed resumes it (an importable class: python -m cluster_work.api module:Class ...)
    resume = hint.group(2)
    result = subprocess.run([sys.executable, *resume.split()], cwd=tmp_path, capture_output=True, text=True,
                            env={**script_env(), "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert len(load_results(tmp_path / "out")) == TOTAL and sum(calls_per_repetition(tmp_path / "out")) == TOTAL
    assert ended(int(pid))


def ended(pid: int) -> bool:
    """Gone, or a zombie that nobody reaped (where the container's first process does not reap orphans)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.processes
def test_run_returns_the_command_lines_exit_status(tmp_path, capsys, monkeypatch):
    from experiments import Deterministic

    (tmp_path / "config.yml").write_text(CONFIG)
    monkeypatch.chdir(tmp_path)  # relative paths are taken from the working folder at Sweep()
    failing = Sweep(Deterministic, "config.yml", experiments=["walk__s2.0"],
                    overrides=["params.fail_at=1", "params.fail_rep=0"])
    assert failing.run() == 1
    assert "walk__s2.0 rep 0: failed" in capsys.readouterr().out and "boom at 1" in failing.output()
    assert Sweep(Deterministic, "config.yml", experiments=["walk__s1.0"]).run() == 0  # beside it in the folder
    frame = failing.results()
    assert set(frame["experiment"]) == {"walk__s2.0"} and len(frame) == 6  # rep 0 saved its row 0
    typo = Sweep(Deterministic, "config.yml", overrides=["params.stpe=2"])
    assert typo.run() == 2 and "did you mean 'params.step'?" in typo.output()
    assert typo.returncode == 2 and not typo.running
    with pytest.raises(TypeError, match="ClusterWork subclass"):
        Sweep(dict, "config.yml")  # type: ignore[arg-type]
    assert Sweep(Deterministic, "config.yml", workers=2, jobs=[1], delete=True, ignore_config=True, overrides=["a=1"],
                 options=["-l", "DEBUG"]).argv == ["config.yml", "a=1", "-j", "1", "-n", "2", "-d", "-I", "-l", "DEBUG"]


@pytest.mark.processes
def test_stop_before_start_up_finished_is_one_line_and_status_130(tmp_path):
    from experiments import Deterministic

    (tmp_path / "config.yml").write_text(CONFIG)
    sweep = Sweep(Deterministic, str(tmp_path / "config.yml")).start()
    sweep.stop()  # at once: the interpreter of the sweep's process is still starting
    assert sweep.wait(timeout=60) == 130
    assert sweep.output() == "stopped by SIGINT before any job started\n"
    assert not (tmp_path / "out").exists() or not results_files(tmp_path / "out")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # this process's own stays

"""The MPI backend under a real mpiexec: same results as the sequential run, failures, groups, crashes."""
import contextlib
import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import MPI_ENV, comparable, descendants, mpi_command, run_cli, run_mpi, run_mpiexec, script_env
from experiments import NO_SLEEP
from kills import assert_every_file_readable, kill_session
from polls import saved_rows, wait_for
from repetition_files import results_files, row_lines
from store_helpers import recorded_states

from cluster_work import load_results
from cluster_work.backends.mpi_layout import SELF, SPLIT, WORLD, Layout, mpi_layout
from cluster_work.errors import ClusterWorkError

CLIENTS = str(Path(__file__).resolve().parent / "clients_mpi.py")

CONFIG = """\
name: DEFAULT
repetitions: 3
iterations: 5
path: out
---
name: walk
grid:
  step: [1.0, 2.0]
"""



@pytest.fixture(scope="module")
def sequential(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sequential")
    (folder / "config.yml").write_text(CONFIG)
    run_cli("Deterministic", "config.yml", cwd=folder, check_rc=0)
    return comparable(folder / "out")


@pytest.mark.processes
@pytest.mark.parametrize("ranks", [2, 4, 8], ids=["one-worker", "three-workers", "more-workers-than-jobs"])
def test_mpi_results_equal_the_sequential_run(tmp_path, sequential, ranks):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG)
    result = run_mpi(ranks, "Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    assert "6 finished, 0 failed" in result.stderr
    assert "MPI_ABORT" not in result.stderr
    pd.testing.assert_frame_equal(sequential, comparable(tmp_path / "out"))


@pytest.mark.processes
def test_a_failing_repetition_under_mpi_is_reported_and_the_rest_run(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG.replace("path: out", "path: out\nparams: {fail_at: 1, fail_rep: 2}"))
    result = run_mpi(3, "Deterministic", "config.yml", cwd=tmp_path, check_rc=1)
    assert "4 finished, 2 failed" in result.stderr and "boom at 1" in result.stderr
    assert "MPI_ABORT" not in result.stderr


@pytest.mark.processes
def test_config_error_under_mpi_exits_2_without_hanging(tmp_path):
    (tmp_path / "config.yml").write_text(CONFIG + "---\nname: bad\niterations: zero\n")
    result = run_mpi(3, "Deterministic", "config.yml", cwd=tmp_path, check_rc=2, timeout=60)
    assert "'bad': 'iterations': must be a positive integer, got 'zero'" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.processes
@pytest.mark.parametrize("ranks, option, idle", [(5, ["-g", "2"], False), (6, ["--group_size", "2"], True)])
def test_mpi_groups_share_a_communicator_and_write_once(tmp_path, ranks, option, idle):
    """`-g 2`: two groups of the four workers; `--group_size 2` of five workers: two groups, one rank idle."""
    (tmp_path / "config.yml").write_text("name: g\nrepetitions: 3\niterations: 3\npath: out\n")
    result = run_mpi(ranks, "GroupSum", "config.yml", *option, cwd=tmp_path, check_rc=0)
    assert f"2 MPI groups of 2 ranks ({ranks} ranks in all)" in result.stderr
    assert ("1 MPI rank(s) (5) idle" in result.stderr) == idle
    frame = load_results(tmp_path / "out")
    assert len(frame) == 9  # one writer per group: no duplicated rows
    assert set(frame.group_size) == {2} and set(frame.summed) == {1 + 2}
    assert list(frame[frame.rep == 0].total) == [3, 6, 9]


@pytest.mark.processes
def test_one_group_of_every_rank_runs_a_data_parallel_learner(tmp_path):
    """`-g 1`, the original's way to train one learner on all ranks: `self._COMM` is COMM_WORLD, rank 0
    included, every rank contributes to each iteration, rank 0 alone writes; a rerun gives the same rows."""
    import pandas as pd
    (tmp_path / "config.yml").write_text("name: rl\nrepetitions: 2\niterations: 3\npath: out\n"
                                         "params: {expect_ranks: 3}\n")
    result = run_mpi(3, "DataParallelLearner", "config.yml", "-g", "1", cwd=tmp_path, check_rc=0, script=CLIENTS)
    assert "all 3 MPI ranks together" in result.stderr
    first = comparable(tmp_path / "out")
    assert len(first) == 6  # written once: no row from the other ranks
    assert set(first.comm_size) == {3} and set(first.comm_name) == {"MPI_COMM_WORLD"}
    assert set(first.rank_sum) == {0 + 1 + 2} and set(first.no_gui) == {True}
    assert set(first.same_step) == {True}  # every rank applied the same all-reduced step
    assert set(first.distinct_seeds) == {True}  # each rank its own seed, as the original's 10^5 x rank
    run_mpi(3, "DataParallelLearner", "config.yml", "-g", "1", "-d", cwd=tmp_path, check_rc=0, script=CLIENTS)
    pd.testing.assert_frame_equal(first, comparable(tmp_path / "out"))


@pytest.mark.processes
def test_by_default_each_worker_runs_alone_with_comm_self_and_no_gui(tmp_path):
    (tmp_path / "config.yml").write_text("name: rl\nrepetitions: 2\niterations: 2\npath: out\n")
    result = run_mpi(3, "DataParallelLearner", "config.yml", cwd=tmp_path, check_rc=0, script=CLIENTS)
    assert "2 MPI workers (3 ranks)" in result.stderr
    frame = load_results(tmp_path / "out")
    assert len(frame) == 4 and set(frame.comm_size) == {1} and set(frame.rank_sum) == {0}
    assert set(frame.comm_name) == {"MPI_COMM_SELF"} and set(frame.no_gui) == {True}


@pytest.mark.processes
@pytest.mark.parametrize("ranks, option", [(3, ["-g", "3"]), (1, ["-g", "1", "--group_size", "2"])],
                         ids=["more-groups-than-workers", "groups-and-group-size"])
def test_bad_group_options_are_one_usage_error(tmp_path, ranks, option):
    (tmp_path / "config.yml").write_text("name: g\nrepetitions: 1\niterations: 1\npath: out\n")
    if ranks == 1:
        result = run_cli("GroupSum", "config.yml", "-c", *option, cwd=tmp_path, check_rc=2)
    else:
        result = run_mpi(ranks, "GroupSum", "config.yml", *option, cwd=tmp_path, check_rc=2, timeout=60)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "-g/--mpi_groups" in errors[0], result.stderr
    assert "MPI_ABORT" not in result.stderr and not (tmp_path / "out").exists()


class _GoneConsole:
    """A console whose terminal or launcher is gone: every write fails as a dead pty's does."""

    def write(self, text):
        raise OSError(errno.EIO, "Input/output error")

    def flush(self):
        raise OSError(errno.EIO, "Input/output error")


def test_a_console_that_is_gone_requests_a_stop_instead_of_raising(tmp_path, monkeypatch):
    import logging
    import threading

    from cluster_work import logs, stopping

    monkeypatch.setattr(stopping, "_stop", threading.Event())
    monkeypatch.setattr(sys, "stdout", _GoneConsole())
    monkeypatch.setattr(sys, "stderr", _GoneConsole())
    with logs.repetition_log(str(tmp_path / "rep.log"), "INFO"):
        print("iteration 3", flush=True)  # inside `iterate`: must not raise
    assert stopping.stop_requested() and "iteration 3" in (tmp_path / "rep.log").read_text()
    monkeypatch.setattr(stopping, "_stop", threading.Event())
    handler = logs._CurrentStderrHandler()  # the console log handler, outside a repetition
    handler.emit(logging.LogRecord("cluster_work", logging.INFO, __file__, 1, "rep 0: finished", None, None))
    assert stopping.stop_requested()


def test_mpi_layout():
    assert mpi_layout(4) == Layout(((1,), (2,), (3,)), (), SELF)
    assert mpi_layout(1) == Layout((), (), SELF)  # no workers: rank 0 runs every job alone
    assert mpi_layout(3, groups=1) == Layout(((0, 1, 2),), (), WORLD)
    assert mpi_layout(3, groups=1).contacts() == [1, 2] and mpi_layout(3, groups=1).rank0_leads
    assert mpi_layout(8, groups=3) == Layout(((1, 2), (3, 4), (5, 6)), (7,), SPLIT)  # contiguous blocks
    assert mpi_layout(8, groups=3).contacts() == [1, 3, 5, 7]
    assert mpi_layout(5, groups=4) == Layout(((1,), (2,), (3,), (4,)), (), SPLIT)
    assert mpi_layout(6, group_size=2) == Layout(((1, 2), (3, 4)), (5,), SPLIT)
    assert mpi_layout(3, group_size=4) == Layout((), (1, 2), SPLIT)
    assert mpi_layout(8, groups=3).group_of(4) == (3, 4) and mpi_layout(8, groups=3).group_of(7) is None


@pytest.mark.parametrize("world_size, groups, group_size", [
    pytest.param(3, 3, None, id="more-groups-than-workers"),
    pytest.param(1, 2, None, id="groups-without-workers"),
    pytest.param(4, 1, 2, id="groups-and-group-size"),
    pytest.param(4, 0, None, id="no-groups"),
    pytest.param(4, None, 0, id="empty-groups"),
])
def test_impossible_mpi_layouts_are_refused(world_size, groups, group_size):
    with pytest.raises(ClusterWorkError):
        mpi_layout(world_size, groups, group_size)


@pytest.mark.processes
def test_one_rank_without_mpiexec_runs_in_process(tmp_path, sequential):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG)
    result = run_cli("Deterministic", "config.yml", "-c", cwd=tmp_path, check_rc=0, timeout=60)
    assert "running every job on rank 0" in result.stderr
    pd.testing.assert_frame_equal(sequential, comparable(tmp_path / "out"))


@pytest.mark.processes
@pytest.mark.slow
def test_kill_9_of_the_whole_mpi_job_then_resume(tmp_path, sequential, monkeypatch):
    import pandas as pd
    (tmp_path / "config.yml").write_text(CONFIG.replace("path: out", "path: out\nparams: {sleep: 0.1}"))
    process = subprocess.Popen(mpi_command(4, "Deterministic", "config.yml"), cwd=tmp_path,
                               env={**script_env(), **MPI_ENV}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    wait_for(lambda: saved_rows(tmp_path / "out") >= 2, "rows to be saved")  # killed in the middle of the run
    kill_session(process)
    assert_every_file_readable(tmp_path / "out")
    partial = load_results(tmp_path / "out")
    assert 0 < len(partial) < 30
    monkeypatch.setenv(NO_SLEEP, "1")  # the resume's pace matters to no one
    run_mpi(4, "Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    resumed = comparable(tmp_path / "out").drop(columns=["params.sleep"])
    pd.testing.assert_frame_equal(sequential.drop(columns=["params.sleep"]), resumed)


@pytest.mark.processes
@pytest.mark.slow
def test_waiting_ranks_do_not_spin(tmp_path):
    """Rank 0 and two idle workers wait while one long job runs: they must sleep, not burn a core. Sampled as
    the process state, not CPU seconds: on shared cores a spinning rank may get little CPU time, but it is
    runnable all the time."""
    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 1\niterations: 1\npath: out\n"
                                         "params: {sleep: 4.0}\n")
    process = subprocess.Popen(mpi_command(4, "Deterministic", "config.yml"), cwd=tmp_path,
                               env={**script_env(), **MPI_ENV}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not results_files(tmp_path / "out") and time.time() < deadline:
            time.sleep(0.05)
        ranks = _python_ranks(process.pid)
        runnable = dict.fromkeys(ranks, 0)
        for _ in range(SAMPLES):  # ~1.5 s while the job sleeps
            for pid in ranks:
                runnable[pid] += _state(pid) == "R"
            time.sleep(0.01)
        assert process.poll() is None, "the job ended while its ranks were sampled"
    finally:
        kill_session(process)  # (its end is not what is checked here: no need to wait for it)
    assert len(runnable) == 4
    # a spinning rank is runnable at every sample however loaded the cores are (waiting for a core counts);
    # a rank that waits in the kernel is almost never (a rank polling every millisecond: ~1 in 8)
    assert max(runnable.values()) < SAMPLES / 2, runnable


SAMPLES = 150


def _python_ranks(launcher):
    """The ranks started by the `mpiexec` whose pid is `launcher`."""
    ranks = []
    for pid in descendants(launcher):
        try:
            if b"mpi4py" in Path(f"/proc/{pid}/cmdline").read_bytes():
                ranks.append(pid)
        except FileNotFoundError:
            pass
    return ranks


def _state(pid):
    """The process's state from /proc: R (running, or runnable and waiting for a core), S (sleeping)..."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return "gone"


@pytest.mark.processes
def test_hostfile_from_a_slurm_allocation_drives_mpiexec(tmp_path, sequential):
    import pandas as pd
    from conftest import SCRIPT, mpiexec
    env = {**script_env(), **MPI_ENV, "SLURM_JOB_NODELIST": "localhost", "SLURM_TASKS_PER_NODE": "4"}
    version = subprocess.run([mpiexec(), "--version"], capture_output=True, text=True).stdout
    mpich = "HYDRA" in version.upper()
    subprocess.run([sys.executable, "-m", "cluster_work.hostfile", "-o", "hostfile",
                    "--flavor", "mpich" if mpich else "openmpi"], cwd=tmp_path, env=env, check=True)
    (tmp_path / "config.yml").write_text(CONFIG)
    hostfile = ["-f", "hostfile", "-n", "4"] if mpich else ["-hostfile", "hostfile"]
    result = subprocess.run([mpiexec(), *hostfile, sys.executable, "-m", "mpi4py", SCRIPT,
                             "Deterministic", "config.yml", "-c"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "3 MPI workers (4 ranks)" in result.stderr
    pd.testing.assert_frame_equal(sequential, comparable(tmp_path / "out"))


MAIN_SCRIPT = '''
from cluster_work import ClusterWork

class Scaled(ClusterWork):
    _default_params = {"transform": lambda x: 3 * x + 1}

    def reset(self, config, rep):
        self.x = rep

    def iterate(self, config, rep, n):
        self.x = self._params["transform"](self.x)
        return {"x": self.x}

if __name__ == "__main__":
    Scaled.run()
'''


@pytest.mark.processes
@pytest.mark.parametrize("how", ["local", "mpi"])
def test_classes_in_main_and_lambdas_in_params_travel(tmp_path, how):
    from conftest import mpiexec
    (tmp_path / "main_exp.py").write_text(MAIN_SCRIPT)
    (tmp_path / "config.yml").write_text("name: m\nrepetitions: 2\niterations: 3\npath: out\n")
    if how == "local":
        command = [sys.executable, "main_exp.py", "config.yml", "-n", "2"]
    else:
        command = [mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py", "main_exp.py", "config.yml", "-c"]
    result = run_mpiexec(command, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    frame = load_results(tmp_path / "out").sort_values(["rep", "iteration"])
    assert list(frame.x) == [1, 4, 13, 4, 13, 40]
    rerun = run_mpiexec(command, cwd=tmp_path)
    assert "0 jobs" in rerun.stderr and "changed" not in rerun.stderr, rerun.stderr


@pytest.mark.processes
@pytest.mark.slow
def test_ranks_busy_in_python_exit_soon_after_mpiexec_is_killed(tmp_path):
    """kill -9 of mpiexec alone while workers sit in a 30 s iteration: every rank must be gone in seconds
    (without the watchdog a busy rank runs on until its next MPI call), and the lock is free again."""
    (tmp_path / "config.yml").write_text("name: w\nrepetitions: 4\niterations: 2\npath: out\n"
                                         "params: {sleep: 30.0}\n")
    process = subprocess.Popen(mpi_command(5, "Deterministic", "config.yml"), cwd=tmp_path,
                               env={**script_env(), **MPI_ENV}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while len(results_files(tmp_path / "out")) < 4 and time.time() < deadline:
        time.sleep(0.05)
    ranks = _python_ranks(process.pid)
    assert len(ranks) == 5
    time.sleep(0.5)
    os.kill(process.pid, 9)  # mpiexec alone
    process.wait()
    killed = time.time()
    while time.time() - killed < 30 and any(_alive(pid) for pid in ranks):
        time.sleep(0.2)
    assert not any(_alive(pid) for pid in ranks), "ranks outlived mpiexec"
    assert time.time() - killed < 10  # the watchdog checks every second
    assert_every_file_readable(tmp_path / "out")
    listing = run_cli("Deterministic", "config.yml", "-P", cwd=tmp_path, check_rc=0).stdout
    assert "running" not in listing.split("mean it. time")[1]  # no orphan holds a lock


def _alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.processes
@pytest.mark.slow
def test_sigusr1_to_mpiexec_stops_the_sweep_cleanly(tmp_path, monkeypatch):
    """What a Slurm batch script does before the time limit: USR1 to mpiexec, which forwards it to the
    ranks; the iterations in flight finish, the run exits 130 with every file whole, and resumes."""
    params = "path: out\nparams: {sleep: 0.2, count_calls: true}"
    (tmp_path / "config.yml").write_text(CONFIG.replace("path: out", params))
    process = subprocess.Popen(mpi_command(4, "Deterministic", "config.yml"), cwd=tmp_path,
                               env={**script_env(), **MPI_ENV}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)
    wait_for(lambda: saved_rows(tmp_path / "out") >= 3, "rows to be saved")  # iterations are in flight
    process.send_signal(signal.SIGUSR1)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr.decode()
    assert "to resume or retry" in stderr.decode()
    assert_every_file_readable(tmp_path / "out")
    monkeypatch.setenv(NO_SLEEP, "1")  # the resume's pace matters to no one
    run_mpi(4, "Deterministic", "config.yml", cwd=tmp_path, check_rc=0)
    assert sum(p.stat().st_size for p in (tmp_path / "out").rglob("calls")) == 30  # nothing redone


@pytest.mark.processes
@pytest.mark.slow
def test_kill_9_of_mpiexec_while_experiments_print_fails_no_repetition(tmp_path):
    """A print into the console of a dead mpiexec raises EIO/EPIPE: it must stop the repetition at the next
    iteration boundary (resumable), never record it as failed; a rerun completes it as a clean run would.

    Each rank runs under a shell that outlives mpiexec, as ranks on other nodes do under their node's
    daemon: otherwise the orphan watchdog ends the ranks the instant mpiexec dies, before any print."""
    import pandas as pd
    config = "name: chat\nrepetitions: 2\niterations: 20\npath: out\nparams: {sleep: %s}\n"
    (tmp_path / "config.yml").write_text(config % 0.05)
    command = mpi_command(3, "ChattyWalk", "config.yml", script=CLIENTS)
    command[3:3] = ["bash", "-c", '"$0" "$@"; exit $?']  # after `mpiexec -n 3`; not exec'd: bash stays the parent
    process = subprocess.Popen(command, cwd=tmp_path, env={**script_env(), **MPI_ENV}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and not _each_saved(tmp_path / "out", repetitions=2, rows=2):
        time.sleep(0.05)
    ranks = _python_ranks(process.pid)
    os.kill(process.pid, 9)  # mpiexec alone: the ranks' console is gone
    process.wait()
    try:
        deadline = time.time() + 60
        while time.time() < deadline and any(_alive(pid) for pid in ranks):
            time.sleep(0.2)
        assert not any(_alive(pid) for pid in ranks), "ranks did not end their run"
    finally:
        for pid in ranks:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
    assert_every_file_readable(tmp_path / "out")
    states = list(recorded_states(tmp_path / "out").values())
    assert len(states) == 2 and set(states) <= {"interrupted", "finished"}, states  # never failed
    run_mpi(3, "ChattyWalk", "config.yml", cwd=tmp_path, check_rc=0, script=CLIENTS)
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "config.yml").write_text(config % 0.0)
    run_cli("ChattyWalk", "config.yml", cwd=tmp_path / "clean", check_rc=0, script=CLIENTS)
    pd.testing.assert_frame_equal(comparable(tmp_path / "clean" / "out").drop(columns=["params.sleep"]),
                                  comparable(tmp_path / "out").drop(columns=["params.sleep"]))


def _each_saved(out, repetitions, rows):
    """Whether `repetitions` repetitions have saved `rows` rows each (the run is well under way)."""
    counts = [row_lines(p) for p in results_files(out)]
    return len(counts) >= repetitions and min(counts) >= rows

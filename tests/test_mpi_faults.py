"""MPI ranks that die or fall silent, under a real mpiexec on one host: with ULFM (`--with-ft ulfm`) a dead
rank fails exactly its repetition and the run goes on; without it the run ends with a hint; a silent rank
shows in the log and `-p`, and past `--stall-timeout` ends the run, launcher included.

The same on two hosts (network namespaces) is in the multi-host tests."""
import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import repetition_files
from conftest import MPI_ENV, descendants, mpi_command, run_cli, run_mpiexec, script_env
from experiments import NO_SLEEP
from polls import wait_for
from store_helpers import recorded_states

from cluster_work import load_results

CLIENTS = str(Path(__file__).resolve().parent / "mpi_fault_clients.py")
CONFIG = """\
name: d
repetitions: {reps}
iterations: 4
path: out
params: {params}
"""
LOST = re.compile(r"MPI ranks lost during the run: (.*)")


def ulfm_command(ranks, *args):
    """`mpiexec --with-ft ulfm -n RANKS python -m mpi4py mpi_fault_clients.py Dying config.yml ARGS -c`."""
    command = mpi_command(ranks, "Dying", "config.yml", *args, script=CLIENTS)
    return [command[0], "--with-ft", "ulfm", *command[1:]]


def write_config(folder, reps=6, **params):
    (folder / "config.yml").write_text(CONFIG.format(reps=reps, params=json.dumps(params)))


def rep_folder(folder, rep):
    return folder / "out" / "d" / "log" / f"rep_{rep:02d}"


def calls(folder, rep):
    """How often `iterate` ran for repetition `rep` (all runs together)."""
    path = rep_folder(folder, rep) / "calls"
    return path.stat().st_size if path.exists() else 0


def states(folder):
    """Each repetition's state, by its number: its status's, or what its rows say (see store_helpers)."""
    return {int(os.path.basename(path)[4:]): state for path, state in recorded_states(folder / "out").items()}


def lost_ranks(stderr):
    """The world ranks the summary names as lost, with their hosts: {rank: host}."""
    found = LOST.search(stderr)
    return {int(rank): host for rank, host in re.findall(r"(\d+) \(([^)]+)\)", found.group(1))} if found else {}


def failed_lines(stderr):
    return [line.strip() for line in stderr.splitlines() if line.strip().startswith("failed ")]


def ulfm_or_skip():
    from conftest import mpiexec
    if "Open MPI" not in subprocess.run([mpiexec(), "--version"], capture_output=True, text=True).stdout:
        pytest.skip("ULFM is tested with Open MPI 5 (mpiexec --with-ft ulfm)")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["sigkill", "segv"])
def test_a_rank_that_dies_under_ulfm_fails_exactly_its_repetition(tmp_path, how):
    ulfm_or_skip()
    write_config(tmp_path, fault=f"2:{how}", sleep=0.05)
    result = run_mpiexec(ulfm_command(4), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Summary: 6 jobs" in result.stderr and "5 finished, 1 failed" in result.stderr, result.stderr
    failed, lost = failed_lines(result.stderr), lost_ranks(result.stderr)
    print(f"\n{how}: ranks lost {len(lost)}, repetitions failed {len(failed)}")
    assert len(lost) == len(failed) == 1, result.stderr
    (rank, host), = lost.items()
    assert failed[0].startswith(f"failed d rep 2: MPI rank {rank} on {host} died"), result.stderr
    assert rank in (1, 2, 3) and host == os.uname().nodename
    finished = [rep for rep, state in states(tmp_path).items() if state == "finished"]
    assert sorted(finished) == [0, 1, 3, 4, 5]
    assert all(calls(tmp_path, rep) == 4 for rep in finished)  # none ran twice, none was failed in passing
    status = repetition_files.status(tmp_path / "out" / "d", 2)
    assert status["state"] == "failed" and status["error"].startswith(f"MPI rank {rank} on {host} died"), status
    frame = load_results(tmp_path / "out")
    assert len(frame[frame.rep != 2]) == 20


@pytest.mark.slow
@pytest.mark.parametrize("store", ["compact", "folders"])
def test_a_rank_that_dies_natively_under_ulfm_is_named_with_its_signal(tmp_path, store):
    """ULFM tells rank 0 only that a rank died; the signal comes from the dead rank's fault log (faulthandler's
    stack, named by its attempts journal: in the compact store, or beside the journals for the default layout),
    which the failure names too."""
    ulfm_or_skip()
    (tmp_path / "config.yml").write_text(CONFIG.format(reps=4, params=json.dumps({"fault": "2:segv"}))
                                         + f"store: {store}\n")
    result = run_mpiexec(ulfm_command(3), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    failed = failed_lines(result.stderr)
    assert len(failed) == 1 and re.match(r"failed d rep 2: MPI rank \d on \S+ died in iteration 1; its log shows "
                                         r"SIGSEGV \(segmentation fault\)", failed[0]), result.stderr
    named = re.search(r"traceback in (\S+fault-\S+\.log)", result.stderr)
    assert named and "Fatal Python error: Segmentation fault" in (tmp_path / named.group(1)).read_text()


@pytest.mark.slow
def test_the_items_a_dead_rank_held_move_to_a_survivor(tmp_path):
    """Two workers: rank A dies in rep 0 while holding rep 2 (prefetched); rank B, idle by then, runs rep 2.
    Prints the time from the death to rep 2's start on B."""
    ulfm_or_skip()
    write_config(tmp_path, reps=3, fault="0:sigkill", fault_after=2.0)
    result = run_mpiexec(ulfm_command(3), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "2 finished, 1 failed" in result.stderr and "1 job(s) it held go back to the queue" in result.stderr
    final = states(tmp_path)
    assert final == {0: "failed", 1: "finished", 2: "finished"}, final
    dead, = (int(p.name.split(".")[1]) for p in rep_folder(tmp_path, 0).glob("fault.*"))
    survivor, = (int(p.name.split(".")[1]) for p in rep_folder(tmp_path, 2).glob("pid.*"))
    assert f"MPI rank {dead} on" in result.stderr and survivor not in (0, dead)
    died = float((rep_folder(tmp_path, 0) / f"fault.{dead}").read_text())
    started = (rep_folder(tmp_path, 2) / f"pid.{survivor}").stat().st_mtime
    print(f"\nfrom a rank's death to the next job on a survivor: {1000 * (started - died):.0f} ms")
    assert started > died


GROUP_CASES = [(5, ["-g", "2"], "member", "(in the group of MPI ranks"),
               (5, ["-g", "2"], "leader", "(in the group of MPI ranks"),
               (3, ["-g", "1"], "member", "(in the group of MPI ranks 0, 1, 2)")]


@pytest.mark.slow
@pytest.mark.parametrize("ranks, option, who, where", GROUP_CASES, ids=["member-of-2", "leader-of-2", "member-of-g1"])
def test_a_group_that_loses_a_rank_fails_its_repetition_and_retires(tmp_path, ranks, option, who, where):
    """`-g 2`: the group's survivors retire, the other group runs the rest; `-g 1`: the one group is gone,
    the run stops after failing the repetition (the rest is left for the next run)."""
    ulfm_or_skip()
    write_config(tmp_path, fault="2:sigkill", sleep=0.05, who=who)
    result = run_mpiexec(ulfm_command(ranks, *option), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    failed, lost = failed_lines(result.stderr), lost_ranks(result.stderr)
    print(f"\n{' '.join(option)}, {who} dies: ranks lost {len(lost)}, repetitions failed {len(failed)}")
    assert len(lost) == len(failed) == 1, result.stderr
    (rank, host), = lost.items()
    assert failed[0].startswith(f"failed d rep 2: MPI rank {rank} on {host} died {where}".strip()), result.stderr
    finished = sorted(rep for rep, state in states(tmp_path).items() if state == "finished")
    assert states(tmp_path)[2] == "failed"
    if option == ["-g", "1"]:
        assert finished == [0, 1] and "3 not finished (interrupted)" in result.stderr, result.stderr
    else:
        assert finished == [0, 1, 3, 4, 5], result.stderr
        assert "runs nothing more" in result.stderr
    frame = load_results(tmp_path / "out")
    assert len(frame[frame.rep.isin(finished)]) == 4 * len(finished)  # one writer per group


@pytest.mark.slow
def test_without_ulfm_a_dead_rank_ends_the_run_with_a_hint(tmp_path):
    write_config(tmp_path, fault="2:sigkill", sleep=0.2)
    result = run_mpiexec(mpi_command(4, "Dying", "config.yml", script=CLIENTS), cwd=tmp_path)
    assert result.returncode != 0
    assert "mpiexec --with-ft ulfm" in result.stderr, result.stderr


def start_run(folder, *args, env=None, command=None):
    """Popen of the Dying run under mpiexec (by default without ULFM, 4 ranks), stderr to `folder/err.txt`, in
    its own session."""
    err = open(folder / "err.txt", "w")
    return subprocess.Popen(command or mpi_command(4, "Dying", "config.yml", *args, script=CLIENTS), cwd=folder,
                            env={**script_env(), **MPI_ENV, **(env or {})}, stdout=subprocess.DEVNULL,
                            stderr=err, start_new_session=True)


def world_rank_of(pid):
    try:
        environment = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except FileNotFoundError:
        return None
    found = [line.split(b"=", 1)[1] for line in environment if line.startswith(b"OMPI_COMM_WORLD_RANK=")]
    return int(found[0]) if found else None


@pytest.mark.slow
def test_under_ulfm_the_death_of_rank_0_ends_the_workers_non_zero_and_resumable(tmp_path, monkeypatch):
    """ULFM keeps the job going when rank 0 dies, but the run is over: a worker stops its item after the
    iteration (interrupted, never failed) and exits with status 4, which ends the job; a rerun finishes."""
    ulfm_or_skip()
    write_config(tmp_path, reps=4, sleep=0.3)
    process = start_run(tmp_path, command=ulfm_command(3))
    try:
        wait_for(lambda: len(list((tmp_path / "out").rglob("pid.*"))) >= 2, "both workers running", 60)
        rank0, = (pid for pid in descendants(process.pid) if world_rank_of(pid) == 0)
        os.kill(rank0, signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        kill_leftovers(tmp_path, process)
    stderr = (tmp_path / "err.txt").read_text()
    assert process.returncode == 4, stderr  # orphans.EXIT_ORPHANED
    assert "rank 0, which schedules the run, is gone" in stderr, stderr  # the first to exit ends the job
    assert "failed" not in set(states(tmp_path).values())
    finished = {rep: calls(tmp_path, rep) for rep, state in states(tmp_path).items() if state == "finished"}
    monkeypatch.setenv(NO_SLEEP, "1")  # the rerun's pace matters to no one
    result = run_mpiexec(ulfm_command(3), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert set(states(tmp_path).values()) == {"finished"} and len(states(tmp_path)) == 4
    assert all(calls(tmp_path, rep) == count for rep, count in finished.items())


def kill_leftovers(folder, process):
    """SIGKILL the run's session and every rank that wrote its pid (a stopped rank outlives its launcher)."""
    pids = [int(p.read_text()) for p in (folder / "out").rglob("pid.*")]
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            if b"mpi_fault_clients" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
    process.wait(timeout=30)


@pytest.mark.slow
def test_a_silent_rank_past_the_stall_timeout_ends_the_run_and_its_launcher(tmp_path, monkeypatch):
    """Rep 2's rank stops itself (SIGSTOP: alive, silent, as behind a cut link). With --stall-timeout 3 (60
    times the iterations' 0.05 s) the run ends within the limit and a few seconds, launcher included, with one
    line naming the rank; a resumed run finishes the rest without running a finished repetition again."""
    write_config(tmp_path, fault="2:stop", sleep=0.05)
    process = start_run(tmp_path, "--stall-timeout", "3")
    try:
        wait_for(lambda: list(rep_folder(tmp_path, 2).glob("fault.*")), "rep 2 stopping its rank", 60)
        stopped = time.monotonic()
        process.wait(timeout=3 + 30)  # the limit, and a generous few seconds on a loaded machine
        print(f"\nstall limit 3 s: the run ended {time.monotonic() - stopped:.1f} s after the rank stopped")
    finally:
        kill_leftovers(tmp_path, process)
    stderr = (tmp_path / "err.txt").read_text()
    assert process.returncode == -signal.SIGKILL, stderr  # the launcher, killed (a shell says 137)
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    rank, = (int(p.name.split(".")[1]) for p in rep_folder(tmp_path, 2).glob("fault.*"))
    assert len(errors) == 1 and f"rank {rank} on {os.uname().nodename}: no word for" in errors[0], stderr
    assert "stall limit" in errors[0]
    ended = [json.loads(line) for line in (tmp_path / "out" / "runs.jsonl").read_text().splitlines()]
    assert ended[-1]["event"] == "ended" and ended[-1]["exit_status"] == 5
    before = {rep: calls(tmp_path, rep) for rep in range(6)}
    done = [rep for rep, state in states(tmp_path).items() if state == "finished"]
    assert done and 2 not in done
    # the ended record counts the jobs that ended before the stall, as any run's end does (one may have
    # finished on disk a moment before rank 0 heard of it)
    assert 0 < ended[-1]["jobs"].get("finished", 0) <= len(done), ended[-1]
    monkeypatch.setenv("CW_NO_FAULT", "1")
    monkeypatch.setenv(NO_SLEEP, "1")  # the rerun's pace matters to no one
    result = run_mpiexec(mpi_command(4, "Dying", "config.yml", script=CLIENTS), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert all(calls(tmp_path, rep) == before[rep] for rep in done)  # finished on disk: never run again
    assert set(states(tmp_path).values()) == {"finished"} and len(states(tmp_path)) == 6


@pytest.mark.slow
def test_a_silent_rank_is_shown_in_the_log_and_by_p_without_a_limit(tmp_path):
    write_config(tmp_path, fault="2:stop", sleep=0.05)
    process = start_run(tmp_path, "--report_every", "0.5", env={"CLUSTER_WORK_STALL_FLOOR": "2"})
    try:
        wait_for(lambda: "left stalled" in (tmp_path / "err.txt").read_text(), "the stall in the log", 60)
        listing = run_cli("Dying", "config.yml", "-p", cwd=tmp_path, script=CLIENTS, check_rc=0).stdout
        assert process.poll() is None  # no limit: the run waits
    finally:
        kill_leftovers(tmp_path, process)
    stderr = (tmp_path / "err.txt").read_text()
    assert re.search(r"WARNING .*rank \d on \S+: no word for \d+s; its iterations take", stderr), stderr
    status = next(line for line in stderr.splitlines() if "left stalled" in line)
    assert re.search(r"; rank \d on \S+: no word for \d+s", status), status
    assert re.search(r"stalled in run \w+: rank \d on \S+: no word for", listing), listing

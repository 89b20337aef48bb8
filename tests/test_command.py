"""Executables as experiments (`python -m cluster_work config.yml`): a real solver program, real kills."""
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import repetition_files
from conftest import MPI_ENV, mpiexec, run_mpiexec, script_env

from cluster_work import load_results
from cluster_work.command import GUARD, CommandError, _number, launch_free
from cluster_work.command_spec import CommandSpec, SpecError, fill, format_value, names_in

# The test program: prints rows (JSON objects) and other lines, records its pid and {start}, and behaves
# as --mode says at iteration --at (options take a value: `--keyless 1`).
SOLVER = r'''
import json, os, signal, sys, time
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
start, steps, at, mode = int(args["--start"]), int(args["--steps"]), int(args.get("--at", -1)), args["--mode"]
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
with open(f"pids.{rank}", "a") as f:
    f.write(f"{os.getpid()}\n")
if rank == 0:
    with open("starts", "a") as f:
        f.write(f"{start}\n")
print(f"solver: starting at {start}", flush=True)
print("solver: a line on stderr", file=sys.stderr, flush=True)
alpha = float(open("heat.in").read().split("alpha = ")[1].split()[0]) if os.path.exists("heat.in") else None

def wait_for(condition, what):
    deadline = time.time() + 60
    while not condition():
        if time.time() > deadline:
            print(f"solver: gave up waiting for {what}", file=sys.stderr)
            sys.exit(9)
        time.sleep(0.01)

def saved_rows():  # its repetition's rows, in `log/rep_NN.jsonl` beside its folder `log/rep_NN/`
    path = os.path.join("..", os.path.basename(os.getcwd()) + ".jsonl")
    if not os.path.exists(path):
        return 0
    return sum(1 for line in open(path) if line.endswith("\n") and not line.startswith('{"cluster_work.status":'))

for i in range(max(0, start - int(args.get("--reprint", 0))), steps):
    if "--check-saved" in args and i > start:  # the row before must be on disk before this iteration starts
        wait_for(lambda: saved_rows() >= i, f"row {i - 1} to be saved")
    if i == int(args.get("--hang-at", -1)):
        time.sleep(1000)
    if i == at and mode == "fail":
        print("Traceback (most recent call last):\nValueError: boom at iteration", i, file=sys.stderr)
        sys.exit(3)
    if i == at and mode == "short":
        sys.exit(0)
    if i == at and mode == "killed":
        os.kill(os.getpid(), signal.SIGKILL)
    row = {"value": i * float(args.get("--alpha", 1)), "seed": int(args["--seed"]), "start": start, "alpha": alpha}
    if "--keyless" not in args:
        row["iteration"] = i
    if rank == 0:
        print(json.dumps(row), flush=True)
        print("solver: not a row {", flush=True)
    if i == at and mode == "wait":
        wait_for(lambda: os.path.exists(args["--go"]), "the go file")
'''

CONFIG = """\
name: heat
repetitions: {repetitions}
iterations: {iterations}
path: out
command: "{command} python3 {{config_dir}}/solver.py --start {{start}} --steps {{iterations}} --seed {{seed}} \
  {arguments}"
"""


def write_sweep(folder: Path, repetitions=1, iterations=6, command="", arguments="", extra="") -> None:
    (folder / "solver.py").write_text(SOLVER)
    (folder / "config.yml").write_text(CONFIG.format(repetitions=repetitions, iterations=iterations,
                                                     command=command, arguments=arguments) + textwrap.dedent(extra))


def cw(*args) -> list[str]:
    return [sys.executable, "-m", "cluster_work", "config.yml", *args]


def run(*args, cwd: Path, check_rc=None, env=None, timeout=120) -> subprocess.CompletedProcess:
    result = subprocess.run(cw(*args), cwd=cwd, env=env or script_env(), capture_output=True, text=True,
                            timeout=timeout)
    if check_rc is not None:
        assert result.returncode == check_rc, result.stdout + result.stderr
    return result


def rows(rep_dir: Path) -> list[dict]:
    """The rows of the repetition whose folder (the command's working folder) is `rep_dir`."""
    return repetition_files.rows(rep_dir.parent.parent, int(rep_dir.name[4:]))


def status(rep_dir: Path) -> dict | None:
    return repetition_files.status(rep_dir.parent.parent, int(rep_dir.name[4:]))


def pids(rep_dir: Path) -> list[int]:
    return [int(p) for path in rep_dir.glob("pids.*") for p in path.read_text().split()]


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def is_gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def saved(rep_dir: Path) -> int:
    return len(rows(rep_dir))


# --- placeholders, pure ------------------------------------------------------------------------------------

def test_placeholders_fill_known_names_and_leave_other_braces_alone():
    text = 'a={params.a.b} {"json": {rep}} ${{HOME}} { x } {}'
    assert names_in(text) == ["params.a.b", "rep"]
    assert fill(text, {"params.a.b": "1", "rep": "0"}) == 'a=1 {"json": 0} ${HOME} { x } {}'
    with pytest.raises(KeyError):
        fill("{nope}", {})
    assert [format_value(v) for v in ("a b", True, 0.1, 3, None, [1, "x"], {"k": 1})] == \
        ["a b", "true", "0.1", "3", "null", '[1, "x"]', '{"k": 1}']


def test_a_command_is_split_before_filling_so_a_value_stays_one_word(tmp_path):
    spec = CommandSpec.of({"command": "./solver --name='{experiment} x' {params.s}"}, str(tmp_path))
    argv = spec.argv({"experiment": "e 1", "params.s": "a 'b'"})
    assert argv == [str(tmp_path / "solver"), "--name=e 1 x", "a 'b'"]  # the program: from the config's folder
    assert CommandSpec.of({"command": ["mpiexec", "-n", 2, "{rep}"]}, "/").argv({"rep": "0"}) == \
        ["mpiexec", "-n", "2", "0"]


@pytest.mark.parametrize(("config", "key", "message"), [
    ({}, "command", "is missing"),
    ({"command": "a 'b"}, "command", "cannot be split"),
    ({"command": "a", "files": {"t": "../x"}}, "files.t", "inside the repetition's folder"),
    *(({"command": "a", "files": {"t": name}}, "files.t", re.escape(f"'{name}' takes the name of cluster_work's own "
                                                                      f"file in the repetition's folder ({why})"))
      for name, why in [("rep.log", "the repetition's log"),
                        ("results.jsonl", "the rows of a repetition of an earlier version's layout"),
                        ("./status.json", "the status of a repetition of an earlier version's layout")]),
], ids=["no-command", "unsplittable", "outside", "rep.log", "results.jsonl", "status.json"])
def test_a_malformed_command_or_files_names_its_key(config, key, message):
    with pytest.raises(SpecError, match=message) as caught:
        CommandSpec.of(config, "/")
    assert caught.value.key == key


def test_takes_start_sees_the_command_and_its_files(tmp_path):
    (tmp_path / "t").write_text("resume = {start}\n")
    assert CommandSpec.of({"command": "s --from {start}"}, str(tmp_path)).takes_start()
    assert CommandSpec.of({"command": "s", "files": {"t": "t.in"}}, str(tmp_path)).takes_start()
    assert not CommandSpec.of({"command": "s {{start}}"}, str(tmp_path)).takes_start()


def test_the_command_does_not_inherit_the_launch_variables_of_cluster_works_own_rank():
    environment = {"OMPI_COMM_WORLD_RANK": "2", "PMIX_SERVER_URI41": "x", "PMI_FD": "5", "OMPI_MCA_num_procs": "3",
                   "OMPI_MCA_btl": "^openib", "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
                   "OMPI_ALLOW_RUN_AS_ROOT": "1", "SLURM_JOB_ID": "7", "PATH": "/bin"}
    assert launch_free(environment) == {"OMPI_MCA_btl": "^openib", "SLURM_JOB_ID": "7", "PATH": "/bin",
                                        "PRTE_MCA_rmaps_default_mapping_policy": ":oversubscribe",
                                        "OMPI_ALLOW_RUN_AS_ROOT": "1"}


def test_a_rows_iteration_is_its_key_or_the_one_after_the_row_before():
    assert _number({"iteration": 7}, 3) == 7 and _number({"x": 1}, 3) == 3
    with pytest.raises(CommandError, match="must be an integer"):
        _number({"iteration": "7"}, 3)


# --- whole runs --------------------------------------------------------------------------------------------

@pytest.mark.processes
@pytest.mark.slow
def test_a_slurm_array_task_and_two_workers_save_rows_as_they_arrive_with_files_filled(tmp_path):
    write_sweep(tmp_path, repetitions=2, iterations=4,
                arguments="--alpha {params.alpha} --mode plain --keyless 1 --check-saved 1",
                extra="""\
                files: {heat.in.template: heat.in}
                params: {alpha: 0.1}
                grid: {alpha: [0.1, 0.2]}
                """)
    (tmp_path / "heat.in.template").write_text('alpha = {params.alpha}\nrep = {rep}\n{"json": {start}}\n${{HOME}}\n')
    # a batch script runs the sweep by the path of cluster_work/__main__.py: job 0 as a Slurm array task would
    script = run("--slurm", "--array", "--dry-run", cwd=tmp_path, check_rc=0).stdout
    task = next(line for line in script.splitlines() if "__main__.py" in line and "-j" in line)
    result = subprocess.run(["bash", "-c", task], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**script_env(), "SLURM_ARRAY_TASK_ID": "0"})
    assert result.returncode == 0 and "1 finished" in result.stdout + result.stderr, result.stdout + result.stderr
    # the others in two workers; rows without an "iteration" key, each checked by the solver: it goes on
    # only once cluster_work has saved the row before
    result = run("-n", "2", cwd=tmp_path, check_rc=0)
    assert "3 finished" in result.stdout + result.stderr

    frame = load_results(tmp_path / "out").sort_values(["experiment", "rep", "iteration"])
    assert len(frame) == 2 * 2 * 4
    assert list(frame["value"]) == pytest.approx([i * a for a in (0.1, 0.2) for _ in range(2) for i in range(4)])
    assert list(frame["alpha"]) == list(frame["params.alpha"])  # read back from the filled heat.in
    seeds = frame.groupby(["experiment", "rep"])["seed"].agg(["nunique", "first"])
    assert (seeds["nunique"] == 1).all() and seeds["first"].nunique() == 4  # {seed}: one per repetition
    rep_dir = tmp_path / "out" / "heat" / "a0.2" / "log" / "rep_01"
    assert (rep_dir / "heat.in").read_text() == 'alpha = 0.2\nrep = 1\n{"json": 0}\n${HOME}\n'
    log = (rep_dir / "rep.log").read_text()
    assert "solver: starting at 0" in log and "solver: a line on stderr" in log and "not a row {" in log


@pytest.mark.processes
@pytest.mark.slow
def test_kill_9_of_cluster_work_ends_an_mpi_command_and_a_rerun_resumes_at_the_first_unsaved_row(tmp_path):
    go = tmp_path / "go"
    write_sweep(tmp_path, iterations=6, command=f"{mpiexec()} -n 2",
                arguments=f"--mode wait --at 2 --go {go} --reprint 2")
    rep_dir = tmp_path / "out" / "heat" / "log" / "rep_00"
    process = subprocess.Popen(cw(), cwd=tmp_path, env={**script_env(), **MPI_ENV},
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    wait_until(lambda: saved(rep_dir) == 3 and len(pids(rep_dir)) == 2, "3 rows and 2 ranks")
    ranks = pids(rep_dir)
    os.kill(process.pid, signal.SIGKILL)  # cluster_work alone: the command must not outlive it
    process.communicate(timeout=30)
    wait_until(lambda: all(map(is_gone, ranks)), f"the ranks {ranks} to be gone", timeout=30)

    go.touch()
    run(cwd=tmp_path, check_rc=0, env={**script_env(), **MPI_ENV})
    saved_rows = rows(rep_dir)
    assert [r["iteration"] for r in saved_rows] == list(range(6))  # rows 1, 2 re-printed, not saved twice
    assert [r["start"] for r in saved_rows] == [0, 0, 0, 3, 3, 3]
    assert (rep_dir / "starts").read_text().split() == ["0", "3"]


@pytest.mark.processes
@pytest.mark.slow
def test_ctrl_c_stops_after_the_row_in_flight_and_leaves_no_command_running(tmp_path):
    go = tmp_path / "go"
    write_sweep(tmp_path, repetitions=2, iterations=6, arguments=f"--mode wait --at 2 --go {go} --hang-at 4")
    rep_dir = tmp_path / "out" / "heat" / "log" / "rep_00"
    process = subprocess.Popen(cw(), cwd=tmp_path, env=script_env(), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stderr), daemon=True)
    reader.start()
    wait_until(lambda: saved(rep_dir) == 3, "3 rows")
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: to cluster_work's process group
    wait_until(lambda: any("stopping after the iterations in flight" in line for line in lines), "the stop")
    go.touch()  # the iteration in flight (3) ends; then the command, asleep in iteration 4, must be ended
    process.wait(timeout=60)
    reader.join(timeout=30)
    assert process.returncode == 130, "".join(lines)
    wait_until(lambda: all(map(is_gone, pids(rep_dir))), "the command to be gone", timeout=30)
    assert [r["iteration"] for r in rows(rep_dir)] == [0, 1, 2, 3]
    assert status(rep_dir)["state"] == "interrupted"

    (tmp_path / "config.yml").write_text((tmp_path / "config.yml").read_text().replace("--hang-at 4", ""))
    run(cwd=tmp_path, check_rc=0)
    assert [r["iteration"] for r in rows(rep_dir)] == list(range(6))
    assert (rep_dir / "starts").read_text().split() == ["0", "4"]


ORPHANING_COMMAND = """
import os, signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import os, signal, time; os.setsid(); signal.signal(signal.SIGTERM, "
                  "signal.SIG_IGN); open('orphan', 'w').write(str(os.getpid())); time.sleep(1000)"])
while not os.path.exists("orphan") or not open("orphan").read():
    time.sleep(0.01)
if sys.argv[1] == "exit":
    sys.exit(7)
open("command", "w").write(str(os.getpid()))
time.sleep(1000)
"""


@pytest.mark.processes
@pytest.mark.slow
def test_the_guard_ends_what_a_command_left_and_what_ignores_sigterm_and_exits_as_the_command_did(tmp_path):
    (tmp_path / "p.py").write_text(ORPHANING_COMMAND)
    guard = [sys.executable, "-I", "-S", GUARD, str(os.getpid()), "0.3", sys.executable, "p.py"]
    # the command exits 7, leaving a process in a session of its own that ignores SIGTERM: re-parented to
    # the guard (a subreaper), killed after the grace period
    assert subprocess.run([*guard, "exit"], cwd=tmp_path, timeout=60).returncode == 7
    assert is_gone(int((tmp_path / "orphan").read_text()))

    (tmp_path / "orphan").unlink()
    process = subprocess.Popen([*guard, "stay"], cwd=tmp_path)  # cluster_work ends it (a stop, an error)
    wait_until(lambda: (tmp_path / "command").exists() and (tmp_path / "command").read_text(), "the command")
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert is_gone(int((tmp_path / "command").read_text())) and is_gone(int((tmp_path / "orphan").read_text()))


@pytest.mark.processes
@pytest.mark.slow
def test_a_failing_command_fails_its_repetition_with_the_end_of_its_stderr_in_the_summary(tmp_path):
    write_sweep(tmp_path, iterations=4, arguments="--mode {params.mode} --at 2",
                extra="list: {mode: [fail, short, killed]}\n")
    result = run(cwd=tmp_path, check_rc=1)
    output = result.stdout + result.stderr
    assert "the command exited with status 3 before the row of iteration 2; its stderr ended: " \
           "solver: a line on stderr | Traceback (most recent call last): | ValueError: boom at iteration 2" in output
    assert "the command exited with status 0 before the row of iteration 2, short of its 4 iterations" in output
    assert "the command was killed by SIGKILL before the row of iteration 2" in output
    for mode in ("fail", "short", "killed"):
        rep_dir = tmp_path / "out" / "heat" / f"m{mode}" / "log" / "rep_00"
        assert [r["iteration"] for r in rows(rep_dir)] == [0, 1]
        failed = status(rep_dir)
        assert failed["state"] == "failed" and "command: python3 " in failed["traceback"]


@pytest.mark.processes
@pytest.mark.parametrize(("command", "template", "key", "unknown"), [
    ("--seed {params.nope}", "", "command", "{params.nope}"),
    ("", "alpha = {bogus}\n", "files.heat.in.template", "{bogus}"),
])
def test_an_unknown_placeholder_is_a_config_error_and_nothing_is_written(tmp_path, command, template, key, unknown):
    write_sweep(tmp_path, arguments=f"--mode x {command}", extra="files: {heat.in.template: heat.in}\n")
    (tmp_path / "heat.in.template").write_text(template)
    result = run(cwd=tmp_path, check_rc=2)
    assert result.stderr.startswith(f"error: config.yml: experiment 'heat': '{key}': unknown placeholder {unknown} "
                                    "(known: {rep}, {seed}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.parametrize("groups", [[], ["-g", "1"]], ids=["rank-0-schedules", "one-group-of-all-ranks"])
def test_an_mpi_run(tmp_path, groups):
    write_sweep(tmp_path, repetitions=3, iterations=3, arguments="--mode plain", extra="list: {x: [1, 2]}\n")
    command = [mpiexec(), "-n", "3", sys.executable, "-m", "mpi4py", "-m", "cluster_work", "config.yml", "-c", *groups]
    result = run_mpiexec(command, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    frame = load_results(tmp_path / "out")
    assert len(frame) == 2 * 3 * 3 and set(frame["params.x"]) == {1, 2}
    assert sorted(frame.groupby(["experiment", "rep"])["iteration"].apply(list).map(tuple)) == [(0, 1, 2)] * 6

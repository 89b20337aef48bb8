"""Hostile input, huge sweeps, signals and kills, thrown at the command line as an outsider would (issue 14).

Promises checked: a config mistake is one line naming the file and the key (and the experiment), exit
status 2, nothing written; `-d` never deletes what cluster_work did not write; a huge sweep answers
quickly in bounded memory; a signal at any moment of start-up is one line and exit 130; a kill -9 of a run
leaves no process behind. Config mistakes run in this process (`cli.main`), which is cheap; encodings,
alias bombs, memory limits, signals and kills run the script as a user would.
"""
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import SCRIPT, descendants, run_cli, script_env
from repetition_files import repetition_file, results_files, saved_rows, to_folder_layout

BASE = "name: DEFAULT\nrepetitions: 2\niterations: 2\npath: out\n---\n"
ONE = "name: DEFAULT\nrepetitions: 1\niterations: 1\npath: out\n---\n"


@pytest.fixture
def cli(cli, tmp_path):
    """`python tests/experiments.py Deterministic ARGS` in `tmp_path`, in this process (conftest's `cli`);
    returns (status, stdout, stderr)."""
    def run(*args: str) -> tuple[int, str, str]:
        result = cli("Deterministic", *args, cwd=tmp_path)
        return result.returncode, result.stdout, result.stderr
    return run


def everything_under(root: Path) -> dict[str, bytes | None]:
    """Every path below `root` with its content (None for folders): what a run wrote or changed."""
    return {str(p.relative_to(root)): (None if p.is_dir() or p.is_symlink() else p.read_bytes())
            for p in sorted(root.rglob("*"))}


def assert_one_error_line(stderr: str, *fragments: str, source: str | None = "config.yml") -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: " + (f"{source}: " if source else "")), stderr
    for fragment in fragments:
        assert fragment in lines[0], stderr


def stored_configs(out: Path) -> list[dict]:
    """The effective configs cluster_work stored below `out`, one per experiment folder."""
    return [yaml.safe_load(path.read_text()) for path in sorted(out.rglob("config.yml"))]


def limited_memory() -> None:
    """preexec_fn: at most 2 GB of address space, so that a run that builds everything in memory fails
    in seconds instead of swapping the machine."""
    resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))


def run_limited(cwd: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, "Deterministic", *args], cwd=cwd,
                          env={**script_env(), "OPENBLAS_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=timeout, preexec_fn=limited_memory)


# --- config mistakes: one line naming the file and the key, exit 2, nothing written ----------------------

BOMB = "".join(f"  {name}: &{name} [{', '.join([f'*{previous}'] * 9)}]\n"
               for previous, name in zip("abcdefgh", "bcdefghi"))
BOMB = BASE + "name: bomb\nparams:\n  a: &a [" + ", ".join(['"lol"'] * 9) + "]\n" + BOMB

MISTAKES = [
    pytest.param((BASE + "name: a\nparams: {deep: " + "[" * 3000 + "]" * 3000 + "}\n").encode(), (), (),
                 id="3000-levels-of-nesting"),
    pytest.param((BASE + 'name: a\npath: "out\\0x"\n').encode(), (), ("'a'", "'path'"), id="NUL-in-path"),
    pytest.param(b"name: a\nname: b\nrepetitions: 1\niterations: 1\npath: out\n", (), ("'name'",),
                 id="duplicate-top-level-key"),
    pytest.param((BASE + "name: a\nparams: {step: 1.0, step: 2.0}\n").encode(), (), ("'step'",),
                 id="duplicate-param"),
    pytest.param((BASE + "repetitions: 3\n").encode(), (), ("'name'",), id="document-without-name-after-DEFAULT"),
    pytest.param((BASE + 'name: "a\\n"\n').encode(), (), ("'name'",), id="name-with-trailing-newline"),
    pytest.param((BASE + f"name: {'n' * 300}\n").encode(), (), ("'name'",), id="300-character-name"),
    pytest.param((BASE + f"name: a\npath: out/{'p' * 300}\n").encode(), (), ("'a'", "'path'"),
                 id="300-character-path-component"),
    pytest.param((BASE + "name: a\n").encode(), ("-r", "0", "-i", "-1"), ("-i",), id="r0-i-minus-1"),
    pytest.param((BASE + "name: a\n---\nname: b\npath: blocker/out\n").encode(), (), ("'b'", "'path'"),
                 id="second-experiment-below-a-file"),
    pytest.param((BASE + "name: a\n").encode() + (b"# " + b"x" * 1021 + b"\n") * (11 * 1024), (), (),
                 id="11-MiB-config"),
    pytest.param((BASE + "name: a\ngird: {x: [1, 2]}\n").encode(), (), ("'a'", "'gird'", "document 2",
                 "did you mean 'grid'?"), id="typo-of-grid"),
    pytest.param((BASE + "name: a\ngrid:\nx: [1, 2]\n").encode(), (), ("'a'", "'grid'", "is empty"),
                 id="grid-values-not-indented"),
]


@pytest.mark.parametrize("text, args, fragments", MISTAKES)
def test_a_config_mistake_is_one_line_exit_2_and_nothing_written(tmp_path, cli, text, args, fragments):
    (tmp_path / "config.yml").write_bytes(text)
    (tmp_path / "blocker").write_text("a regular file, where a folder would have to be\n")
    before = everything_under(tmp_path)
    status, _, stderr = cli("config.yml", *args)
    assert status == 2, stderr
    assert_one_error_line(stderr, *fragments, source=None if args else "config.yml")
    assert everything_under(tmp_path) == before


@pytest.mark.processes
@pytest.mark.parametrize("data", [
    pytest.param(bytes(range(256)) * 4, id="binary"),
    pytest.param("name: café\nrepetitions: 1\niterations: 1\npath: out\n".encode("latin-1"), id="Latin-1"),
    pytest.param((ONE + "name: a\n").encode("utf-16"), id="UTF-16"),
    pytest.param(BOMB.encode(), id="alias-bomb"),
    pytest.param((ONE + 'name: a\nparams: {x: !!python/object/apply:os.system ["touch pwned"]}\n').encode(),
                 id="python-tag"),
])
def test_unreadable_or_malicious_configs_are_refused_by_the_script(tmp_path, data):
    """As a user runs it: one line, exit 2, within seconds (an alias bomb expands to 9^9 values), no file
    written (`pwned` would be the shell command's)."""
    assert len(BOMB) < 1024
    (tmp_path / "config.yml").write_bytes(data)
    result = run_cli("Deterministic", "config.yml", cwd=tmp_path, timeout=30)
    assert result.returncode == 2, result.stderr
    assert_one_error_line(result.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.yml"]


@pytest.mark.processes
def test_ten_to_the_twelve_repetitions_answer_at_once(tmp_path):
    (tmp_path / "config.yml").write_text("name: a\nrepetitions: 1000000000000\niterations: 1\npath: out\n")
    result = run_limited(tmp_path, "config.yml", "--list", timeout=30)
    assert "MemoryError" not in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.returncode in (0, 2), result.stderr
    if result.returncode == 2:
        assert_one_error_line(result.stderr, "'repetitions'")
    assert not (tmp_path / "out").exists()


# --- config semantics as in the original -----------------------------------------------------------------

def test_a_dotted_grid_key_is_one_literal_key(tmp_path, cli):
    from cluster_work import load_results

    (tmp_path / "config.yml").write_text(ONE + "name: a\ngrid: {a.b: [1, 2]}\n")
    assert cli("config.yml")[0] == 0
    params = [config["params"] for config in stored_configs(tmp_path / "out")]
    assert sorted(p["a.b"] for p in params) == [1, 2]
    assert not any("a" in p for p in params)
    assert sorted(load_results("config.yml")["params.a.b"]) == [1, 2]


def test_a_nested_and_a_dotted_grid_key_are_two_axes(tmp_path, cli):
    (tmp_path / "config.yml").write_text(ONE + "name: a\ngrid: {a: {b: [1, 2]}, a.b: [3, 4]}\n")
    assert cli("config.yml")[0] == 0
    pairs = sorted((c["params"]["a"]["b"], c["params"]["a.b"]) for c in stored_configs(tmp_path / "out"))
    assert pairs == [(1, 3), (1, 4), (2, 3), (2, 4)]


@pytest.mark.parametrize("name", ["default", "Default", "dEfAuLt"])
def test_the_first_document_named_default_in_any_case_holds_the_defaults(tmp_path, cli, name):
    (tmp_path / "config.yml").write_text(f"name: {name}\nrepetitions: 2\niterations: 1\npath: out\n---\nname: a\n")
    status, _, stderr = cli("config.yml")
    assert status == 0, stderr
    [config] = stored_configs(tmp_path / "out")
    assert config["name"] == "a" and config["repetitions"] == 2


@pytest.mark.parametrize("values", [pytest.param("[1.0, '1.0']", id="float-and-string"),
                                    pytest.param("['a b', 'a-b']", id="unsafe-characters")])
def test_values_that_differ_only_in_type_or_unsafe_characters_are_distinct_experiments(tmp_path, cli, values):
    (tmp_path / "config.yml").write_text(ONE + f"name: a\ngrid: {{tag: {values}}}\n")
    status, _, stderr = cli("config.yml")
    assert status == 0, stderr
    configs = stored_configs(tmp_path / "out")
    assert sorted(repr(c["params"]["tag"]) for c in configs) == sorted(map(repr, yaml.safe_load(values)))
    assert len({c["path"] for c in configs}) == 2


def _seeds_that_order_a_set_differently() -> tuple[str, str]:
    """Two hash seeds under which one set of strings iterates in different orders (so that a set's repr
    differs between the two runs, as it does between any two runs by default)."""
    orders: dict[str, str] = {}
    for seed in map(str, range(30)):
        order = subprocess.run([sys.executable, "-c", "print(list({'alpha', 'beta', 'gamma', 'delta'}))"],
                               env={**os.environ, "PYTHONHASHSEED": seed}, capture_output=True, text=True).stdout
        for other, seen in orders.items():
            if seen != order:
                return other, seed
        orders[seed] = order
    pytest.fail("no two hash seeds order the set differently")


@pytest.mark.processes
def test_a_set_in_a_grid_names_the_same_folder_under_any_hash_seed(tmp_path):
    """A set prints in hash-seed order: its folder was named anew by every run, which ran it again beside
    the first. Names depend only on the config: the set is written sorted."""
    (tmp_path / "config.yml").write_text(ONE + "name: a\ngrid: {weights: [!!set {gamma, delta, alpha, beta}, "
                                               "[1, !!set {beta, alpha}]]}\n")
    runs = [subprocess.run([sys.executable, SCRIPT, "Deterministic", "config.yml"], cwd=tmp_path,
                           env={**script_env(), "PYTHONHASHSEED": seed}, capture_output=True, text=True, timeout=120)
            for seed in _seeds_that_order_a_set_differently()]
    assert [run.returncode for run in runs] == [0, 0], runs[-1].stderr
    assert sorted(os.listdir(tmp_path / "out" / "a")) == ["w_1_{alpha_beta}", "w{alpha_beta_delta_gamma}"]
    assert "0 jobs" in runs[1].stderr, runs[1].stderr


@pytest.mark.processes
def test_a_rerun_of_nan_and_set_params_runs_nothing_and_warns_nothing(tmp_path):
    (tmp_path / "config.yml").write_text(ONE + "name: a\nparams: {step: .nan, weights: !!set {alpha, beta, gamma, "
                                               "delta}}\n")
    first_seed, second_seed = _seeds_that_order_a_set_differently()
    first, rerun = (subprocess.run([sys.executable, SCRIPT, "Deterministic", "config.yml"], cwd=tmp_path,
                                   env={**script_env(), "PYTHONHASHSEED": seed}, capture_output=True, text=True,
                                   timeout=120) for seed in (first_seed, second_seed))
    assert first.returncode == 0, first.stderr
    assert rerun.returncode == 0, rerun.stderr
    assert "WARNING" not in rerun.stderr and "0 jobs" in rerun.stderr, rerun.stderr


def test_a_rerun_that_only_meets_changed_parameters_is_exit_2_and_says_what_to_do(tmp_path, cli):
    """Nothing ran because the parameters changed: not a success (exit 0 with '0 jobs' looked like one)."""
    (tmp_path / "config.yml").write_text(BASE + "name: a\ngrid: {step: [1.0, 2.0]}\n")
    assert cli("config.yml")[0] == 0
    (tmp_path / "config.yml").write_text(BASE + "name: a\nparams: {sleep: 0.0001}\ngrid: {step: [1.0, 2.0]}\n")
    before = everything_under(tmp_path)
    status, _, stderr = cli("config.yml")
    assert status == 2, stderr
    assert_one_error_line(stderr, "nothing to run: the parameters of 2 experiment(s) changed since their results "
                                  "were saved (a__s1.0: sleep; a__s2.0: sleep)", "-o/--overwrite", "-I/--ignore_config")
    assert everything_under(tmp_path) == before
    assert cli("config.yml", "-I")[0] == 0  # continues them: nothing left, as they were finished


def test_a_rerun_where_something_else_runs_still_skips_changed_experiments_with_a_warning(tmp_path, cli):
    (tmp_path / "config.yml").write_text(BASE + "name: a\n")
    assert cli("config.yml")[0] == 0
    (tmp_path / "config.yml").write_text(BASE + "name: a\nparams: {sleep: 0.0001}\n---\nname: b\n")
    status, _, stderr = cli("config.yml")
    assert status == 0 and "a: skipped, its parameters changed" in stderr and "nothing to run" not in stderr


def test_load_results_selects_a_base_name_that_holds_two_underscores(tmp_path, cli):
    from cluster_work import load_results

    (tmp_path / "config.yml").write_text(BASE + "name: my__exp\ngrid: {step: [1.0, 2.0]}\n---\nname: other\n")
    assert cli("config.yml")[0] == 0
    frame = load_results("config.yml", experiments=["my__exp"])
    assert len(frame) == 2 * 2 * 2 and frame["experiment"].nunique() == 2


# --- -d deletes only what cluster_work wrote -------------------------------------------------------------

def test_delete_keeps_the_files_of_a_user_folder_that_merely_has_a_log_subfolder(tmp_path, cli):
    (tmp_path / "data" / "log").mkdir(parents=True)
    (tmp_path / "data" / "thesis.tex").write_text("six months of work\n")
    (tmp_path / "data" / "log" / "notes.txt").write_text("more work\n")
    (tmp_path / "config.yml").write_text("name: data\nrepetitions: 1\niterations: 1\npath: .\n")
    _, _, stderr = cli("config.yml", "-d")
    assert "thesis.tex" in stderr  # the warning says what stayed
    _, _, stderr = cli("config.yml", "-d")  # now the folder holds cluster_work's files besides the user's
    assert (tmp_path / "data" / "thesis.tex").read_text() == "six months of work\n"
    assert (tmp_path / "data" / "log" / "notes.txt").read_text() == "more work\n"


def test_delete_never_deletes_through_a_symbolic_link(tmp_path, cli):
    (tmp_path / "config.yml").write_text("name: walk\nrepetitions: 2\niterations: 2\npath: elsewhere\n")
    assert cli("config.yml")[0] == 0
    (tmp_path / "elsewhere" / "walk").rename(tmp_path / "precious")
    (tmp_path / "precious" / "keep.txt").write_text("mine\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "walk").symlink_to(tmp_path / "precious")
    (tmp_path / "config.yml").write_text("name: walk\nrepetitions: 2\niterations: 2\npath: out\n")
    before = set(everything_under(tmp_path / "precious"))
    cli("config.yml", "-d")
    assert before <= set(everything_under(tmp_path / "precious"))
    assert (tmp_path / "precious" / "keep.txt").read_text() == "mine\n"


def test_delete_with_one_repetition_is_refused_or_deletes_only_that_repetition(tmp_path, cli):
    (tmp_path / "config.yml").write_text("name: walk\nrepetitions: 3\niterations: 2\npath: out\n")
    assert cli("config.yml")[0] == 0
    results = {rep: repetition_file(tmp_path / "out" / "walk", rep).read_bytes() for rep in range(3)}
    status, _, stderr = cli("config.yml", "-d", "-r", "0")
    if status == 2:
        assert_one_error_line(stderr, "-d", source=None)
    else:
        assert status == 0, stderr
    for rep in (1, 2) if status == 0 else (0, 1, 2):
        assert repetition_file(tmp_path / "out" / "walk", rep).read_bytes() == results[rep]


# --- huge sweeps -----------------------------------------------------------------------------------------

def list_grid(folder: Path, sizes: tuple[int, ...]) -> tuple[subprocess.CompletedProcess, int]:
    """`--list` of a sweep whose grid has axes of these sizes, in `folder`, as `run_limited` runs it: the
    result, and the peak resident memory of the listing process in kB (its own, from wait4)."""
    folder.mkdir()
    grid = {f"p{axis}": list(range(size)) for axis, size in enumerate(sizes)}
    (folder / "config.yml").write_text(yaml.safe_dump({"name": "huge", "repetitions": 1, "iterations": 1,
                                                       "path": "out", "grid": grid}, default_flow_style=True))
    with open(folder / "stdout", "w+") as out, open(folder / "stderr", "w+") as err:
        process = subprocess.Popen([sys.executable, SCRIPT, "Deterministic", "config.yml", "--list"], cwd=folder,
                                   env={**script_env(), "OPENBLAS_NUM_THREADS": "1"}, stdout=out, stderr=err,
                                   preexec_fn=limited_memory)
        timer = threading.Timer(60, process.kill)  # a listing that is not quick fails
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        process.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, out.read(), err.read()), usage.ru_maxrss


@pytest.mark.processes
@pytest.mark.slow
def test_listing_a_huge_grid_is_a_quick_summary_in_the_memory_of_a_small_one(tmp_path):
    """10^5 points (about 2 s to list; 10^6 take 20 s) listed in no more memory than 100 points: nothing is
    kept per point, so a sweep of any size lists in bounded memory (and under the 2 GB limit)."""
    result, peak = list_grid(tmp_path / "huge", (10, 100, 100))
    assert result.returncode == 0, result.stderr[-2000:]
    assert len(result.stdout.splitlines()) < 100 and "100000" in result.stdout, result.stdout[-3000:]
    assert not (tmp_path / "huge" / "out").exists()
    small, small_peak = list_grid(tmp_path / "small", (10, 10))
    assert small.returncode == 0 and "100 experiments" in small.stdout, small.stdout + small.stderr
    assert peak - small_peak < 16 << 10, (peak, small_peak)  # kB: 10^5 points kept would take 100 MB and more


def test_list_summarises_beyond_a_screenful_and_json_lists_every_job(tmp_path, cli):
    (tmp_path / "config.yml").write_text(BASE + "name: walk\ngrid: {step: [" + ", ".join(
        f"{v}.0" for v in range(1, 53)) + "]}\n")
    status, listing, _ = cli("config.yml", "--list")
    assert status == 0
    status, lines, _ = cli("config.yml", "--list", "--json")
    records = [json.loads(line) for line in lines.splitlines()]
    names = list(dict.fromkeys(record["experiment"] for record in records))  # --json: one line per job
    assert status == 0 and len(names) == 52 and len(records) == 104
    assert [(r["job"], r["rep"], r["state"]) for r in records[:3]] == [(0, 0, "pending"), (1, 1, "pending"),
                                                                        (2, 0, "pending")]
    assert len(listing.splitlines()) < 40 and "52 experiments" in listing and "104 jobs" in listing
    shown = [name for name in names if f" {name} " in listing]
    assert shown == names[:5] + names[-5:], listing  # the first and the last few
    assert not (tmp_path / "out").exists()


def test_list_of_a_few_experiments_shows_every_one(tmp_path, cli):
    (tmp_path / "config.yml").write_text(BASE + "name: walk\ngrid: {step: [1.0, 2.0, 3.0]}\n")
    status, listing, _ = cli("config.yml", "--list")
    assert status == 0 and listing.count("walk") == 3


# --- processes and signals -------------------------------------------------------------------------------

def start(cwd: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, SCRIPT, "Deterministic", *args], cwd=cwd, env=script_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def is_alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def wait_for(condition, timeout: float) -> bool:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            return False
        time.sleep(0.02)
    return True


def rows_on_disk(out: Path) -> int:
    return saved_rows(out)


@pytest.mark.processes
@pytest.mark.slow
def test_kill_9_of_the_main_process_ends_the_workers_and_the_forkserver(tmp_path):
    (tmp_path / "config.yml").write_text("name: walk\nrepetitions: 2\niterations: 400\npath: out\n"
                                         "params: {sleep: 0.05}\n")
    process = start(tmp_path, "config.yml", "-n", "2")
    out = tmp_path / "out"
    helpers: list[int] = []
    try:
        both_running = wait_for(lambda: len(results_files(out)) == 2
                                and all(p.stat().st_size for p in results_files(out)), 60)
        helpers = descendants(process.pid)  # the forkserver, its two workers, multiprocessing's resource tracker
        assert both_running and len(helpers) >= 3, helpers
        process.kill()
        process.wait(timeout=30)
        rows_at_kill = rows_on_disk(out)
        assert wait_for(lambda: not any(map(is_alive, helpers)), 10), \
            f"still running: {[pid for pid in helpers if is_alive(pid)]}"
        assert rows_on_disk(out) <= rows_at_kill + 2  # at most the iteration each worker had in flight
    finally:  # leave nothing behind when the test fails
        for pid in [process.pid, *helpers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.communicate()


def caught_signals(pid: int) -> int:
    """The mask of signals the process has handlers for (SigCgt in /proc/PID/status)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return int(line.split()[1], 16)
    except FileNotFoundError:
        pass
    return 0


def stop_handling_installed(pid: int) -> bool:
    """Whether cluster_work's start-up handling is in place: Python catches only SIGINT by itself."""
    return bool(caught_signals(pid) & (1 << (signal.SIGTERM - 1)))


GRID_10K = ("name: big\nrepetitions: 1\niterations: 1\npath: out\ngrid:\n"
            + "".join(f"  {param}: [{', '.join(str(100 + i) for i in range(10))}]\n"
                      for param in ("fail_at", "fail_rep", "step", "weights")))


@pytest.mark.processes
@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("moment", ["at-once", "stop-handling-installed", "planning-10k-experiments"])
def test_a_stop_signal_during_start_up_is_one_line_and_exit_130(tmp_path, signum, moment):
    config = tmp_path / "config.yml"
    config.write_text(GRID_10K)
    # an access time before the modification time: the first read of the config moves it (relatime)
    os.utime(config, (config.stat().st_mtime - 100, config.stat().st_mtime))
    unread = config.stat().st_atime
    process = start(tmp_path, "config.yml")
    if moment == "stop-handling-installed":
        assert wait_for(lambda: stop_handling_installed(process.pid) or process.poll() is not None, 60)
    if moment == "planning-10k-experiments":  # the config was read: loading, expanding, planning go on
        if not wait_for(lambda: config.stat().st_atime != unread or process.poll() is not None, 60):
            process.kill()
            pytest.skip("this file system does not update access times (noatime)")
    with contextlib.suppress(ProcessLookupError):
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)  # as Ctrl-C does
        else:
            process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    out = tmp_path / "out"
    if moment == "at-once":
        # before the script reaches ClusterWork.run(), the interpreter and the user's imports answer the
        # signal as Python does (the documented window); nothing is written either way
        assert process.returncode in (130, -signum), stderr
        assert not out.exists()
        return
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr, stderr
    if not out.exists():
        assert len([line for line in stderr.splitlines() if line.strip()]) == 1, stderr
        assert signal.Signals(signum).name in stderr
    else:  # it had begun to write: what a clean stop leaves, every config whole, no temporary file
        assert "to resume" in stderr, stderr
        assert all(isinstance(yaml.safe_load(p.read_text()), dict) for p in out.rglob("config.yml"))
        assert not list(out.rglob("*.tmp"))


def test_the_cli_gives_back_the_callers_signal_handlers(tmp_path, cli):
    (tmp_path / "config.yml").write_text(BASE + "name: a\n")
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1)}
    assert cli("config.yml")[0] == 0
    assert cli("config.yml", "--list")[0] == 0
    assert {signum: signal.getsignal(signum) for signum in before} == before


def test_leftover_temporary_files_of_a_killed_write_are_removed_by_the_next_run(tmp_path, cli):
    (tmp_path / "config.yml").write_text("name: walk\nrepetitions: 2\niterations: 2\npath: out\n")
    assert cli("config.yml")[0] == 0
    reps = [to_folder_layout(tmp_path / "out" / "walk", rep) for rep in range(2)]  # an earlier version's: status.json
    leftovers = [reps[0] / ".status.json.k2j4h5g6.tmp", reps[1] / ".status.json.a_9zz0q1.tmp"]
    users = [reps[0] / "notes.tmp", reps[0] / ".status.json.tmp", reps[0] / ".status.json.mine.tmp",
             reps[1] / ".status.json.ABCDEFGH.tmp", tmp_path / "out" / "walk" / "notes.tmp"]
    for path in leftovers + users:
        path.write_text("x")
    (tmp_path / "config.yml").write_text("name: walk\nrepetitions: 2\niterations: 3\npath: out\n")
    status, _, stderr = cli("config.yml")  # one more iteration: the run opens both repetitions
    assert status == 0, stderr
    assert not any(path.exists() for path in leftovers)
    assert all(path.read_text() == "x" for path in users)

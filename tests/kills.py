"""Killing a run as a node failure would, and checking what it left: every file cluster_work wrote readable."""
import itertools
import json
import os
import select
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import yaml
from conftest import descendants
from repetition_files import STATUS_KEY


def kill_session(process):
    """Kill the run and every process below it at once, as a node failure would (MPICH's ranks each
    have a session of their own, so the process tree is what holds a run together)."""
    kill_and_wait(process, [process.pid, *descendants(process.pid)])


def kill_and_wait(process, pids):
    """SIGKILL every one of `pids` at once (`process`, the run, among them) and wait until all are dead."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)
    deadline = time.time() + 30  # a signal is only queued: wait until every process has really died
    while not all(map(dead, pids)) and time.time() < deadline:
        time.sleep(0.01)
    assert all(map(dead, pids)), [pid for pid in pids if not dead(pid)]


def dead(pid):
    """Whether process `pid` has exited: each of its threads is gone or a zombie, so it has closed its files
    and dropped its locks (its first thread turns zombie while the others still exit, holding the files)."""
    try:
        threads = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return True
    states = []
    for thread in threads:
        try:
            states.append(Path(f"/proc/{pid}/task/{thread}/stat").read_text().rsplit(")", 1)[1].split()[0])
        except OSError:
            pass
    return all(state in ("Z", "X") for state in states)


def assert_every_file_readable(out):
    for path in Path(out).rglob("*"):
        if path.name == "config.yml":
            assert isinstance(yaml.safe_load(path.read_text()), dict), path
        elif path.name == "status.json":
            json.loads(path.read_text())
        elif path.name == "results.jsonl" or (path.name.startswith("rep_") and path.suffix == ".jsonl"):
            lines = path.read_bytes().split(b"\n")
            rows = [json.loads(line) for line in lines[:-1]]  # every complete line a row in order, or a status
            assert [row["iteration"] for row in rows if STATUS_KEY not in row] == list(range(len(rows) - sum(
                STATUS_KEY in row for row in rows))), path


def kill_a_writer(prepare: Callable[[], Callable[[], object]], instant: float) -> int:
    """A writer in a process of its own, killed -9 `instant` seconds after it is ready: forked from this one,
    `prepare()` there returns its write, which it then does again and again until the kill. The fork has every
    module imported already: it is ready in milliseconds, not after an interpreter's ~0.5 s of imports, so that
    a test can afford the many kills it takes to land some inside a write. Its pid, once it is dead (reaped)."""
    ready, signal_ready = os.pipe()
    pid = os.fork()
    if pid == 0:  # the writer: never back into the test
        try:
            os.close(ready)
            write = prepare()
            os.write(signal_ready, b"ready")
            while True:
                write()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(70)
    os.close(signal_ready)
    try:
        readable, _, _ = select.select([ready], [], [], 60)
        answer = os.read(ready, 5) if readable else b""
    finally:
        os.close(ready)
    if answer != b"ready":
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise AssertionError("the writer was not ready within 60 s (its traceback, if it raised, is above)")
    time.sleep(instant)
    os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the writer ended by itself: {status}"
    return pid


def config_rewriter(folder) -> Callable[[], object]:
    """For kill_a_writer (called in the writer): a run's leader bringing the counts of `folder`'s config.yml up
    to date (3 and 4 iterations in turn), again and again; ready once it rewrote it once."""
    from cluster_work.store import ExperimentStore

    store = ExperimentStore(str(folder))
    config, counts = store.read_config(), itertools.count(1)

    def rewrite() -> None:
        store.refresh_config({**config, "iterations": 3 + next(counts) % 2})
    rewrite()
    return rewrite

"""What a kill -9 while an experiment's config.yml is written leaves: the old file or the new one, whole, and a
temporary named by its writer (`CONFIG_TEMPORARY_PREFIX`) that the folder's next write of its config removes once
that writer is dead; never the temporary of a writer still alive, nor one of another host, nor a user's file, nor
one of the earlier unnamed shape (`.config.yml.<8>.tmp`: a live writer's cannot be told from a dead one's), which
only `-d` removes, as it removes ours."""
from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time

import pytest
from kills import config_rewriter, kill_a_writer

from cluster_work.files import ABANDONED_AFTER, hold_temporary
from cluster_work.paths import CONFIG_FILE, CONFIG_TEMPORARY_PREFIX
from cluster_work.store import ExperimentStore


def config(folder) -> dict:
    return {"name": "exp", "repetitions": 1, "iterations": 3, "path": str(folder),
            "params": {"x": list(range(2000))}}  # of some size: a write takes a while


def temporaries(folder) -> list[str]:
    return sorted(name for name in os.listdir(folder) if ".tmp" in name)


def dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


@pytest.mark.processes
def test_a_writer_killed_while_it_writes_the_config_leaves_nothing_after_the_next_write(tmp_path):
    folder = tmp_path / "exp"
    store = ExperimentStore(str(folder))
    store.write_config(config(folder))
    instants, deadline = random.Random(25), time.monotonic() + 120
    while not temporaries(folder):  # kill at random instants until one kill fell inside a write
        assert time.monotonic() < deadline, "no kill fell inside a write of the config"
        writer = kill_a_writer(lambda: config_rewriter(folder), instants.uniform(0.0, 0.05))
        stored = store.read_config(own=True)
        assert stored is not None and stored["iterations"] in (3, 4) and len(stored["params"]["x"]) == 2000
    assert all(name.startswith(f"{CONFIG_TEMPORARY_PREFIX}{socket.gethostname()}-{writer}-")
               for name in temporaries(folder))
    assert store.refresh_config({**config(folder), "iterations": 5})  # the next run's leader: counts changed
    assert temporaries(folder) == []
    assert store.read_config(own=True)["iterations"] == 5


def plant(folder, names: list[str]) -> None:
    for name in names:
        with open(os.path.join(folder, name), "w") as handle:
            handle.write("name: half")


@pytest.mark.processes  # (a process that ran and died gives a dead pid)
@pytest.mark.parametrize("config_there", [False, True], ids=["config-written", "config-rewritten"])
def test_only_dead_writers_temporaries_of_this_host_are_removed(tmp_path, config_there):
    """By the next write of the config: where a writer was killed before any config was there (the folder's
    first job writes it) or while it rewrote one."""
    folder = tmp_path / "exp"
    store = ExperimentStore(str(folder))
    folder.mkdir()
    if config_there:
        store.write_config(config(folder))
    host = socket.gethostname()
    dead = f"{CONFIG_TEMPORARY_PREFIX}{host}-{dead_pid()}-0a1b2c3d.tmp"
    kept = [f"{CONFIG_TEMPORARY_PREFIX}{host}-{os.getpid()}-0a1b2c3d.tmp",  # a writer alive
            f"{CONFIG_TEMPORARY_PREFIX}elsewhere-{dead_pid()}-0a1b2c3d.tmp",  # another host's
            f".{CONFIG_FILE}.0a1b2c3d.tmp",  # the earlier shape: alive or dead, no one can tell
            f"{CONFIG_TEMPORARY_PREFIX}notes.tmp", f"{CONFIG_TEMPORARY_PREFIX}{host}-{dead_pid()}-notes.tmp",
            f"{CONFIG_TEMPORARY_PREFIX}{host}-{dead_pid()}-0a1b2c3d.tmp.bak", f".{CONFIG_FILE}.mine.tmp",
            "notes.tmp"]  # a user's
    plant(folder, [dead, *kept])
    store.write_config(config(folder))
    assert temporaries(folder) == sorted(kept)
    assert store.read_config(own=True) == config(folder)


@pytest.mark.processes  # (a process that ran and died gives a dead pid)
def test_delete_removes_every_temporary_of_ours_and_no_users_file(tmp_path):
    """`-d` removes the config's temporaries of both shapes, whoever wrote them (it deletes the experiment), and
    leaves a user's file of a like name."""
    folder = tmp_path / "exp"
    store = ExperimentStore(str(folder))
    store.write_config(config(folder))
    host = socket.gethostname()
    ours = [f"{CONFIG_TEMPORARY_PREFIX}{host}-{dead_pid()}-0a1b2c3d.tmp",
            f"{CONFIG_TEMPORARY_PREFIX}other-host.cluster-{dead_pid()}-0a1b2c3d.tmp", f".{CONFIG_FILE}.0a1b2c3d.tmp"]
    users = [f"{CONFIG_TEMPORARY_PREFIX}notes.tmp", f"{CONFIG_TEMPORARY_PREFIX}{host}-1-notes.tmp",
             f".{CONFIG_FILE}.mine.tmp"]
    plant(folder, ours + users)
    left = store.delete()
    assert sorted(left) == sorted(os.path.join(folder, name) for name in users)
    assert temporaries(folder) == sorted(users)


def test_a_dead_writers_temporary_whose_pid_another_process_now_has_is_removed_and_a_held_one_kept(tmp_path):
    """Pids are reused (32,768 on Linux): a temporary named by a pid that now belongs to a live process (here:
    this test's) is its dead writer's where it is older than ABANDONED_AFTER and no one holds it; a live writer
    holds its temporary (`hold_temporary`) until it renames it, and one written just now is never judged."""
    folder = tmp_path / "exp"
    store = ExperimentStore(str(folder))
    folder.mkdir()
    host, old = socket.gethostname(), time.time() - 2 * ABANDONED_AFTER
    reused, held, young = (f"{CONFIG_TEMPORARY_PREFIX}{host}-{os.getpid()}-{token}.tmp"
                           for token in ("0000000a", "0000000b", "0000000c"))
    plant(folder, [reused, held, young])
    os.utime(folder / reused, (old, old))
    os.utime(folder / held, (old, old))
    with open(folder / held, "rb") as holder:
        hold_temporary(holder.fileno())  # its writer, alive, between writing it and renaming it
        store.write_config(config(folder))
        assert temporaries(folder) == sorted([held, young])
    assert store.read_config(own=True) == config(folder)


@pytest.mark.processes
def test_a_writer_that_exited_and_awaits_its_parent_is_dead(tmp_path):
    """A run killed whole leaves its workers zombies until the process that inherits them reaps them (a
    container's first process may do so late): their pids still answer a signal, but they write nothing more."""
    folder = tmp_path / "exp"
    store = ExperimentStore(str(folder))
    folder.mkdir()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.monotonic() + 60
        while open(f"/proc/{exited.pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":  # exited, not reaped
            assert time.monotonic() < deadline, "the child did not exit"
            time.sleep(0.01)
        zombie = f"{CONFIG_TEMPORARY_PREFIX}{socket.gethostname()}-{exited.pid}-0000000d.tmp"
        plant(folder, [zombie])
        store.write_config(config(folder))
        assert temporaries(folder) == []
    finally:
        exited.wait()
